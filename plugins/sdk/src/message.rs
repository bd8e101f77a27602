//! The messages a plugin receives, decoded from ABI v1's input encoding
//! (`plugins/ABI.md`), and [`TestMessage`], which encodes one for tests.

use std::fmt;
use std::time::Duration;

/// One message, borrowed from the host's input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The message's topic.
    pub topic: &'a str,
    /// The queue it is stored in.
    pub queue_id: u32,
    /// Its position in that queue.
    pub queue_offset: u64,
    /// Its tag, empty for none.
    pub tag: &'a str,
    /// Its business keys.
    pub keys: Vec<&'a str>,
    /// Its user properties, in stored order.
    pub properties: Vec<(&'a str, &'a str)>,
    /// Its body.
    pub body: &'a [u8],
    /// When the producer created it, ms since the Unix epoch.
    pub born_timestamp_ms: i64,
    /// How many times it was redelivered to this consumer group.
    pub reconsume_times: u32,
}

impl<'a> Message<'a> {
    /// Decodes a message (ABI v1 layout) that fills `input` exactly.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { input, at: 0 };
        let message = reader.message()?;
        reader.finish()?;
        Ok(message)
    }

    /// The value of the first property called `name`.
    pub fn property(&self, name: &str) -> Option<&'a str> {
        self.properties.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// The body as UTF-8 text, if it is.
    pub fn body_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.body).ok()
    }
}

/// A delivery that failed, as a dead-letter policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure<'a> {
    /// Which delivery failed, starting at 1.
    pub attempt: u32,
    /// The consumer group whose consumer failed.
    pub group: &'a str,
    /// Why, as the consumer reported it (may be empty).
    pub reason: &'a str,
    /// The message.
    pub message: Message<'a>,
}

impl<'a> Failure<'a> {
    /// Decodes a failed delivery (ABI v1 layout) that fills `input` exactly.
    pub fn decode(input: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { input, at: 0 };
        let attempt = reader.u32()?;
        let group = reader.str()?;
        let reason = reader.str()?;
        let message = reader.message()?;
        reader.finish()?;
        Ok(Self { attempt, group, reason, message })
    }
}

/// What a dead-letter policy decides for a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Redeliver after this delay (at most 7 days).
    RetryAfter(Duration),
    /// Move to the consumer group's dead-letter topic now.
    DeadLetter,
    /// Drop the message.
    Discard,
}

impl Decision {
    /// The ABI v1 result value: milliseconds to wait, `-1` dead letter, `-2` discard.
    pub fn to_abi(self) -> i64 {
        match self {
            Decision::RetryAfter(delay) => i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
            Decision::DeadLetter => -1,
            Decision::Discard => -2,
        }
    }
}

/// The input did not follow the ABI v1 encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset where decoding stopped.
    pub at: usize,
    /// What was wrong there.
    pub what: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad plugin input at byte {}: {}", self.at, self.what)
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over the input.
struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.input.len());
        let end = end.ok_or(DecodeError { at: self.at, what: "truncated" })?;
        let bytes = &self.input[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_le_bytes)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.at;
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError { at, what: "invalid UTF-8" })
    }

    fn count(&mut self) -> Result<usize, DecodeError> {
        let at = self.at;
        let count = self.u32()? as usize;
        // Each entry takes at least 4 bytes: a larger count cannot be honest.
        if count > (self.input.len() - self.at) / 4 {
            return Err(DecodeError { at, what: "count larger than the input" });
        }
        Ok(count)
    }

    fn message(&mut self) -> Result<Message<'a>, DecodeError> {
        let queue_id = self.u32()?;
        let queue_offset = self.array().map(u64::from_le_bytes)?;
        let born_timestamp_ms = self.array().map(i64::from_le_bytes)?;
        let reconsume_times = self.u32()?;
        let topic = self.str()?;
        let tag = self.str()?;
        let keys = (0..self.count()?).map(|_| self.str()).collect::<Result<_, _>>()?;
        let properties = (0..self.count()?).map(|_| Ok((self.str()?, self.str()?))).collect::<Result<_, _>>()?;
        let body = self.bytes()?;
        Ok(Message { topic, queue_id, queue_offset, tag, keys, properties, body, born_timestamp_ms, reconsume_times })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.at == self.input.len() { Ok(()) } else { Err(DecodeError { at: self.at, what: "trailing bytes" }) }
    }
}

/// An owned message that encodes itself the way the host does, for a plugin's
/// own tests: `TestMessage::new("orders").property("region", "SH").encode()`,
/// then [`Message::decode`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestMessage {
    /// The topic.
    pub topic: String,
    /// The queue id.
    pub queue_id: u32,
    /// The queue offset.
    pub queue_offset: u64,
    /// The tag, empty for none.
    pub tag: String,
    /// The keys.
    pub keys: Vec<String>,
    /// The properties.
    pub properties: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The born timestamp.
    pub born_timestamp_ms: i64,
    /// The reconsume count.
    pub reconsume_times: u32,
}

impl TestMessage {
    /// A message on `topic` with nothing else set.
    pub fn new(topic: &str) -> Self {
        Self { topic: topic.to_owned(), ..Self::default() }
    }

    /// Sets the tag.
    pub fn tag(mut self, tag: &str) -> Self {
        self.tag = tag.to_owned();
        self
    }

    /// Adds a key.
    pub fn key(mut self, key: &str) -> Self {
        self.keys.push(key.to_owned());
        self
    }

    /// Adds a property.
    pub fn property(mut self, name: &str, value: &str) -> Self {
        self.properties.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The ABI v1 encoding of this message, as `weir_filter` receives it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.queue_id.to_le_bytes());
        out.extend_from_slice(&self.queue_offset.to_le_bytes());
        out.extend_from_slice(&self.born_timestamp_ms.to_le_bytes());
        out.extend_from_slice(&self.reconsume_times.to_le_bytes());
        put_bytes(&mut out, self.topic.as_bytes());
        put_bytes(&mut out, self.tag.as_bytes());
        put_len(&mut out, self.keys.len());
        self.keys.iter().for_each(|key| put_bytes(&mut out, key.as_bytes()));
        put_len(&mut out, self.properties.len());
        for (name, value) in &self.properties {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        put_bytes(&mut out, &self.body);
        out
    }

    /// The ABI v1 encoding of this message failing, as `weir_dlq_policy` receives it.
    pub fn encode_failure(&self, attempt: u32, group: &str, reason: &str) -> Vec<u8> {
        let mut out = attempt.to_le_bytes().to_vec();
        put_bytes(&mut out, group.as_bytes());
        put_bytes(&mut out, reason.as_bytes());
        out.extend_from_slice(&self.encode());
        out
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Test messages are far below 4 GiB; saturate rather than wrap.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TestMessage {
        TestMessage {
            topic: "orders".into(),
            queue_id: 3,
            queue_offset: 42,
            tag: "paid".into(),
            keys: vec!["k1".into(), "k2".into()],
            properties: vec![("region".into(), "SH".into()), ("amount".into(), "120".into())],
            body: b"{\"x\":1}".to_vec(),
            born_timestamp_ms: -5,
            reconsume_times: 2,
        }
    }

    #[test]
    fn message_round_trips() {
        let bytes = sample().encode();
        let message = Message::decode(&bytes).expect("decodes");
        assert_eq!(message.topic, "orders");
        assert_eq!((message.queue_id, message.queue_offset, message.reconsume_times), (3, 42, 2));
        assert_eq!(message.born_timestamp_ms, -5);
        assert_eq!(message.tag, "paid");
        assert_eq!(message.keys, ["k1", "k2"]);
        assert_eq!(message.property("amount"), Some("120"));
        assert_eq!(message.property("missing"), None);
        assert_eq!(message.body_str(), Some("{\"x\":1}"));
    }

    #[test]
    fn failure_round_trips() {
        let bytes = sample().encode_failure(3, "pay", "validation: no amount");
        let failure = Failure::decode(&bytes).expect("decodes");
        assert_eq!((failure.attempt, failure.group, failure.reason), (3, "pay", "validation: no amount"));
        assert_eq!(failure.message.topic, "orders");
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(Message::decode(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Message::decode(&longer).unwrap_err().what, "trailing bytes");
    }

    #[test]
    fn lying_counts_and_bad_utf8_are_errors() {
        let mut bytes = TestMessage::new("t").encode();
        // The key count follows the header (24), topic (4 + 1) and tag (4).
        bytes[33..37].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Message::decode(&bytes).unwrap_err().what, "count larger than the input");
        let mut bytes = TestMessage::new("t").encode();
        bytes[28] = 0xff;
        assert_eq!(Message::decode(&bytes).unwrap_err().what, "invalid UTF-8");
    }

    #[test]
    fn decisions_encode_as_documented() {
        assert_eq!(Decision::RetryAfter(Duration::from_secs(2)).to_abi(), 2000);
        assert_eq!(Decision::DeadLetter.to_abi(), -1);
        assert_eq!(Decision::Discard.to_abi(), -2);
    }
}
