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

impl StoredMessage {
    /// The same message as borrowed fields.
    pub fn borrowed(
        &self,
    ) -> StoredMessageRef<'_, impl Iterator<Item = &str> + Clone, impl Iterator<Item = (&str, &str)> + Clone> {
        StoredMessageRef {
            msg_id: &self.msg_id,
            topic: &self.topic,
            queue_id: self.queue_id,
            queue_offset: self.queue_offset,
            commitlog_offset: self.commitlog_offset,
            born_timestamp_ms: self.born_timestamp_ms,
            store_timestamp_ms: self.store_timestamp_ms,
            born_host: &self.born_host,
            flags: self.flags,
            reconsume_times: self.reconsume_times,
            tag: self.tag.as_deref(),
            keys: self.keys.iter().map(String::as_str),
            properties: self.properties.iter().map(|(name, value)| (name.as_str(), value.as_str())),
            body: &self.body,
        }
    }
}

/// A stored message's fields borrowed from wherever they live, encoded exactly as the
/// [`StoredMessage`] they describe. The broker writes pull pages straight from its
/// CommitLog records this way (see [`PullPageWriter`](crate::PullPageWriter)), without
/// allocating a `StoredMessage` per message.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // the fields are StoredMessage's, documented there
pub struct StoredMessageRef<'a, K, P> {
    pub msg_id: &'a str,
    pub topic: &'a str,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub born_timestamp_ms: u64,
    pub store_timestamp_ms: u64,
    pub born_host: &'a str,
    pub flags: u32,
    pub reconsume_times: u32,
    pub tag: Option<&'a str>,
    /// Business keys, in order.
    pub keys: K,
    /// User properties as (name, value), in order.
    pub properties: P,
    pub body: &'a [u8],
}

impl<'a, K, P> StoredMessageRef<'a, K, P>
where
    K: Iterator<Item = &'a str> + Clone,
    P: Iterator<Item = (&'a str, &'a str)> + Clone,
{
    /// An owned copy.
    pub fn to_stored(&self) -> StoredMessage {
        StoredMessage {
            msg_id: self.msg_id.to_owned(),
            topic: self.topic.to_owned(),
            queue_id: self.queue_id,
            queue_offset: self.queue_offset,
            commitlog_offset: self.commitlog_offset,
            born_timestamp_ms: self.born_timestamp_ms,
            store_timestamp_ms: self.store_timestamp_ms,
            born_host: self.born_host.to_owned(),
            flags: self.flags,
            reconsume_times: self.reconsume_times,
            tag: self.tag.map(str::to_owned),
            keys: self.keys.clone().map(str::to_owned).collect(),
            properties: self.properties.clone().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
            body: Bytes::copy_from_slice(self.body),
        }
    }

    /// Writes the [`StoredMessage`] format.
    pub(crate) fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("stored_message.msg_id", self.msg_id)?;
        w.str("stored_message.topic", self.topic)?;
        w.u32(self.queue_id);
        w.u64(self.queue_offset);
        w.u64(self.commitlog_offset);
        w.u64(self.born_timestamp_ms);
        w.u64(self.store_timestamp_ms);
        w.str("stored_message.born_host", self.born_host)?;
        w.u32(self.flags);
        w.u32(self.reconsume_times);
        w.opt_str("stored_message.tag", self.tag)?;
        w.str_iter("stored_message.keys", self.keys.clone())?;
        w.properties_iter("stored_message.properties", self.properties.clone())?;
        w.bytes("stored_message.body", self.body)
    }
}

impl Wire for StoredMessage {
    const MIN_LEN: usize = 2 + 2 + 4 + 8 + 8 + 8 + 8 + 2 + 4 + 4 + 1 + 4 + 4 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.borrowed().encode(w)
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
