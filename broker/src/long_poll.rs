//! Long polling: a pull that finds nothing new waits on its queue's
//! [`Notify`], which the dispatcher fires as soon as a record for that queue
//! is in the ConsumeQueue (RocketMQ's PullRequestHoldService + notify).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use weir_storage::{DispatchHook, Dispatched};

/// Per-queue wake-ups for held pulls.
#[derive(Debug, Default)]
pub struct ArrivalNotifier {
    queues: Mutex<HashMap<String, HashMap<u32, Arc<Notify>>>>,
}

impl ArrivalNotifier {
    /// The notifier of a queue; register interest (`notified()` + `enable()`) before re-checking the queue.
    pub fn watch(&self, topic: &str, queue_id: u32) -> Arc<Notify> {
        let mut queues = self.queues.lock();
        let by_id = match queues.get_mut(topic) {
            Some(by_id) => by_id,
            None => queues.entry(topic.to_owned()).or_default(),
        };
        by_id.entry(queue_id).or_default().clone()
    }

    /// Wakes every pull held on any queue (shutdown).
    pub fn wake_all(&self) {
        for notify in self.queues.lock().values().flat_map(HashMap::values) {
            notify.notify_waiters();
        }
    }
}

impl DispatchHook for ArrivalNotifier {
    /// Pulls held on a deleted topic wake up and find it gone (`UNKNOWN_TOPIC`).
    fn delete_topic(&self, topic: &str) -> std::io::Result<()> {
        if let Some(by_id) = self.queues.lock().remove(topic) {
            by_id.values().for_each(|notify| notify.notify_waiters());
        }
        Ok(())
    }

    fn dispatch(&self, dispatched: &Dispatched<'_>) -> std::io::Result<()> {
        let view = dispatched.record.view();
        let queues = self.queues.lock();
        if let Some(notify) = queues.get(view.topic()).and_then(|by_id| by_id.get(&view.queue_id())) {
            notify.notify_waiters();
        }
        Ok(())
    }
}
