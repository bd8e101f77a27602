//! A dlq-policy plugin as a [`DlqPolicy`]: when a call fails, the message
//! gets the default schedule instead of being lost.

use std::sync::Arc;

use crate::compile::CompiledPlugin;
use crate::dlq::{DefaultRetryPolicy, DlqPolicy, FailedDelivery, RetryDecision};
use crate::filter::{WrongKind, check_kind};
use crate::handle::{CallTrace, PluginHandle};
use crate::instance::CallError;
use crate::kind::PluginKind;
use crate::sandbox::emit_logs;
use crate::slot::PluginSlot;

/// A consumer group's WebAssembly dead-letter policy. Its calls are
/// synchronous: make them on a blocking pool.
#[derive(Debug, Clone)]
pub struct WasmDlqPolicy {
    handle: PluginHandle,
    fallback: DefaultRetryPolicy,
}

impl WasmDlqPolicy {
    /// A policy over `plugin` outside any registry (tests, the offline runner).
    pub fn new(name: &str, plugin: CompiledPlugin, params: &str) -> Result<Self, WrongKind> {
        check_kind(name, &plugin, PluginKind::DlqPolicy)?;
        Ok(Self::from_slot(PluginSlot::new(name.to_owned(), plugin), params))
    }

    pub(crate) fn from_slot(slot: Arc<PluginSlot>, params: &str) -> Self {
        Self { handle: PluginHandle::new(slot, params, Vec::new()), fallback: DefaultRetryPolicy::default() }
    }

    /// The group's handle: state, counters, enable.
    pub fn handle(&self) -> &PluginHandle {
        &self.handle
    }

    /// The plugin's decision, with the cost and the guest's logs.
    pub fn decide_traced(&self, failed: &FailedDelivery<'_>) -> CallTrace<RetryDecision> {
        self.handle.call(|instance| instance.call_dlq_policy(failed))
    }

    /// The plugin's decision or why it gave none (the caller falls back); the guest's
    /// logs go to the broker's log.
    pub fn try_decide(&self, failed: &FailedDelivery<'_>) -> Result<RetryDecision, CallError> {
        let trace = self.decide_traced(failed);
        emit_logs(self.handle.name(), &trace.logs);
        trace.result
    }
}

impl DlqPolicy for WasmDlqPolicy {
    /// The plugin's decision, or the default schedule's when the call fails.
    fn decide(&self, failed: &FailedDelivery<'_>) -> RetryDecision {
        self.try_decide(failed).unwrap_or_else(|error| {
            tracing::warn!(plugin = self.handle.name(), %error, "dlq-policy call failed: default schedule used");
            self.fallback.decide(failed)
        })
    }
}
