//! A filter plugin as the read path's stage 5 ([`MessageFilter`]).

use weir_filters::{FilterCallError, FilterInput, MessageFilter};
use weir_sql92::Term;

use crate::compile::CompiledPlugin;
use crate::handle::{CallTrace, PluginHandle};
use crate::instance::CallError;
use crate::kind::PluginKind;
use crate::sandbox::emit_logs;
use crate::slot::PluginSlot;

/// A subscription's WebAssembly filter. Its calls are synchronous: make them
/// on a blocking pool, never on an async worker thread.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    handle: PluginHandle,
}

/// The plugin is not a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{name}` is a {kind}, not a {expected}")]
pub struct WrongKind {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: PluginKind,
    /// The kind asked for.
    pub expected: PluginKind,
}

impl WasmFilter {
    /// A filter over `plugin` outside any registry (tests, the offline runner).
    pub fn new(name: &str, plugin: CompiledPlugin, params: &str) -> Result<Self, WrongKind> {
        check_kind(name, &plugin, PluginKind::Filter)?;
        Ok(Self::from_slot(PluginSlot::new(name.to_owned(), plugin), params))
    }

    pub(crate) fn from_slot(slot: std::sync::Arc<PluginSlot>, params: &str) -> Self {
        let hints = slot.current().manifest().map(|manifest| manifest.hint_terms()).unwrap_or_default();
        Self { handle: PluginHandle::new(slot, params, hints) }
    }

    /// The subscription's handle: state, counters, enable.
    pub fn handle(&self) -> &PluginHandle {
        &self.handle
    }

    /// Decides one message and reports the cost and the guest's logs.
    pub fn decide_traced(&self, message: &FilterInput<'_>) -> CallTrace<bool> {
        self.handle.call(|instance| instance.call_filter(message))
    }
}

impl MessageFilter for WasmFilter {
    fn decide(&self, message: &FilterInput<'_>) -> Result<bool, FilterCallError> {
        let trace = self.decide_traced(message);
        emit_logs(self.handle.name(), &trace.logs);
        trace.result.map_err(|error| match error {
            CallError::Disabled { .. } | CallError::Removed { .. } => FilterCallError::Disabled(error.to_string()),
            other => FilterCallError::Failed(other.to_string()),
        })
    }

    fn index_hints(&self) -> &[Term] {
        self.handle.hints()
    }
}

pub(crate) fn check_kind(name: &str, plugin: &CompiledPlugin, expected: PluginKind) -> Result<(), WrongKind> {
    if plugin.kind() == expected {
        Ok(())
    } else {
        Err(WrongKind { name: name.to_owned(), kind: plugin.kind(), expected })
    }
}
