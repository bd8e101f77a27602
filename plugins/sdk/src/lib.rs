//! Write Weir plugins in Rust: message filters and dead-letter policies that
//! the broker runs in a WebAssembly sandbox (ABI v1, `plugins/ABI.md`).
//!
//! A filter in a `cdylib` crate built with
//! `cargo build --target wasm32-unknown-unknown --release`:
//!
//! ```
//! use weir_plugin_sdk::{Message, filter, manifest};
//!
//! manifest! {
//!     name = "sh_only",
//!     version = "0.1.0",
//!     kind = "filter",
//!     description = "Delivers messages of region SH",
//!     hint = "region=SH",
//! }
//!
//! fn sh_only(message: &Message) -> bool {
//!     message.property("region") == Some("SH")
//! }
//!
//! filter!(sh_only);
//! # fn main() {}
//! ```
//!
//! A dead-letter policy uses [`dlq_policy!`] with a
//! `fn(&Failure) -> Decision`. Parameters a subscription passes are read with
//! [`params`] or [`param`]; `filter!(f, init = check)` lets the plugin reject
//! bad parameters up front.
//!
//! The exports exist only when building for wasm32; on the host the crate
//! compiles to plain functions, so a plugin's unit tests run with `cargo test`
//! on [`Message`]s decoded from a [`TestMessage`].
//!
//! Layout: [`message`] (the input types and their decoding), [`log`] (the
//! `weir.log` import), `runtime` (the ABI glue the macros call).

pub mod log;
pub mod message;
#[doc(hidden)]
pub mod runtime;

pub use log::{Level, log};
pub use message::{Decision, DecodeError, Failure, Message, TestMessage};
pub use runtime::{param, params};

/// Copies `text` into a byte array, so [`manifest!`] can place it in a
/// custom section.
#[doc(hidden)]
pub const fn manifest_bytes<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Writes the plugin's manifest (the `weir-manifest` custom section):
/// `key = "value"` pairs among `name`, `version`, `kind` (`"filter"` or
/// `"dlq-policy"`), `description`, and repeatable `param` (`"name: what it
/// does"`) and `hint` (`"name"` or `"name=value"`: a property every delivered
/// message carries). Values are string literals or macros expanding to one,
/// e.g. `version = env!("CARGO_PKG_VERSION")`; each must be one line.
#[macro_export]
macro_rules! manifest {
    ($($key:ident = $value:expr),* $(,)?) => {
        const __WEIR_MANIFEST_TEXT: &str = concat!("abi=1\n", $(stringify!($key), "=", $value, "\n",)*);
        #[cfg_attr(target_arch = "wasm32", unsafe(link_section = "weir-manifest"))]
        #[used]
        static __WEIR_MANIFEST: [u8; __WEIR_MANIFEST_TEXT.len()] =
            $crate::manifest_bytes(__WEIR_MANIFEST_TEXT);
    };
}

/// The exports every plugin has: `weir_abi_version`, `weir_alloc`,
/// `weir_dealloc` and `weir_init` (calling `$accept` with the parameters).
#[doc(hidden)]
#[macro_export]
macro_rules! __common_exports {
    ($accept:path) => {
        const _: fn(&str) -> Result<(), String> = $accept;

        /// ABI v1: the version this plugin implements.
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_abi_version() -> i32 {
            $crate::runtime::ABI_VERSION
        }

        /// ABI v1: a buffer for the host to write input into.
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_alloc(size: i32) -> i32 {
            $crate::runtime::alloc(size)
        }

        /// ABI v1: frees a buffer from `weir_alloc`.
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_dealloc(ptr: i32, size: i32) {
            $crate::runtime::dealloc(ptr, size)
        }

        /// ABI v1: receives the subscription's parameters.
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_init(ptr: i32, len: i32) -> i32 {
            $crate::runtime::init(ptr, len, $accept)
        }
    };
}

/// Exports a filter plugin around `fn(&Message) -> bool` (`true` delivers).
/// `filter!(f, init = check)` also validates the parameters with
/// `fn(&str) -> Result<(), String>` when an instance starts.
#[macro_export]
macro_rules! filter {
    ($filter:path) => {
        $crate::filter!($filter, init = $crate::runtime::accept_any_params);
    };
    ($filter:path, init = $accept:path) => {
        $crate::__common_exports!($accept);
        const _: fn(&$crate::Message<'_>) -> bool = $filter;

        /// ABI v1: decides one message (1 deliver, 0 skip).
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_filter(ptr: i32, len: i32) -> i32 {
            $crate::runtime::filter(ptr, len, $filter)
        }
    };
}

/// Exports a dead-letter policy plugin around `fn(&Failure) -> Decision`.
/// `dlq_policy!(f, init = check)` also validates the parameters.
#[macro_export]
macro_rules! dlq_policy {
    ($policy:path) => {
        $crate::dlq_policy!($policy, init = $crate::runtime::accept_any_params);
    };
    ($policy:path, init = $accept:path) => {
        $crate::__common_exports!($accept);
        const _: fn(&$crate::Failure<'_>) -> $crate::Decision = $policy;

        /// ABI v1: decides one failed delivery.
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_dlq_policy(ptr: i32, len: i32) -> i64 {
            $crate::runtime::dlq_policy(ptr, len, $policy)
        }
    };
}
