//! Weir wire protocol: a sans-IO codec for frames, requests and responses.
//!
//! The broker and the client library share this crate. It turns typed requests and
//! responses into bytes and back, and nothing else: no sockets, no tasks, no clock (every
//! timestamp is a field). The same bytes in always give the same values out. The byte
//! layout, stream usage and error codes are specified in `protocol/README.md`.
//!
//! # Using it over a QUIC stream
//!
//! One request per bidirectional stream: the client opens a stream, writes one
//! [`Request`] frame and finishes its side; the broker answers with one [`Response`]
//! frame and finishes. Reading either side:
//!
//! ```
//! use weir_protocol::bytes::BytesMut;
//! use weir_protocol::{Decoded, FrameDecoder, Request};
//!
//! let mut wire = BytesMut::new();
//! Request::Status.encode(&mut wire).unwrap(); // what the client writes
//!
//! let mut decoder = FrameDecoder::new(); // the broker, per stream
//! let mut request = None;
//! for chunk in wire.chunks(5) {
//!     if let Decoded::Frame(frame) = decoder.decode(chunk).unwrap() {
//!         request = Some(Request::decode(frame).unwrap());
//!     }
//! }
//! decoder.finish().unwrap(); // the client finished its side: one whole frame arrived
//! assert_eq!(request, Some(Request::Status));
//! ```
//!
//! # Layout
//! - [`frame`]: header layout, frame and request kinds, protocol constants.
//! - [`decoder`]: [`FrameDecoder`] (incremental) and [`decode_frame`] (whole stream).
//! - [`request`] / [`response`]: the [`Request`] and [`Response`] enums, their
//!   `encode` into a `BytesMut` and `decode` from a [`Frame`].
//! - One module per request family: [`topic`], [`send`], [`pull`], [`query`] (lookups
//!   and the cancel of a delayed message),
//!   [`queue_offsets`], [`consumer_offset`], [`status`], [`group`], [`membership`],
//!   [`plugin`]; [`message`] holds the [`StoredMessage`] shared by pull and query;
//!   [`error_response`] the error any request may get.
//! - [`error`]: [`DecodeError`] and [`EncodeError`].
//!
//! **Invariant:** decoding never panics and never allocates more than the bytes received
//! justify: every length and count is checked against the remaining bytes first.

/// The `bytes` crate this API is written in (`Bytes` bodies, `BytesMut` encode buffers).
pub use bytes;

pub mod consumer_offset;
pub mod decoder;
pub mod error;
pub mod error_response;
pub mod frame;
pub mod group;
pub mod membership;
pub mod message;
pub mod plugin;
pub mod pull;
pub mod query;
pub mod queue_offsets;
pub mod request;
pub mod response;
pub mod retry;
pub mod send;
pub mod status;
pub mod topic;
mod wire;

#[cfg(test)]
mod testing;

pub use consumer_offset::{CommitOffsetRequest, FetchOffsetRequest, FetchOffsetResponse};
pub use decoder::{Decoded, FrameDecoder, decode_frame};
pub use error::{DecodeError, EncodeError};
pub use error_response::{ErrorCode, ErrorResponse};
pub use frame::{
    ALPN, DEFAULT_MAX_PAYLOAD_LEN, DEFAULT_MAX_UDP_PAYLOAD, Frame, FrameKind, HEADER_LEN, MAGIC, MAX_UDP_PAYLOAD_LIMIT,
    MIN_UDP_PAYLOAD, PROTOCOL_VERSION, RequestKind, UdpPayloadOutOfRange, checked_udp_payload,
};
pub use group::{
    FilterCounters, GroupConfig, GroupStatsRequest, GroupStatsResponse, SubscribeRequest, SubscribeResponse,
    SubscriptionStats,
};
pub use membership::{
    AssignedQueue, ConsumeMode, DescribeGroupRequest, GroupDescription, GroupLagRequest, GroupLagResponse,
    GroupSubscription, GroupSummary, HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, ListGroupsResponse,
    LockQueuesRequest, LockQueuesResponse, MemberInfo, MemberRef, MemberSubscription, OffsetTarget, QueueLag,
    QueueOffset, ResetOffsetRequest, ResetOffsetResponse, SubscriptionConflict, TopicAssignment, UnlockQueuesRequest,
};
pub use message::{StoredMessage, StoredMessageRef};
pub use plugin::{
    PluginEnableRequest, PluginEnableResponse, PluginInfo, PluginListResponse, PluginRemoveRequest, PluginState,
    PluginUploadRequest,
};
pub use pull::{FilterExpression, PullPageWriter, PullRequest, PullResponse, PullStatus};
pub use query::{CancelMessageRequest, CancelMessageResponse, MessageQuery, QueryMessageResponse};
pub use queue_offsets::{
    OffsetByTimestampRequest, OffsetByTimestampResponse, QueueOffsetsRequest, QueueOffsetsResponse,
};
pub use request::Request;
pub use response::Response;
pub use retry::{
    Change, DeadLetter, DlqListRequest, DlqListResponse, DlqResendRequest, DlqResendResponse, NackDecision,
    NackRequest, NackResponse, PolicyPlugin, ResendOutcome, ResendResult, RetryPolicyInfo, RetryStats,
    SetGroupPolicyRequest,
};
pub use send::{Delivery, Message, SendRequest, SendResponse, SendResult, SendStatus};
pub use status::{BrokerStatus, FlushMode, StoreState, StoreStatus, TimerStatus};
pub use topic::{DeleteTopicRequest, ListTopicsRequest, ListTopicsResponse, TopicConfig, TopicPermissions};
pub use wire::MAX_STRING_LEN;

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    /// Feeds `data` to a `FrameDecoder` in `chunk_len` pieces, as a stream would arrive.
    fn decode_in_chunks(data: &[u8], chunk_len: usize) -> Result<Frame, DecodeError> {
        FrameDecoder::new().decode_all(data.chunks(chunk_len))
    }

    /// The fuzz target's property (`fuzz/fuzz_targets/protocol_frame.rs`): whatever the
    /// bytes, decoding returns a value or a typed error, and a decoded value re-encodes to
    /// bytes that decode to the same value.
    fn check_arbitrary_bytes(data: &[u8], chunk_len: usize) -> Result<(), TestCaseError> {
        let incremental = decode_in_chunks(data, chunk_len);
        let whole = decode_frame(Bytes::copy_from_slice(data), DEFAULT_MAX_PAYLOAD_LEN);
        prop_assert_eq!(incremental.as_ref().ok(), whole.as_ref().ok());
        let Ok(frame) = whole else { return Ok(()) };

        if let Ok(request) = Request::decode(frame.clone()) {
            let mut dst = BytesMut::new();
            request.encode(&mut dst).unwrap();
            let again = decode_frame(dst.freeze(), u32::MAX).unwrap();
            prop_assert_eq!(Request::decode(again), Ok(request));
        }
        if let Ok(response) = Response::decode(frame) {
            let mut dst = BytesMut::new();
            response.encode(&mut dst).unwrap();
            let again = decode_frame(dst.freeze(), u32::MAX).unwrap();
            prop_assert_eq!(Response::decode(again), Ok(response));
        }
        Ok(())
    }

    /// A valid header of a known kind followed by random payload bytes and, sometimes, a
    /// few bytes past the frame, so the payload decoders and the trailing-byte checks see
    /// far more than the header check lets through from fully random bytes.
    fn arb_framed_payload() -> impl Strategy<Value = Vec<u8>> {
        let kinds: Vec<FrameKind> = RequestKind::ALL
            .into_iter()
            .flat_map(|kind| [FrameKind::Request(kind), FrameKind::Response(kind)])
            .chain([FrameKind::Error])
            .collect();
        (proptest::sample::select(kinds), vec(any::<u8>(), 0..256), vec(any::<u8>(), 0..3)).prop_map(
            |(kind, payload, trailing)| {
                let mut bytes = MAGIC.to_vec();
                bytes.extend_from_slice(&[PROTOCOL_VERSION, 0]);
                bytes.extend_from_slice(&kind.code().to_le_bytes());
                bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                bytes.extend_from_slice(&payload);
                bytes.extend_from_slice(&trailing);
                bytes
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..512), chunk_len in 1..64usize) {
            check_arbitrary_bytes(&data, chunk_len)?;
        }

        #[test]
        fn arbitrary_payloads_never_panic(data in arb_framed_payload(), chunk_len in 1..64usize) {
            check_arbitrary_bytes(&data, chunk_len)?;
        }
    }
}
