//! Lookups: messages by id or key, a queue's offsets, the offset at a time.

use weir_storage::StoredRecord;

use super::{Core, CoreError};

/// Most messages one lookup by key returns.
const MAX_KEY_RESULTS: u32 = 64;

impl Core {
    /// The message with this id.
    pub fn message_by_id(&self, msg_id: &str) -> Result<StoredRecord, CoreError> {
        Ok(self.store.message_by_id(msg_id)?)
    }

    /// Up to `max_results` (1 to 64) messages of `topic` carrying `key`.
    pub fn messages_by_key(&self, topic: &str, key: &str, max_results: u32) -> Result<Vec<StoredRecord>, CoreError> {
        self.existing_topic(topic)?;
        Ok(self.store.messages_by_key(topic, key, max_results.clamp(1, MAX_KEY_RESULTS) as usize))
    }

    /// A readable queue's first retained offset and its end.
    pub fn queue_offsets(&self, topic: &str, queue_id: u32) -> Result<(u64, u64), CoreError> {
        self.readable_queue(topic, queue_id)?;
        Ok(self.store.queue_offsets(topic, queue_id))
    }

    /// The first offset of a readable queue stored at or after `timestamp_ms`.
    pub fn offset_at_time(&self, topic: &str, queue_id: u32, timestamp_ms: u64) -> Result<u64, CoreError> {
        self.readable_queue(topic, queue_id)?;
        Ok(self.store.offset_at_time(topic, queue_id, i64::try_from(timestamp_ms).unwrap_or(i64::MAX)))
    }
}
