//! A group's dead letters (`%DLQ%<group>`, queue 0): listing them and sending them back
//! to their original topics, once each.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use weir_plugins::dlq_topic;
use weir_storage::{AppendStatus, ReadStatus, StoredRecord};

use super::{Core, CoreError, require_group};
use crate::meta::resent::ResentMark;
use crate::retry;

/// Most dead letters one listing returns.
const MAX_PAGE: u32 = 1024;
/// How long a listing waits for dead letters stored just before to reach their queue.
const DISPATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(500);
/// Most dead letters one resend handles.
pub const MAX_RESEND: usize = 1024;

/// A dead letter and whether it was resent.
#[derive(Debug, Clone)]
pub struct DeadLetterEntry {
    /// The record in `%DLQ%<group>`.
    pub record: StoredRecord,
    /// It was resent already.
    pub resent: bool,
}

/// A page of dead letters.
#[derive(Debug, Clone)]
pub struct DeadLetterPage {
    /// Oldest first.
    pub entries: Vec<DeadLetterEntry>,
    /// Where the next page starts.
    pub next_offset: u64,
}

/// What a resend did with one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resend {
    /// Stored again on its original topic under this id.
    Resent(String),
    /// Resent before; nothing done.
    AlreadyResent,
    /// Not a dead letter of the group, or its topic is gone.
    NotFound(String),
}

/// The outcome for one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendResult {
    /// The dead letter's id.
    pub msg_id: String,
    /// Its original topic (empty when not found).
    pub original_topic: String,
    /// What was done.
    pub outcome: Resend,
}

impl Core {
    /// Up to `max` of `group`'s dead letters from `from_offset` on (from the first
    /// retained one when that is gone), or only `msg_id`.
    pub async fn dead_letters(
        self: &Arc<Self>,
        group: String,
        msg_id: Option<String>,
        from_offset: u64,
        max: u32,
    ) -> Result<DeadLetterPage, CoreError> {
        require_group(&group)?;
        self.blocking(move |core| {
            if let Some(msg_id) = msg_id {
                let record = core.dead_letter(&group, &msg_id).map_err(CoreError::NotFound)?;
                let resent = core.resent.get(&group, &msg_id).is_some();
                return Ok(DeadLetterPage {
                    entries: vec![DeadLetterEntry { record, resent }],
                    next_offset: from_offset,
                });
            }
            let topic = dlq_topic(&group);
            if core.topics.get(&topic).is_none() {
                return Ok(DeadLetterPage { entries: Vec::new(), next_offset: 0 });
            }
            // A dead letter whose nack was just answered may not be in its queue yet.
            core.store.wait_dispatched(DISPATCH_WAIT);
            let max = max.clamp(1, MAX_PAGE) as usize;
            let mut read = core.store.read_queue(&topic, 0, from_offset, max)?;
            if read.status == ReadStatus::OffsetTooSmall {
                read = core.store.read_queue(&topic, 0, read.next_offset, max)?;
            }
            let store_id = core.store.store_id();
            let entries = read
                .messages
                .into_iter()
                .map(|m| {
                    let id = weir_storage::MessageId { store_id, commitlog_offset: m.entry.commitlog_offset };
                    let resent = core.resent.get(&group, &id.to_string()).is_some();
                    DeadLetterEntry { record: m.record, resent }
                })
                .collect();
            Ok(DeadLetterPage { entries, next_offset: read.next_offset })
        })
        .await
    }

    /// Sends `group`'s dead letters `msg_ids` back to their original topics (their
    /// original queues while the topic has them), redelivery count reset; each at most
    /// once. The resend and its mark are durable when this returns.
    pub async fn resend_dead_letters(
        self: &Arc<Self>,
        group: String,
        msg_ids: Vec<String>,
    ) -> Result<Vec<ResendResult>, CoreError> {
        require_group(&group)?;
        if msg_ids.len() > MAX_RESEND {
            return Err(CoreError::Invalid(format!("at most {MAX_RESEND} dead letters per resend")));
        }
        self.blocking(move |core| {
            // One resend at a time: two resends of one dead letter must not both send it.
            let _serial = core.resending.lock();
            msg_ids.into_iter().map(|msg_id| core.resend_one(&group, msg_id)).collect()
        })
        .await
    }

    fn resend_one(&self, group: &str, msg_id: String) -> Result<ResendResult, CoreError> {
        let not_found = |msg_id, original_topic, detail| {
            Ok(ResendResult { msg_id, original_topic, outcome: Resend::NotFound(detail) })
        };
        let record = match self.dead_letter(group, &msg_id) {
            Ok(record) => record,
            Err(detail) => return not_found(msg_id, String::new(), detail),
        };
        let view = record.view();
        let origin = retry::dead_letter_origin(&view);
        let original_topic = origin.topic.to_owned();
        if self.resent.get(group, &msg_id).is_some() {
            return Ok(ResendResult { msg_id, original_topic, outcome: Resend::AlreadyResent });
        }
        let Some(topic) = self.topics.get(origin.topic) else {
            let detail = format!("its original topic {:?} no longer exists", origin.topic);
            return not_found(msg_id, original_topic, detail);
        };
        let queue_id =
            origin.queue_id.filter(|&q| q < topic.write_queues).unwrap_or_else(|| self.topics.pick_queue(&topic));
        let message = retry::resent(&view, origin.topic, queue_id);
        let result = self.store.append_batch(std::slice::from_ref(&message))?.remove(0);
        if result.status != AppendStatus::SendOk {
            return Err(CoreError::Internal(format!(
                "dead letter {msg_id} was resent as {} but not flushed in time ({:?}); resend again",
                result.msg_id, result.status
            )));
        }
        let new_msg_id = result.msg_id.to_string();
        let mark = ResentMark { new_msg_id: new_msg_id.clone(), at_ms: crate::delayed::now_ms() };
        self.resent.mark(group, &msg_id, mark)?;
        self.retry_policies.get(group).counters.resent.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%group, %msg_id, topic = origin.topic, %new_msg_id, "dead letter resent");
        Ok(ResendResult { msg_id, original_topic, outcome: Resend::Resent(new_msg_id) })
    }

    /// `group`'s dead letter `msg_id`, or why it is none.
    fn dead_letter(&self, group: &str, msg_id: &str) -> Result<StoredRecord, String> {
        let record = self.store.message_by_id(msg_id).map_err(|err| format!("message {msg_id}: {err}"))?;
        let topic = dlq_topic(group);
        if record.view().topic() != topic {
            return Err(format!("message {msg_id} is not in {topic}"));
        }
        Ok(record)
    }
}
