//! Cancelling a pending delayed message by the id its send returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_timer::Payload;

use super::{Core, CoreError};
use crate::delayed::{CancelRefused, TIMER_TOPIC, target};

/// How long a cancel waits for the dispatcher to file the timer of a message sent just before.
const DISPATCH_WAIT: Duration = Duration::from_secs(5);

/// A delayed message that was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelledDelay {
    /// The topic it would have been delivered to.
    pub topic: String,
    /// When it was due, Unix ms.
    pub deliver_at_ms: u64,
}

impl Core {
    /// Cancels the pending delayed message `msg_id` (the id its send returned): it is
    /// never delivered. The cancel is durable when this returns. `NotFound` when the id
    /// is not a delayed message's, or it was already delivered.
    pub async fn cancel_delayed(self: &Arc<Self>, msg_id: String) -> Result<CancelledDelay, CoreError> {
        self.blocking(move |core| {
            let record = core.store.message_by_id(&msg_id)?;
            let view = record.view();
            let target = match target(&view) {
                Some(target) if view.topic() == TIMER_TOPIC => target,
                _ => {
                    return Err(CoreError::NotFound(format!(
                        "message {msg_id} (topic {}) is not a pending delayed message; cancel with the id a delayed \
                         send returned",
                        view.topic()
                    )));
                }
            };
            // A message sent a moment ago may not have its timer filed yet.
            let end = view.commitlog_offset() + view.len() as u64;
            let deadline = Instant::now() + DISPATCH_WAIT;
            while core.timers.enqueued_end() < end {
                if Instant::now() >= deadline {
                    return Err(CoreError::Internal(format!(
                        "the timer of {msg_id} is not filed yet (dispatch lags); try again"
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let payload = Payload { commitlog_offset: view.commitlog_offset(), size: view.len() as u32 };
            match core.timers.cancel(payload, target.deliver_at_ms) {
                Ok(()) => Ok(CancelledDelay { topic: target.topic.to_owned(), deliver_at_ms: target.deliver_at_ms }),
                Err(err @ (CancelRefused::NotPending { .. } | CancelRefused::AlreadyCancelled)) => {
                    Err(CoreError::NotFound(format!("delayed message {msg_id}: {err}")))
                }
                Err(err) => Err(CoreError::Internal(format!("cancelling {msg_id}: {err}"))),
            }
        })
        .await
    }
}
