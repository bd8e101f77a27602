//! Messages by id: lookup by message id or by business key, and the cancel of a
//! pending delayed message.

use crate::error::{DecodeError, EncodeError};
use crate::message::StoredMessage;
use crate::wire::{Reader, Wire, Writer};

/// Which stored messages to look up.
///
/// Format: `u8` tag; `0` by id, then string msg_id; `1` by key, then string topic,
/// string key, `u32` max_results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageQuery {
    /// The message with this id (as returned by send and pull).
    ById {
        /// The message id.
        msg_id: String,
    },
    /// Messages of `topic` carrying `key` among their keys, newest first.
    ByKey {
        /// The topic to search.
        topic: String,
        /// The business key.
        key: String,
        /// Most messages to return.
        max_results: u32,
    },
}

impl Wire for MessageQuery {
    const MIN_LEN: usize = 1 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            MessageQuery::ById { msg_id } => {
                w.u8(0);
                w.str("query.msg_id", msg_id)
            }
            MessageQuery::ByKey { topic, key, max_results } => {
                w.u8(1);
                w.str("query.topic", topic)?;
                w.str("query.key", key)?;
                w.u32(*max_results);
                Ok(())
            }
        }
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8("query")? {
            0 => Ok(MessageQuery::ById { msg_id: r.str("query.msg_id")? }),
            1 => Ok(MessageQuery::ByKey {
                topic: r.str("query.topic")?,
                key: r.str("query.key")?,
                max_results: r.u32("query.max_results")?,
            }),
            tag => Err(DecodeError::InvalidValue { field: "query", value: tag.into() }),
        }
    }
}

/// The messages a lookup found; empty when none matched a key. An unknown id is answered
/// with [`ErrorCode::NotFound`](crate::ErrorCode::NotFound) instead.
///
/// Format: `u32` count × [`StoredMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMessageResponse {
    /// The messages found.
    pub messages: Vec<StoredMessage>,
}

impl Wire for QueryMessageResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("query.messages", &self.messages)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(QueryMessageResponse { messages: r.list("query.messages")? })
    }
}

/// Cancel a pending delayed message: it is never delivered. Answered with
/// [`CancelMessageResponse`]; a message id that is not a pending delayed message's
/// (unknown, not delayed, or already delivered) with
/// [`ErrorCode::NotFound`](crate::ErrorCode::NotFound).
///
/// Format: string msg_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelMessageRequest {
    /// The id the delayed message's send returned.
    pub msg_id: String,
}

impl Wire for CancelMessageRequest {
    const MIN_LEN: usize = 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("cancel.msg_id", &self.msg_id)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(CancelMessageRequest { msg_id: r.str("cancel.msg_id")? })
    }
}

/// The delayed message cancelled.
///
/// Format: string topic, `u64` deliver_at_ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelMessageResponse {
    /// The topic it would have been delivered to.
    pub topic: String,
    /// When it was due, Unix ms.
    pub deliver_at_ms: u64,
}

impl Wire for CancelMessageResponse {
    const MIN_LEN: usize = 2 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("cancel.topic", &self.topic)?;
        w.u64(self.deliver_at_ms);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(CancelMessageResponse { topic: r.str("cancel.topic")?, deliver_at_ms: r.u64("cancel.deliver_at_ms")? })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{arb_message_query, arb_stored_message, check_request, check_response, encoded_len, frame};
    use crate::{FrameKind, Request, RequestKind, Response};

    #[test]
    fn min_len_is_the_smallest_encoding() {
        let by_id = MessageQuery::ById { msg_id: String::new() };
        assert_eq!(encoded_len(&by_id), MessageQuery::MIN_LEN);
        let none = QueryMessageResponse { messages: Vec::new() };
        assert_eq!(encoded_len(&none), QueryMessageResponse::MIN_LEN);
    }

    #[test]
    fn cancel_min_len_and_golden_bytes() {
        let request = CancelMessageRequest { msg_id: String::new() };
        assert_eq!(encoded_len(&request), CancelMessageRequest::MIN_LEN);
        let response = CancelMessageResponse { topic: String::new(), deliver_at_ms: 0 };
        assert_eq!(encoded_len(&response), CancelMessageResponse::MIN_LEN);
        let mut wire = bytes::BytesMut::new();
        Request::CancelMessage(CancelMessageRequest { msg_id: "AB".into() }).encode(&mut wire).expect("encode");
        assert_eq!(&wire[..], &[0x57, 0x45, 0x49, 0x52, 1, 0, 0x02, 0x04, 4, 0, 0, 0, 2, 0, b'A', b'B']);
    }

    #[test]
    fn unknown_query_tag_is_invalid() {
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::QueryMessage), &[2, 0, 0])),
            Err(DecodeError::InvalidValue { field: "query", value: 2 })
        );
    }

    proptest! {
        #[test]
        fn query_request_round_trips(query in arb_message_query()) {
            check_request(&Request::QueryMessage(query), None)?;
        }

        #[test]
        fn query_response_round_trips(
            messages in proptest::collection::vec(arb_stored_message(), 0..4),
        ) {
            check_response(&Response::QueryMessage(QueryMessageResponse { messages }), None)?;
        }
    }
}
