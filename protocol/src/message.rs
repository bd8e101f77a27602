//! A stored message as the broker returns it to pulls and lookups.

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Wire, Writer};

/// A message read back from the broker: what the producer sent plus where and when the
/// broker stored it.
///
/// Format: string msg_id, string topic, `u32` queue_id, `u64` queue_offset, `u64`
/// commitlog_offset, `u64` born_timestamp_ms, `u64` store_timestamp_ms, string
/// born_host, `u32` flags, `u32` reconsume_times, optional string tag, `u32` count ×
/// string keys, `u32` count × (string, string) properties, `u32`-length body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The message id (same as in the send result).
    pub msg_id: String,
    /// The topic it was stored in.
    pub topic: String,
    /// The queue it was stored in.
    pub queue_id: u32,
    /// Its offset in that queue.
    pub queue_offset: u64,
    /// Its position in the CommitLog.
    pub commitlog_offset: u64,
    /// When the producer created it, Unix time in milliseconds.
    pub born_timestamp_ms: u64,
    /// When the broker stored it, Unix time in milliseconds.
    pub store_timestamp_ms: u64,
    /// The producer's address as the broker saw it, e.g. `127.0.0.1:50412`.
    pub born_host: String,
    /// The flags the producer sent.
    pub flags: u32,
    /// How many times it has been redelivered after consume failures.
    pub reconsume_times: u32,
    /// The message's tag.
    pub tag: Option<String>,
    /// Business keys.
    pub keys: Vec<String>,
    /// User properties, in the producer's order.
    pub properties: Vec<(String, String)>,
    /// The payload.
    pub body: Bytes,
}

impl Wire for StoredMessage {
    const MIN_LEN: usize = 2 + 2 + 4 + 8 + 8 + 8 + 8 + 2 + 4 + 4 + 1 + 4 + 4 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("stored_message.msg_id", &self.msg_id)?;
        w.str("stored_message.topic", &self.topic)?;
        w.u32(self.queue_id);
        w.u64(self.queue_offset);
        w.u64(self.commitlog_offset);
        w.u64(self.born_timestamp_ms);
        w.u64(self.store_timestamp_ms);
        w.str("stored_message.born_host", &self.born_host)?;
        w.u32(self.flags);
        w.u32(self.reconsume_times);
        w.opt_str("stored_message.tag", self.tag.as_deref())?;
        w.str_list("stored_message.keys", &self.keys)?;
        w.properties("stored_message.properties", &self.properties)?;
        w.bytes("stored_message.body", &self.body)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(StoredMessage {
            msg_id: r.str("stored_message.msg_id")?,
            topic: r.str("stored_message.topic")?,
            queue_id: r.u32("stored_message.queue_id")?,
            queue_offset: r.u64("stored_message.queue_offset")?,
            commitlog_offset: r.u64("stored_message.commitlog_offset")?,
            born_timestamp_ms: r.u64("stored_message.born_timestamp_ms")?,
            store_timestamp_ms: r.u64("stored_message.store_timestamp_ms")?,
            born_host: r.str("stored_message.born_host")?,
            flags: r.u32("stored_message.flags")?,
            reconsume_times: r.u32("stored_message.reconsume_times")?,
            tag: r.opt_str("stored_message.tag")?,
            keys: r.str_list("stored_message.keys")?,
            properties: r.properties("stored_message.properties")?,
            body: r.bytes("stored_message.body")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::encoded_len;

    #[test]
    fn min_len_is_the_smallest_encoding() {
        let smallest = StoredMessage {
            msg_id: String::new(),
            topic: String::new(),
            queue_id: 0,
            queue_offset: 0,
            commitlog_offset: 0,
            born_timestamp_ms: 0,
            store_timestamp_ms: 0,
            born_host: String::new(),
            flags: 0,
            reconsume_times: 0,
            tag: None,
            keys: Vec::new(),
            properties: Vec::new(),
            body: Bytes::new(),
        };
        assert_eq!(encoded_len(&smallest), StoredMessage::MIN_LEN);
    }
}
