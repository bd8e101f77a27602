//! One subscription's use of a plugin: its parameters, a small pool of
//! instances, the consecutive-failure count that disables it, its counters.
//!
//! A call takes an idle instance of the plugin's current version (or starts
//! one), makes the call, and gives the instance back only if the call
//! succeeded: a trapped or over-budget instance may be inconsistent and is
//! dropped. Calls are synchronous and may take up to the fuel budget: run
//! them on a blocking pool (`tokio::task::spawn_blocking` or a dedicated
//! thread pool), never on an async worker thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

use weir_sql92::Term;

use crate::compile::CompiledPlugin;
use crate::instance::{CallCost, CallError, PluginInstance};
use crate::sandbox::GuestLog;
use crate::slot::PluginSlot;
use crate::stats::{CallStats, StatsSnapshot};

/// Whether a subscription's plugin is being called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum HandleState {
    /// Calls are made.
    Active,
    /// Calls fail at once until [`PluginHandle::enable`] or a re-upload.
    Disabled {
        /// Why.
        reason: String,
    },
}

/// What one call did, for callers that show it (the offline runner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTrace<T> {
    /// The decision, or why there is none.
    pub result: Result<T, CallError>,
    /// Its cost.
    pub cost: CallCost,
    /// What the guest logged during it.
    pub logs: Vec<GuestLog>,
}

/// A subscription's handle on a plugin. Cheap to clone; clones share the
/// pool, the state and the counters.
#[derive(Clone)]
pub struct PluginHandle {
    shared: Arc<HandleShared>,
}

pub(crate) struct HandleShared {
    slot: Arc<PluginSlot>,
    params: String,
    /// The index hints the subscription was given: every version it calls must promise them.
    hints: Vec<Term>,
    /// Boxed: an instance is large and moves in and out on every call; boxing
    /// took a trivial call from 515 ns to 410 ns (`benches/filter_call.rs`).
    #[expect(clippy::vec_box, reason = "measured: moving a boxed instance is cheaper")]
    idle: Mutex<Vec<Box<PluginInstance>>>,
    consecutive_failures: AtomicU32,
    disabled: AtomicBool,
    disabled_reason: Mutex<Option<String>>,
    stats: CallStats,
}

impl std::fmt::Debug for HandleShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHandle")
            .field("plugin", &self.slot.name())
            .field("params", &self.params)
            .field("disabled", &self.disabled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.shared.fmt(f)
    }
}

impl PluginHandle {
    pub(crate) fn new(slot: Arc<PluginSlot>, params: &str, hints: Vec<Term>) -> Self {
        let shared = Arc::new(HandleShared {
            slot,
            params: params.to_owned(),
            hints,
            idle: Mutex::new(Vec::new()),
            consecutive_failures: AtomicU32::new(0),
            disabled: AtomicBool::new(false),
            disabled_reason: Mutex::new(None),
            stats: CallStats::default(),
        });
        shared.slot.register(&shared);
        Self { shared }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.shared.slot.name()
    }

    /// The parameters this subscription passes to the plugin.
    pub fn params(&self) -> &str {
        &self.shared.params
    }

    /// The index hints the subscription's bloom stage applies for this plugin.
    pub fn hints(&self) -> &[Term] {
        &self.shared.hints
    }

    /// The version calls use now.
    pub fn plugin(&self) -> CompiledPlugin {
        self.shared.slot.current()
    }

    /// Active or disabled (with the reason).
    pub fn state(&self) -> HandleState {
        self.shared.state()
    }

    /// Re-enables the plugin for this subscription.
    pub fn enable(&self) {
        self.shared.enable();
    }

    /// This subscription's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Makes one call with an instance of the current version. Failures
    /// count towards disabling; the instance is kept only after a success.
    pub(crate) fn call<T>(&self, invoke: impl FnOnce(&mut PluginInstance) -> Result<T, CallError>) -> CallTrace<T> {
        let shared = &*self.shared;
        if shared.slot.is_removed() {
            let result = Err(CallError::Removed { name: shared.slot.name().to_owned() });
            return CallTrace { result, cost: CallCost::default(), logs: Vec::new() };
        }
        if shared.disabled.load(Ordering::Acquire) {
            let reason = shared.disabled_reason.lock().clone().unwrap_or_default();
            return CallTrace {
                result: Err(CallError::Disabled { reason }),
                cost: CallCost::default(),
                logs: Vec::new(),
            };
        }
        let started = Instant::now();
        let plugin = shared.slot.current();
        let (result, fuel, logs, instance) = match self.checkout(&plugin) {
            Ok(mut instance) => {
                let result = invoke(&mut instance);
                let logs = instance.take_logs();
                (result, instance.last_fuel_used(), logs, Some(instance))
            }
            Err(error) => (Err(error), 0, Vec::new(), None),
        };
        let cost = CallCost { elapsed: started.elapsed(), fuel };
        shared.stats.record(cost.elapsed, fuel, result.is_err());
        shared.slot.stats.record(cost.elapsed, fuel, result.is_err());
        match (&result, instance) {
            (Ok(_), Some(instance)) => {
                shared.consecutive_failures.store(0, Ordering::Relaxed);
                let mut idle = shared.idle.lock();
                if idle.len() < plugin.limits().max_idle_instances {
                    idle.push(instance);
                }
            }
            (Err(error), _) => shared.failed(error, plugin.limits().max_consecutive_failures),
            (Ok(_), None) => {}
        }
        CallTrace { result, cost, logs }
    }

    /// An idle instance of `plugin`, or a new one.
    fn checkout(&self, plugin: &CompiledPlugin) -> Result<Box<PluginInstance>, CallError> {
        let mut idle = self.shared.idle.lock();
        while let Some(instance) = idle.pop() {
            if instance.plugin().same_as(plugin) {
                return Ok(instance);
            }
            // An instance of a replaced version: dropped.
        }
        drop(idle);
        PluginInstance::start(plugin, &self.shared.params).map(Box::new)
    }
}

impl HandleShared {
    fn state(&self) -> HandleState {
        match &*self.disabled_reason.lock() {
            Some(reason) => HandleState::Disabled { reason: reason.clone() },
            None => HandleState::Active,
        }
    }

    pub(crate) fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }

    pub(crate) fn disabled_reason(&self) -> Option<String> {
        self.disabled_reason.lock().clone()
    }

    /// Whether `plugin` still promises every hint this subscription applies;
    /// if it does not, the bloom stage could skip messages it would deliver.
    pub(crate) fn hints_hold_for(&self, plugin: &CompiledPlugin) -> bool {
        let promised = plugin.manifest().map(|manifest| manifest.hint_terms()).unwrap_or_default();
        self.hints.iter().all(|hint| promised.contains(hint))
    }

    pub(crate) fn enable(&self) {
        let mut reason = self.disabled_reason.lock();
        *reason = None;
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.disabled.store(false, Ordering::Release);
    }

    pub(crate) fn disable(&self, why: String) {
        let mut reason = self.disabled_reason.lock();
        *reason = Some(why);
        self.disabled.store(true, Ordering::Release);
        self.idle.lock().clear();
    }

    fn failed(&self, error: &CallError, max_consecutive: u32) {
        // Saturating: with the offline runner's limit of u32::MAX the count must not wrap.
        let counted =
            self.consecutive_failures.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
        let failures = counted.map_or(u32::MAX, |before| before + 1);
        if failures >= max_consecutive {
            tracing::warn!(plugin = self.slot.name(), failures, %error, "plugin disabled for a subscription");
            self.disable(format!("{failures} consecutive failed calls; last: {error}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::PluginHost;
    use crate::limits::Limits;

    /// The failure count saturates instead of overflowing (or wrapping, which would
    /// keep a plugin that fails forever enabled under a limit of u32::MAX).
    #[test]
    fn the_failure_count_saturates() {
        let trapping = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                (func (export "weir_abi_version") (result i32) i32.const 1)
                (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
                (func (export "weir_dealloc") (param i32 i32))
                (func (export "weir_filter") (param i32 i32) (result i32) unreachable))"#,
        )
        .expect("wat");
        let host = PluginHost::new(Limits { max_consecutive_failures: u32::MAX, ..Limits::default() }).expect("host");
        let plugin = host.compile(&trapping, None).expect("accepted");
        let handle = PluginHandle::new(PluginSlot::new("trapping".into(), plugin), "", Vec::new());
        handle.shared.consecutive_failures.store(u32::MAX - 2, Ordering::Relaxed);
        let message = weir_filters::FilterInput {
            topic: "t",
            queue_id: 0,
            queue_offset: 0,
            tag: "",
            keys: &[],
            properties: &[],
            body: b"",
            born_timestamp_ms: 0,
            reconsume_times: 0,
        };
        assert!(handle.call(|instance| instance.call_filter(&message)).result.is_err());
        assert_eq!(handle.state(), HandleState::Active);
        for _ in 0..3 {
            let result = handle.call(|instance| instance.call_filter(&message)).result;
            assert!(matches!(result, Err(CallError::Disabled { .. }) | Err(CallError::Trap { .. })), "{result:?}");
        }
        assert_eq!(handle.shared.consecutive_failures.load(Ordering::Relaxed), u32::MAX);
        let HandleState::Disabled { reason } = handle.state() else { panic!("still active") };
        assert!(reason.starts_with("4294967295 consecutive failed calls"), "{reason}");
    }
}
