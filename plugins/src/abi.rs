//! ABI v1 on the host side (`plugins/ABI.md`): export and import names, the
//! input encoding of a message and of a failed delivery, and the meaning of
//! the values the entry points return.

use std::time::Duration;

use weir_filters::FilterInput;

use crate::dlq::{FailedDelivery, RetryDecision};

/// The ABI version this host implements.
pub const ABI_VERSION: i32 = 1;

/// Export: the module's linear memory.
pub const MEMORY: &str = "memory";
/// Export: `() -> i32`, the ABI version the module implements.
pub const ABI_VERSION_FN: &str = "weir_abi_version";
/// Export: `(size: i32) -> i32`, a buffer for the host to write into.
pub const ALLOC_FN: &str = "weir_alloc";
/// Export: `(ptr: i32, size: i32)`, frees a buffer from [`ALLOC_FN`].
pub const DEALLOC_FN: &str = "weir_dealloc";
/// Optional export: `(ptr: i32, len: i32) -> i32`, the subscription's parameters.
pub const INIT_FN: &str = "weir_init";
/// Export of a filter: `(ptr: i32, len: i32) -> i32`.
pub const FILTER_FN: &str = "weir_filter";
/// Export of a dlq-policy: `(ptr: i32, len: i32) -> i64`.
pub const DLQ_POLICY_FN: &str = "weir_dlq_policy";

/// The only import module a plugin may use.
pub const IMPORT_MODULE: &str = "weir";
/// Import `weir.log(level: i32, ptr: i32, len: i32)`.
pub const LOG_FN: &str = "log";

/// The name of the custom section holding the manifest.
pub const MANIFEST_SECTION: &str = "weir-manifest";

/// The longest retry delay a dlq-policy may ask for.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

/// `weir_dlq_policy`'s result for "dead-letter topic now".
const DEAD_LETTER: i64 = -1;
/// `weir_dlq_policy`'s result for "discard".
const DISCARD: i64 = -2;

/// Why an input cannot be encoded: a field is longer than a `u32` length can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message field of {len} bytes exceeds the ABI's 4 GiB limit")]
pub struct EncodeError {
    /// The oversized length.
    pub len: usize,
}

/// Where an encoding goes: a growable vector, a length counter, or a slice
/// of exactly the encoded length (the guest's input buffer).
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts the bytes an encoding takes.
#[derive(Debug, Default)]
pub struct LenCounter(pub usize);

impl Sink for LenCounter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Fills a slice sized by [`LenCounter`]; bytes beyond its end are dropped
/// (the two passes encode the same input, so none are).
#[derive(Debug)]
pub struct SliceSink<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> SliceSink<'a> {
    /// A sink writing `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, at: 0 }
    }
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        if let Some(target) = self.buf.get_mut(self.at..end) {
            target.copy_from_slice(bytes);
        }
        self.at = end;
    }
}

/// Encodes `message` (Format: queue id u32, queue offset u64, born ms i64,
/// reconsume u32, topic str, tag str, keys count+str, properties
/// count+(str, str), body bytes; `str`/`bytes` = u32 length + bytes).
pub fn encode_message(message: &FilterInput<'_>, out: &mut impl Sink) -> Result<(), EncodeError> {
    out.put(&message.queue_id.to_le_bytes());
    out.put(&message.queue_offset.to_le_bytes());
    out.put(&message.born_timestamp_ms.to_le_bytes());
    out.put(&message.reconsume_times.to_le_bytes());
    put_bytes(out, message.topic.as_bytes())?;
    put_bytes(out, message.tag.as_bytes())?;
    put_len(out, message.keys.len())?;
    for key in message.keys {
        put_bytes(out, key.as_bytes())?;
    }
    put_len(out, message.properties.len())?;
    for (name, value) in message.properties {
        put_bytes(out, name.as_bytes())?;
        put_bytes(out, value.as_bytes())?;
    }
    put_bytes(out, message.body)
}

/// Encodes `failed` (Format: attempt u32, group str, reason str, then the
/// message as in [`encode_message`]).
pub fn encode_failed_delivery(failed: &FailedDelivery<'_>, out: &mut impl Sink) -> Result<(), EncodeError> {
    out.put(&failed.attempt().to_le_bytes());
    put_bytes(out, failed.group.as_bytes())?;
    put_bytes(out, failed.reason.as_bytes())?;
    encode_message(&failed.message, out)
}

fn put_len(out: &mut impl Sink, len: usize) -> Result<(), EncodeError> {
    let len32 = u32::try_from(len).map_err(|_| EncodeError { len })?;
    out.put(&len32.to_le_bytes());
    Ok(())
}

fn put_bytes(out: &mut impl Sink, bytes: &[u8]) -> Result<(), EncodeError> {
    put_len(out, bytes.len())?;
    out.put(bytes);
    Ok(())
}

/// The meaning of `weir_filter`'s result: `Some(deliver)`, or `None` for a
/// value the ABI does not define.
pub fn filter_verdict(result: i32) -> Option<bool> {
    match result {
        1 => Some(true),
        0 => Some(false),
        _ => None,
    }
}

/// The meaning of `weir_dlq_policy`'s result, or `None` for a value the ABI
/// does not define (including a delay above [`MAX_RETRY_DELAY`]).
pub fn dlq_decision(result: i64) -> Option<RetryDecision> {
    match result {
        DEAD_LETTER => Some(RetryDecision::DeadLetter),
        DISCARD => Some(RetryDecision::Discard),
        ms if ms >= 0 => {
            let delay = Duration::from_millis(ms.unsigned_abs());
            (delay <= MAX_RETRY_DELAY).then_some(RetryDecision::RetryAfter(delay))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(keys: &'a [&'a str], properties: &'a [(&'a str, &'a str)]) -> FilterInput<'a> {
        FilterInput {
            topic: "orders",
            queue_id: 3,
            queue_offset: 0x0102_0304_0506_0708,
            tag: "paid",
            keys,
            properties,
            body: b"hi",
            born_timestamp_ms: -2,
            reconsume_times: 1,
        }
    }

    /// Golden bytes: the layout ABI.md documents, byte by byte.
    #[test]
    fn message_encoding_is_the_documented_layout() {
        let mut out = Vec::new();
        encode_message(&message(&["k"], &[("a", "b")]), &mut out).expect("encodes");
        let mut counter = LenCounter::default();
        encode_message(&message(&["k"], &[("a", "b")]), &mut counter).expect("encodes");
        assert_eq!(counter.0, out.len());
        let mut exact = vec![0; out.len()];
        encode_message(&message(&["k"], &[("a", "b")]), &mut SliceSink::new(&mut exact)).expect("encodes");
        assert_eq!(exact, out);
        let expected: Vec<u8> = [
            &3u32.to_le_bytes()[..],
            &[8, 7, 6, 5, 4, 3, 2, 1],
            &(-2i64).to_le_bytes(),
            &1u32.to_le_bytes(),
            &[6, 0, 0, 0],
            b"orders",
            &[4, 0, 0, 0],
            b"paid",
            &[1, 0, 0, 0, 1, 0, 0, 0],
            b"k",
            &[1, 0, 0, 0, 1, 0, 0, 0],
            b"a",
            &[1, 0, 0, 0],
            b"b",
            &[2, 0, 0, 0],
            b"hi",
        ]
        .concat();
        assert_eq!(out, expected);
    }

    #[test]
    fn failed_delivery_prefixes_attempt_group_and_reason() {
        let failed = FailedDelivery { group: "g", reason: "why", message: message(&[], &[]) };
        let mut out = Vec::new();
        encode_failed_delivery(&failed, &mut out).expect("encodes");
        let mut plain = Vec::new();
        encode_message(&failed.message, &mut plain).expect("encodes");
        let header = [&2u32.to_le_bytes()[..], &[1, 0, 0, 0], b"g", &[3, 0, 0, 0], b"why"].concat();
        assert_eq!(out, [header, plain].concat());
    }

    #[test]
    fn results_decode_as_documented() {
        assert_eq!(filter_verdict(1), Some(true));
        assert_eq!(filter_verdict(0), Some(false));
        assert_eq!(filter_verdict(2), None);
        assert_eq!(filter_verdict(-1), None);
        assert_eq!(dlq_decision(-1), Some(RetryDecision::DeadLetter));
        assert_eq!(dlq_decision(-2), Some(RetryDecision::Discard));
        assert_eq!(dlq_decision(0), Some(RetryDecision::RetryAfter(Duration::ZERO)));
        assert_eq!(dlq_decision(1500), Some(RetryDecision::RetryAfter(Duration::from_millis(1500))));
        let max = i64::try_from(MAX_RETRY_DELAY.as_millis()).expect("fits");
        assert_eq!(dlq_decision(max), Some(RetryDecision::RetryAfter(MAX_RETRY_DELAY)));
        assert_eq!(dlq_decision(max + 1), None);
        assert_eq!(dlq_decision(-3), None);
        assert_eq!(dlq_decision(i64::MIN), None);
    }
}
