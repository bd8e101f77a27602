//! Message lookup by message id or by business key.

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
