//! Topic administration: create, update, delete and list topics.

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Wire, Writer};

/// What clients may do with a topic's queues.
///
/// Format: `u8` bit set with RocketMQ's values: `0x04` readable, `0x02` writable; other
/// bits must be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicPermissions {
    /// Consumers may pull from the topic.
    pub readable: bool,
    /// Producers may send to the topic.
    pub writable: bool,
}

impl TopicPermissions {
    /// Readable and writable: the default for new topics.
    pub const READ_WRITE: TopicPermissions = TopicPermissions { readable: true, writable: true };

    const READ_BIT: u8 = 0x04;
    const WRITE_BIT: u8 = 0x02;

    /// The wire bit set.
    pub const fn bits(self) -> u8 {
        (if self.readable { Self::READ_BIT } else { 0 }) | (if self.writable { Self::WRITE_BIT } else { 0 })
    }

    /// The permissions for a wire bit set, or `None` if unknown bits are set.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !(Self::READ_BIT | Self::WRITE_BIT) != 0 {
            return None;
        }
        Some(TopicPermissions { readable: bits & Self::READ_BIT != 0, writable: bits & Self::WRITE_BIT != 0 })
    }
}

impl Default for TopicPermissions {
    fn default() -> Self {
        Self::READ_WRITE
    }
}

/// A topic's settings: the body of create and update requests, and what the broker
/// reports for a topic.
///
/// Format: string name, `u32` read_queues, `u32` write_queues, `u8` permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Topic name.
    pub name: String,
    /// Number of queues consumers read from.
    pub read_queues: u32,
    /// Number of queues producers write to.
    pub write_queues: u32,
    /// What clients may do with the topic.
    pub permissions: TopicPermissions,
}

impl Wire for TopicConfig {
    const MIN_LEN: usize = 2 + 4 + 4 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("topic.name", &self.name)?;
        w.u32(self.read_queues);
        w.u32(self.write_queues);
        w.u8(self.permissions.bits());
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let name = r.str("topic.name")?;
        let read_queues = r.u32("topic.read_queues")?;
        let write_queues = r.u32("topic.write_queues")?;
        let bits = r.u8("topic.permissions")?;
        let permissions = TopicPermissions::from_bits(bits)
            .ok_or(DecodeError::InvalidValue { field: "topic.permissions", value: bits.into() })?;
        Ok(TopicConfig { name, read_queues, write_queues, permissions })
    }
}

/// Delete a topic and its queues.
///
/// Format: string topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopicRequest {
    /// Topic name.
    pub topic: String,
}

impl Wire for DeleteTopicRequest {
    const MIN_LEN: usize = 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("delete_topic.topic", &self.topic)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DeleteTopicRequest { topic: r.str("delete_topic.topic")? })
    }
}

/// List the broker's topics.
///
/// Format: `u8` include_system (bool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListTopicsRequest {
    /// Also list system topics (`%RETRY%…`, `%DLQ%…`, timer and half-message topics).
    pub include_system: bool,
}

impl Wire for ListTopicsRequest {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.bool(self.include_system);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ListTopicsRequest { include_system: r.bool("list_topics.include_system")? })
    }
}

/// The broker's topics.
///
/// Format: `u32` count, count × [`TopicConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListTopicsResponse {
    /// The topics, in the broker's order.
    pub topics: Vec<TopicConfig>,
}

impl Wire for ListTopicsResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("list_topics.topics", &self.topics)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ListTopicsResponse { topics: r.list("list_topics.topics")? })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{arb_topic_config, check_request, check_response, encoded_len, frame};
    use crate::{FrameKind, Request, RequestKind, Response};

    #[test]
    fn permissions_use_rocketmq_bits() {
        assert_eq!(TopicPermissions::READ_WRITE.bits(), 0x06);
        let read_only = TopicPermissions { readable: true, writable: false };
        assert_eq!(read_only.bits(), 0x04);
        assert_eq!(TopicPermissions::from_bits(0x04), Some(read_only));
        assert_eq!(TopicPermissions::from_bits(0x01), None);
        assert_eq!(TopicPermissions::from_bits(0x80), None);
    }

    #[test]
    fn unknown_permission_bits_are_rejected() {
        let payload = [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x07];
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::CreateTopic), &payload)),
            Err(DecodeError::InvalidValue { field: "topic.permissions", value: 7 })
        );
    }

    #[test]
    fn min_lens_are_the_smallest_encodings() {
        let topic = TopicConfig {
            name: String::new(),
            read_queues: 0,
            write_queues: 0,
            permissions: TopicPermissions::READ_WRITE,
        };
        assert_eq!(encoded_len(&topic), TopicConfig::MIN_LEN);
        let delete = DeleteTopicRequest { topic: String::new() };
        assert_eq!(encoded_len(&delete), DeleteTopicRequest::MIN_LEN);
        let list = ListTopicsResponse { topics: Vec::new() };
        assert_eq!(encoded_len(&list), ListTopicsResponse::MIN_LEN);
    }

    #[test]
    fn golden_create_topic_frame() {
        let request = Request::CreateTopic(TopicConfig {
            name: "ab".to_owned(),
            read_queues: 8,
            write_queues: 4,
            permissions: TopicPermissions::READ_WRITE,
        });
        let golden: &[u8] = &[
            b'W', b'E', b'I', b'R', 1, 0, // magic, version, flags
            0x01, 0x01, // kind: CreateTopic
            13, 0, 0, 0, // payload length
            2, 0, b'a', b'b', // name
            8, 0, 0, 0, // read_queues
            4, 0, 0, 0,    // write_queues
            0x06, // permissions: read | write
        ];
        check_request(&request, Some(golden)).unwrap();
    }

    proptest! {
        #[test]
        fn topic_requests_round_trip(
            topic in arb_topic_config(),
            name in "\\PC{0,12}",
            include_system in any::<bool>(),
        ) {
            check_request(&Request::CreateTopic(topic.clone()), None)?;
            check_request(&Request::UpdateTopic(topic), None)?;
            check_request(&Request::DeleteTopic(DeleteTopicRequest { topic: name }), None)?;
            check_request(&Request::ListTopics(ListTopicsRequest { include_system }), None)?;
        }

        #[test]
        fn topic_responses_round_trip(
            topic in arb_topic_config(),
            topics in proptest::collection::vec(arb_topic_config(), 0..5),
        ) {
            check_response(&Response::CreateTopic(topic.clone()), None)?;
            check_response(&Response::UpdateTopic(topic), None)?;
            check_response(&Response::DeleteTopic, None)?;
            check_response(&Response::ListTopics(ListTopicsResponse { topics }), None)?;
        }
    }
}
