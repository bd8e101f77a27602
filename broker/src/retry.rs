//! Retry and dead-letter copies (SPEC §8, issue 18 §2): where a failed message came
//! from, and the copies the broker stores for it.
//!
//! A consumer group's failed delivery is stored again, as RocketMQ does, in the group's
//! retry topic `%RETRY%<group>` (after a delay, through the delay timer) or dead-letter
//! topic `%DLQ%<group>` (one queue each, created on first use). The copy keeps the
//! message's tag, keys, body, user properties, born time and host, and carries where it
//! came from in reserved properties (named in `weir_protocol::retry`): the original
//! topic, queue and message id (the first message's, kept across retries), the
//! redelivery count, and why the last consumption failed. A resent dead letter goes back
//! to its original topic and queue as the producer sent it: reserved properties dropped,
//! redelivery count reset.

use weir_plugins::{dlq_topic, retry_topic};
use weir_protocol::retry::{LAST_REASON, ORIGIN_MSG_ID, ORIGIN_QUEUE, ORIGIN_TOPIC, RECONSUME_TIMES};
use weir_storage::RecordView;

use crate::delayed::RESERVED_PREFIX;

/// The longest failure reason kept with a copy, in bytes (longer ones are cut at a
/// character boundary): a record's properties are limited to 32 KiB in all.
pub const MAX_REASON_BYTES: usize = 1024;

/// Where a failed message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The topic it was first sent to.
    pub topic: String,
    /// The queue it was first stored in.
    pub queue_id: u32,
    /// The first message's id.
    pub msg_id: String,
    /// How many times it was redelivered before this failure.
    pub reconsume_times: u32,
}

/// Why a message cannot be handled as `group`'s failed delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotFailable {
    /// It is in a system topic that is not the group's retry topic.
    #[error("message {msg_id} is in the system topic {topic}, which group {group} does not consume")]
    SystemTopic {
        /// The message.
        msg_id: String,
        /// Its topic.
        topic: String,
        /// The group.
        group: String,
    },
    /// A retry copy without its reserved properties (never written by this broker).
    #[error("retry message {msg_id} lacks its origin properties")]
    NoOrigin {
        /// The message.
        msg_id: String,
    },
}

/// Where the message `msg_id` (as `view`) that `group` failed came from: itself, or, for
/// a copy in the group's retry topic, what its properties say.
pub fn origin(view: &RecordView<'_>, msg_id: &str, group: &str) -> Result<Origin, NotFailable> {
    let topic = view.topic();
    if topic == retry_topic(group) {
        let parsed = || {
            Some(Origin {
                topic: view.property(ORIGIN_TOPIC)?.to_owned(),
                queue_id: view.property(ORIGIN_QUEUE)?.parse().ok()?,
                msg_id: view.property(ORIGIN_MSG_ID)?.to_owned(),
                reconsume_times: view.property(RECONSUME_TIMES)?.parse().ok()?,
            })
        };
        return parsed().ok_or_else(|| NotFailable::NoOrigin { msg_id: msg_id.to_owned() });
    }
    if topic.starts_with('%') {
        return Err(NotFailable::SystemTopic {
            msg_id: msg_id.to_owned(),
            topic: topic.to_owned(),
            group: group.to_owned(),
        });
    }
    Ok(Origin { topic: topic.to_owned(), queue_id: view.queue_id(), msg_id: msg_id.to_owned(), reconsume_times: 0 })
}

/// The redelivery count a stored message carries (0 for one never redelivered).
pub fn reconsume_times(view: &RecordView<'_>) -> u32 {
    view.property(RECONSUME_TIMES).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Which copy a failed delivery becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// A redelivery through the group's retry topic.
    Retry,
    /// A dead letter.
    DeadLetter,
}

/// The copy of `view` (a failed delivery from `origin`) for `group`'s retry or
/// dead-letter topic (queue 0), carrying `reconsume_times` and `reason`.
pub fn copy(
    view: &RecordView<'_>,
    origin: &Origin,
    group: &str,
    kind: CopyKind,
    reconsume_times: u32,
    reason: &str,
) -> weir_storage::Message {
    let mut properties = user_properties(view);
    properties.extend([
        (ORIGIN_TOPIC.to_owned(), origin.topic.clone()),
        (ORIGIN_QUEUE.to_owned(), origin.queue_id.to_string()),
        (ORIGIN_MSG_ID.to_owned(), origin.msg_id.clone()),
        (RECONSUME_TIMES.to_owned(), reconsume_times.to_string()),
        (LAST_REASON.to_owned(), cut(reason, MAX_REASON_BYTES).to_owned()),
    ]);
    let topic = match kind {
        CopyKind::Retry => retry_topic(group),
        CopyKind::DeadLetter => dlq_topic(group),
    };
    message(view, topic, 0, properties)
}

/// A dead letter as its producer sent it, for `queue_id` of its original `topic`.
pub fn resent(view: &RecordView<'_>, topic: &str, queue_id: u32) -> weir_storage::Message {
    message(view, topic.to_owned(), queue_id, user_properties(view))
}

/// What a dead letter's reserved properties say, for listing it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeadLetterOrigin<'a> {
    /// The original topic.
    pub topic: &'a str,
    /// The original queue.
    pub queue_id: Option<u32>,
    /// The original message's id.
    pub msg_id: &'a str,
    /// Why its last consumption failed.
    pub last_reason: &'a str,
}

/// A dead letter's origin, from its reserved properties (empty where missing).
pub fn dead_letter_origin<'a>(view: &RecordView<'a>) -> DeadLetterOrigin<'a> {
    DeadLetterOrigin {
        topic: view.property(ORIGIN_TOPIC).unwrap_or_default(),
        queue_id: view.property(ORIGIN_QUEUE).and_then(|q| q.parse().ok()),
        msg_id: view.property(ORIGIN_MSG_ID).unwrap_or_default(),
        last_reason: view.property(LAST_REASON).unwrap_or_default(),
    }
}

fn user_properties(view: &RecordView<'_>) -> Vec<(String, String)> {
    view.properties()
        .filter(|(name, _)| !name.starts_with(RESERVED_PREFIX))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn message(
    view: &RecordView<'_>,
    topic: String,
    queue_id: u32,
    properties: Vec<(String, String)>,
) -> weir_storage::Message {
    weir_storage::Message {
        topic,
        queue_id,
        tag: view.tag().to_owned(),
        keys: view.keys().map(str::to_owned).collect(),
        properties,
        body: bytes::Bytes::copy_from_slice(view.body()),
        born_timestamp_ms: view.born_timestamp_ms(),
        born_host: view.born_host(),
        flags: view.flags(),
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn record(message: &weir_storage::Message) -> Vec<u8> {
        let mut buf = vec![0u8; weir_storage::record::encoded_len(message, 1 << 20).expect("valid")];
        let placement = weir_storage::record::Placement { queue_offset: 7, commitlog_offset: 0, store_timestamp_ms: 5 };
        weir_storage::record::encode(&mut buf, message, placement);
        buf
    }

    fn order() -> weir_storage::Message {
        weir_storage::Message {
            topic: "orders".into(),
            queue_id: 3,
            tag: "created".into(),
            keys: vec!["k1".into()],
            properties: vec![("region".into(), "SH".into())],
            body: bytes::Bytes::from_static(b"hello"),
            born_timestamp_ms: 1234,
            born_host: SocketAddr::from(([10, 0, 0, 1], 4000)),
            flags: 0,
        }
    }

    #[test]
    fn a_failed_message_becomes_a_retry_then_a_dead_letter_then_itself_again() {
        let original = record(&order());
        let view = RecordView::parse(&original).expect("parses");
        let first = origin(&view, "ID1", "g").expect("a user topic");
        assert_eq!(first, Origin { topic: "orders".into(), queue_id: 3, msg_id: "ID1".into(), reconsume_times: 0 });

        let retry = copy(&view, &first, "g", CopyKind::Retry, 1, "timeout");
        assert_eq!((retry.topic.as_str(), retry.queue_id), ("%RETRY%g", 0));
        let retry_record = record(&retry);
        let retry_view = RecordView::parse(&retry_record).expect("parses");
        let second = origin(&retry_view, "ID2", "g").expect("the group's retry topic");
        assert_eq!(second, Origin { reconsume_times: 1, ..first.clone() });
        assert_eq!(reconsume_times(&retry_view), 1);
        assert!(origin(&retry_view, "ID2", "other").is_err(), "another group's retry topic is not its own");

        let dead = copy(&retry_view, &second, "g", CopyKind::DeadLetter, 1, &"x".repeat(5000));
        assert_eq!(dead.topic, "%DLQ%g");
        let dead_record = record(&dead);
        let dead_view = RecordView::parse(&dead_record).expect("parses");
        let listed = dead_letter_origin(&dead_view);
        assert_eq!((listed.topic, listed.queue_id, listed.msg_id), ("orders", Some(3), "ID1"));
        assert_eq!(listed.last_reason.len(), MAX_REASON_BYTES);
        assert!(matches!(origin(&dead_view, "ID3", "g"), Err(NotFailable::SystemTopic { .. })));

        assert_eq!(resent(&dead_view, "orders", 3), order(), "resent as the producer sent it");
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("short", 1024), "short");
    }
}
