//! What the broker and its store are doing.

use std::time::Duration;

use weir_storage::StoreStats;

use super::{Core, SubscriptionInfo};
use crate::config::FlushKind;
use crate::delayed::TimerStatus;

/// A snapshot of the broker's state.
#[derive(Debug, Clone)]
pub struct CoreStatus {
    /// Time since the broker started.
    pub uptime: Duration,
    /// When sends are acknowledged.
    pub flush: FlushKind,
    /// User topics.
    pub topic_count: usize,
    /// The store's figures and state.
    pub store: StoreStats,
    /// Every registered subscription with its filter statistics.
    pub subscriptions: Vec<SubscriptionInfo>,
    /// Delayed messages: pending timers and deliveries.
    pub timers: TimerStatus,
}

impl Core {
    /// A snapshot of the broker's state.
    pub fn status(&self) -> CoreStatus {
        CoreStatus {
            uptime: self.started.elapsed(),
            flush: self.config.flush,
            topic_count: self.topics.list(false).len(),
            store: self.store.stats(),
            subscriptions: self.subscriptions(None, None),
            timers: self.timers.status(),
        }
    }
}
