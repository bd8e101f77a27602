//! The current version of one named plugin, swapped atomically on re-upload,
//! and the subscriptions using it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::compile::CompiledPlugin;
use crate::handle::HandleShared;
use crate::stats::CallStats;

/// One named plugin: what its subscriptions call.
#[derive(Debug)]
pub(crate) struct PluginSlot {
    name: String,
    current: RwLock<CompiledPlugin>,
    removed: AtomicBool,
    /// Counters over every subscription, for listings.
    pub(crate) stats: CallStats,
    handles: Mutex<Vec<Weak<HandleShared>>>,
}

impl PluginSlot {
    pub(crate) fn new(name: String, plugin: CompiledPlugin) -> Arc<Self> {
        Arc::new(Self {
            name,
            current: RwLock::new(plugin),
            removed: AtomicBool::new(false),
            stats: CallStats::default(),
            handles: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The version to call now.
    pub(crate) fn current(&self) -> CompiledPlugin {
        self.current.read().clone()
    }

    /// Swaps in a new version and re-enables every subscription's handle,
    /// except those whose index hints the new version no longer promises:
    /// those are disabled first (before the swap), so no call of the new
    /// version is ever made behind hints it does not honour.
    pub(crate) fn replace(&self, plugin: CompiledPlugin) {
        let handles = self.handles();
        let (keep, stale): (Vec<_>, Vec<_>) = handles.into_iter().partition(|handle| handle.hints_hold_for(&plugin));
        for handle in stale {
            handle.disable("replaced by a version whose manifest no longer promises this subscription's index hints; subscribe again".to_owned());
        }
        *self.current.write() = plugin;
        keep.iter().for_each(|handle| handle.enable());
    }

    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn register(&self, handle: &Arc<HandleShared>) {
        let mut handles = self.handles.lock();
        handles.retain(|weak| weak.strong_count() > 0);
        handles.push(Arc::downgrade(handle));
    }

    /// The live handles (subscriptions using this plugin).
    pub(crate) fn handles(&self) -> Vec<Arc<HandleShared>> {
        let mut handles = self.handles.lock();
        handles.retain(|weak| weak.strong_count() > 0);
        handles.iter().filter_map(Weak::upgrade).collect()
    }
}
