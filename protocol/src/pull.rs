//! Pulling: read a page of messages from one queue, long-polling when there is none.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::frame::{FrameKind, HEADER_LEN, RequestKind, write_header};
use crate::membership::MemberRef;
use crate::message::{StoredMessage, StoredMessageRef};
use crate::wire::{Reader, Wire, Writer};

/// Which messages of the queue the consumer wants.
///
/// Format: `u8` tag; `0` all; `1` tag expression, then string; `2` SQL92, then string;
/// `3` subscribed (nothing follows).
///
/// In a pull, `Tag` and `Sql` register the expression as the group's subscription
/// (replacing a different one) and `Subscribed` uses the one registered with
/// [`SubscribeRequest`](crate::SubscribeRequest), so it is not re-sent or re-parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum FilterExpression {
    /// Every message (RocketMQ's `*`).
    #[default]
    All,
    /// Messages whose tag is listed, e.g. `TagA || TagB`.
    Tag(String),
    /// Messages whose properties satisfy a SQL92 expression, e.g. `region = 'SH'`.
    Sql(String),
    /// The group's registered subscription to the topic (pulls only).
    Subscribed,
}

impl Wire for FilterExpression {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            FilterExpression::All => {
                w.u8(0);
                Ok(())
            }
            FilterExpression::Tag(expression) => {
                w.u8(1);
                w.str("pull.filter.tag", expression)
            }
            FilterExpression::Sql(expression) => {
                w.u8(2);
                w.str("pull.filter.sql", expression)
            }
            FilterExpression::Subscribed => {
                w.u8(3);
                Ok(())
            }
        }
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8("pull.filter")? {
            0 => Ok(FilterExpression::All),
            1 => Ok(FilterExpression::Tag(r.str("pull.filter.tag")?)),
            2 => Ok(FilterExpression::Sql(r.str("pull.filter.sql")?)),
            3 => Ok(FilterExpression::Subscribed),
            tag => Err(DecodeError::InvalidValue { field: "pull.filter", value: tag.into() }),
        }
    }
}

/// Read up to `max_messages` from one queue starting at `offset`. With nothing to return
/// and `max_wait_ms > 0`, the broker holds the request until a matching message arrives
/// or the wait ends (long polling).
///
/// Format: string consumer_group, string topic, `u32` queue_id, `u64` offset, `u32`
/// max_messages, `u32` max_wait_ms, [`FilterExpression`], option\<[`MemberRef`]\> member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The consumer group pulling.
    pub consumer_group: String,
    /// Topic to read.
    pub topic: String,
    /// Queue to read.
    pub queue_id: u32,
    /// First queue offset wanted.
    pub offset: u64,
    /// Most messages to return.
    pub max_messages: u32,
    /// Longest time to hold the request when nothing matches; 0 answers at once.
    pub max_wait_ms: u32,
    /// Which messages the consumer wants.
    pub filter: FilterExpression,
    /// Set by members of a managed group: the broker refuses a pull for a queue the
    /// member does not own (`NOT_ASSIGNED`). `None` for consumers that pick their queues.
    pub member: Option<MemberRef>,
}

impl Wire for PullRequest {
    const MIN_LEN: usize = 2 + 2 + 4 + 8 + 4 + 4 + FilterExpression::MIN_LEN + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("pull.consumer_group", &self.consumer_group)?;
        w.str("pull.topic", &self.topic)?;
        w.u32(self.queue_id);
        w.u64(self.offset);
        w.u32(self.max_messages);
        w.u32(self.max_wait_ms);
        self.filter.encode(w)?;
        w.opt(self.member.as_ref())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PullRequest {
            consumer_group: r.str("pull.consumer_group")?,
            topic: r.str("pull.topic")?,
            queue_id: r.u32("pull.queue_id")?,
            offset: r.u64("pull.offset")?,
            max_messages: r.u32("pull.max_messages")?,
            max_wait_ms: r.u32("pull.max_wait_ms")?,
            filter: FilterExpression::decode(r)?,
            member: r.opt("pull.member")?,
        })
    }
}

/// What a pull found.
///
/// Format: `u8`: 0 found, 1 no new message, 2 no matched message, 3 offset illegal,
/// 4 offset moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullStatus {
    /// At least one message is returned.
    Found,
    /// The queue has nothing at or after the offset (after any long-poll wait).
    NoNewMessage,
    /// Messages exist but none matched the filter; continue from `next_offset`.
    NoMatchedMessage,
    /// The offset is outside `[min_offset, max_offset]`.
    OffsetIllegal,
    /// The offset's messages were deleted by retention; continue from `next_offset`.
    OffsetMoved,
}

impl PullStatus {
    const ALL: [PullStatus; 5] = [
        PullStatus::Found,
        PullStatus::NoNewMessage,
        PullStatus::NoMatchedMessage,
        PullStatus::OffsetIllegal,
        PullStatus::OffsetMoved,
    ];
}

/// A page of messages and where to continue.
///
/// Format: `u8` [`PullStatus`], `u64` next_offset, `u64` min_offset, `u64` max_offset,
/// `u32` count × [`StoredMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResponse {
    /// What the pull found.
    pub status: PullStatus,
    /// The offset to pull from next (past every message examined, matched or not).
    pub next_offset: u64,
    /// The queue's smallest stored offset.
    pub min_offset: u64,
    /// The queue's offset after its last message.
    pub max_offset: u64,
    /// The messages, in queue order.
    pub messages: Vec<StoredMessage>,
}

impl Wire for PullResponse {
    const MIN_LEN: usize = 1 + 8 + 8 + 8 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(self.status as u8);
        w.u64(self.next_offset);
        w.u64(self.min_offset);
        w.u64(self.max_offset);
        w.list("pull.messages", &self.messages)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let status = r.u8("pull.status")?;
        let status = PullStatus::ALL
            .get(usize::from(status))
            .copied()
            .ok_or(DecodeError::InvalidValue { field: "pull.status", value: status.into() })?;
        Ok(PullResponse {
            status,
            next_offset: r.u64("pull.next_offset")?,
            min_offset: r.u64("pull.min_offset")?,
            max_offset: r.u64("pull.max_offset")?,
            messages: r.list("pull.messages")?,
        })
    }
}

/// A [`PullResponse`] frame written message by message, for a sender holding its
/// messages as borrowed fields (the broker: CommitLog records) rather than as
/// [`StoredMessage`]s. The frame is byte for byte the one [`Response::Pull`](crate::Response::Pull)
/// encodes for the same fields; the page's fields, known last, are filled in by
/// [`finish`](Self::finish), so the messages are written once, in place.
#[derive(Debug)]
pub struct PullPageWriter {
    frame: BytesMut,
    count: u32,
}

/// Bytes before the first message: frame header, status, three offsets, message count.
const PAGE_PREFIX_LEN: usize = HEADER_LEN + PullResponse::MIN_LEN;

impl Default for PullPageWriter {
    fn default() -> Self {
        let mut frame = BytesMut::new();
        frame.put_bytes(0, PAGE_PREFIX_LEN);
        PullPageWriter { frame, count: 0 }
    }
}

impl PullPageWriter {
    /// Appends a message. On error (a field too long for its wire type) nothing is added.
    pub fn push<'a, K, P>(&mut self, message: &StoredMessageRef<'a, K, P>) -> Result<(), EncodeError>
    where
        K: Iterator<Item = &'a str> + Clone,
        P: Iterator<Item = (&'a str, &'a str)> + Clone,
    {
        let before = self.frame.len();
        if let Err(error) = message.encode(&mut Writer::new(&mut self.frame)) {
            self.frame.truncate(before);
            return Err(error);
        }
        self.count += 1;
        Ok(())
    }

    /// Makes room for `additional` more bytes of messages, so a page whose size the
    /// caller can estimate is written without regrowing (and copying) the frame.
    pub fn reserve(&mut self, additional: usize) {
        self.frame.reserve(additional);
    }

    /// Messages written so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no message was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The whole frame with the page's fields filled in.
    pub fn finish(
        mut self,
        status: PullStatus,
        next_offset: u64,
        min_offset: u64,
        max_offset: u64,
    ) -> Result<Bytes, EncodeError> {
        let payload_len = self.frame.len() - HEADER_LEN;
        let mut fields = &mut self.frame[HEADER_LEN..PAGE_PREFIX_LEN];
        fields.put_u8(status as u8);
        fields.put_u64_le(next_offset);
        fields.put_u64_le(min_offset);
        fields.put_u64_le(max_offset);
        fields.put_u32_le(self.count);
        let header: &mut [u8; HEADER_LEN] =
            (&mut self.frame[..HEADER_LEN]).try_into().expect("the prefix holds a header");
        write_header(header, FrameKind::Response(RequestKind::Pull), payload_len)?;
        Ok(self.frame.freeze())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{
        arb_filter, arb_member_ref, arb_pull_response, check_request, check_response, encoded_len, frame,
    };
    use crate::{FrameKind, Request, RequestKind, Response};

    fn pull(filter: FilterExpression) -> PullRequest {
        PullRequest {
            consumer_group: String::new(),
            topic: String::new(),
            queue_id: 0,
            offset: 0,
            max_messages: 0,
            max_wait_ms: 0,
            filter,
            member: None,
        }
    }

    #[test]
    fn min_lens_are_the_smallest_encodings() {
        assert_eq!(encoded_len(&pull(FilterExpression::All)), PullRequest::MIN_LEN);
        let empty = PullResponse {
            status: PullStatus::Found,
            next_offset: 0,
            min_offset: 0,
            max_offset: 0,
            messages: Vec::new(),
        };
        assert_eq!(encoded_len(&empty), PullResponse::MIN_LEN);
    }

    #[test]
    fn status_values() {
        for (value, status) in PullStatus::ALL.into_iter().enumerate() {
            assert_eq!(status as usize, value);
        }
        let mut payload = vec![5];
        payload.extend_from_slice(&[0; 28]);
        assert_eq!(
            Response::decode(frame(FrameKind::Response(RequestKind::Pull), &payload)),
            Err(DecodeError::InvalidValue { field: "pull.status", value: 5 })
        );
    }

    #[test]
    fn filter_tags() {
        let tag = FilterExpression::Tag("TagA || TagB".to_owned());
        let mut payload = vec![0; 24];
        payload.extend_from_slice(&[1, 12, 0]);
        payload.extend_from_slice(b"TagA || TagB");
        payload.push(0); // member: absent
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::Pull), &payload)),
            Ok(Request::Pull(pull(tag)))
        );
        let last_tag = 24;
        payload[last_tag] = 2;
        let sql = FilterExpression::Sql("TagA || TagB".to_owned());
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::Pull), &payload)),
            Ok(Request::Pull(pull(sql)))
        );
        payload[last_tag] = 3;
        let mut subscribed = payload[..25].to_vec();
        subscribed.push(0); // member: absent
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::Pull), &subscribed)),
            Ok(Request::Pull(pull(FilterExpression::Subscribed)))
        );
        payload[last_tag] = 4;
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::Pull), &payload)),
            Err(DecodeError::InvalidValue { field: "pull.filter", value: 4 })
        );
    }

    #[test]
    fn golden_pull_frame_with_member() {
        let request = Request::Pull(PullRequest {
            consumer_group: "g".to_owned(),
            topic: "t".to_owned(),
            queue_id: 2,
            offset: 0x0102,
            max_messages: 32,
            max_wait_ms: 1000,
            filter: FilterExpression::Subscribed,
            member: Some(MemberRef { member_id: "m".to_owned(), generation: 7 }),
        });
        let golden: &[u8] = &[
            b'W', b'E', b'I', b'R', 1, 0, // magic, version, flags
            0x01, 0x03, // kind: Pull
            39, 0, 0, 0, // payload length
            1, 0, b'g', // consumer_group
            1, 0, b't', // topic
            2, 0, 0, 0, // queue_id
            0x02, 0x01, 0, 0, 0, 0, 0, 0, // offset
            32, 0, 0, 0, // max_messages
            0xe8, 0x03, 0, 0, // max_wait_ms: 1000
            3, // filter: subscribed
            1, // member: present
            1, 0, b'm', // member_id
            7, 0, 0, 0, 0, 0, 0, 0, // generation
        ];
        check_request(&request, Some(golden)).unwrap();
    }

    #[test]
    fn member_presence_byte_is_strict() {
        let mut payload = vec![0; 24];
        payload.extend_from_slice(&[3, 2]); // filter: subscribed, member: invalid presence
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::Pull), &payload)),
            Err(DecodeError::InvalidValue { field: "pull.member", value: 2 })
        );
        payload[25] = 1; // present, but nothing follows
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::Pull), &payload)),
            Err(DecodeError::Truncated { field: "member.member_id" })
        );
    }

    proptest! {
        #[test]
        fn pull_request_round_trips(
            consumer_group in "\\PC{0,10}",
            topic in "\\PC{0,10}",
            queue_id in any::<u32>(),
            offset in any::<u64>(),
            max_messages in any::<u32>(),
            max_wait_ms in any::<u32>(),
            filter in arb_filter(),
            member in proptest::option::of(arb_member_ref()),
        ) {
            let request = PullRequest {
                consumer_group, topic, queue_id, offset, max_messages, max_wait_ms, filter, member,
            };
            check_request(&Request::Pull(request), None)?;
        }

        #[test]
        fn pull_response_round_trips(response in arb_pull_response()) {
            check_response(&Response::Pull(response), None)?;
        }

        #[test]
        fn a_page_written_message_by_message_is_the_pull_response_frame(response in arb_pull_response()) {
            let mut page = PullPageWriter::default();
            for message in &response.messages {
                page.push(&message.borrowed()).expect("arbitrary messages encode");
            }
            prop_assert_eq!(page.len(), response.messages.len());
            let written = page
                .finish(response.status, response.next_offset, response.min_offset, response.max_offset)
                .expect("encodes");
            let mut expected = bytes::BytesMut::new();
            Response::Pull(response).encode(&mut expected).expect("encodes");
            prop_assert_eq!(written, expected.freeze());
        }
    }

    #[test]
    fn a_message_that_cannot_be_encoded_leaves_the_page_as_it_was() {
        let mut page = PullPageWriter::default();
        let long = "x".repeat(70_000);
        let message = StoredMessage {
            msg_id: "id".into(),
            topic: "t".into(),
            queue_id: 0,
            queue_offset: 0,
            commitlog_offset: 0,
            born_timestamp_ms: 0,
            store_timestamp_ms: 0,
            born_host: "h".into(),
            flags: 0,
            reconsume_times: 0,
            tag: None,
            keys: vec![long],
            properties: Vec::new(),
            body: bytes::Bytes::new(),
        };
        assert!(matches!(page.push(&message.borrowed()), Err(EncodeError::TooLong { .. })));
        assert!(page.is_empty());
        let empty = page.finish(PullStatus::NoNewMessage, 1, 0, 1).expect("encodes");
        let decoded = Response::decode(crate::decode_frame(empty, u32::MAX).expect("a frame")).expect("decodes");
        assert_eq!(
            decoded,
            Response::Pull(PullResponse {
                status: PullStatus::NoNewMessage,
                next_offset: 1,
                min_offset: 0,
                max_offset: 1,
                messages: Vec::new()
            })
        );
    }
}
