//! Weir's WebAssembly plugins (SPEC §5): user code that decides, in a
//! sandbox, whether a subscription receives a message (`filter`) or what
//! happens to a message whose consumption failed (`dlq-policy`).
//!
//! The contract with plugins is ABI v1, documented in `plugins/ABI.md`; the
//! guest SDK is `plugins/sdk` (`weir-plugin-sdk`).
//!
//! Layout:
//! - [`abi`]: export/import names, the input encoding, result values.
//! - [`manifest`]: the `weir-manifest` section (name, version, kind, hints).
//! - [`kind`]: filter or dlq-policy.
//! - [`limits`]: fuel per call, memory, module size, failures before disabling.
//! - [`compile`]: [`PluginHost`] (the wasmtime engine) and upload-time
//!   validation into a [`CompiledPlugin`], done once per module.
//! - `sandbox`: the instance's limiter and the `weir.log` import.
//! - [`instance`]: one instance and one call ([`CallError`]).
//! - [`handle`]: a subscription's instance pool, failure count and state.
//! - [`stats`]: call counters.
//! - [`filter`]: [`WasmFilter`], a [`weir_filters::MessageFilter`].
//! - [`policy`]: [`WasmDlqPolicy`], a [`DlqPolicy`].
//! - [`dlq`]: the [`DlqPolicy`] trait and RocketMQ's default schedule.
//! - [`registry`]: plugins stored on disk: upload, list, remove, enable, live replace.
//! - [`offline`]: run a plugin over JSONL sample messages (`weir plugin test`).
//! - [`scaffold`](mod@scaffold): generate a plugin crate (`weir plugin new`).
//!
//! **Threads**: every plugin call is synchronous and may run for its whole
//! fuel budget (about 10 ms by default). Callers run calls on a blocking
//! pool (`tokio::task::spawn_blocking` or a dedicated pool), never on an
//! async worker thread; that thread needs [`Limits::max_wasm_stack_bytes`]
//! of stack beyond its own use (tokio's blocking threads have 2 MiB).

pub mod abi;
pub mod compile;
pub mod dlq;
pub mod filter;
pub mod handle;
pub mod instance;
pub mod kind;
pub mod limits;
pub mod manifest;
pub mod offline;
pub mod policy;
pub mod registry;
mod sandbox;
pub mod scaffold;
mod slot;
pub mod stats;

pub use compile::{CompiledPlugin, HostError, LoadError, PluginHost};
pub use dlq::{DELAY_LEVELS, DefaultRetryPolicy, DlqPolicy, FailedDelivery, RetryDecision, dlq_topic, retry_topic};
pub use filter::{WasmFilter, WrongKind};
pub use handle::{CallTrace, HandleState, PluginHandle};
pub use instance::{CallCost, CallError};
pub use kind::PluginKind;
pub use limits::Limits;
pub use manifest::{Manifest, ManifestError};
pub use offline::{OfflineDecision, OfflineError, OfflineReport, OfflineResult, run_offline};
pub use policy::WasmDlqPolicy;
pub use registry::{PluginInfo, PluginState, Registry, RegistryError, Upload};
pub use sandbox::{GuestLog, GuestLogLevel};
pub use scaffold::{NewPlugin, ScaffoldError, bundled_sdk_path, scaffold};
pub use stats::StatsSnapshot;
