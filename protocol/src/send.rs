//! Sending: one message or a batch, and the broker's result for each message.

use std::num::NonZeroU8;

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Wire, Writer};

/// When a sent message becomes visible to consumers.
///
/// A typed field rather than a reserved property, so the broker routes delayed messages
/// without parsing strings and user properties stay the user's.
///
/// Format: `u8` tag; `0` immediate; `1` delay level, then `u8` level (1-based);
/// `2` deliver at, then `u64` Unix time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    /// Deliver as soon as stored.
    #[default]
    Immediate,
    /// Deliver after the broker's delay for this level (RocketMQ levels: 1 = 1 s,
    /// 2 = 5 s, … 18 = 2 h). Level 0 is not a level: use [`Delivery::Immediate`].
    DelayLevel(NonZeroU8),
    /// Deliver at this Unix time in milliseconds.
    DeliverAtMs(u64),
}

impl Wire for Delivery {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match *self {
            Delivery::Immediate => w.u8(0),
            Delivery::DelayLevel(level) => {
                w.u8(1);
                w.u8(level.get());
            }
            Delivery::DeliverAtMs(at) => {
                w.u8(2);
                w.u64(at);
            }
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8("message.delivery")? {
            0 => Ok(Delivery::Immediate),
            1 => {
                let level = r.u8("message.delivery.level")?;
                NonZeroU8::new(level)
                    .map(Delivery::DelayLevel)
                    .ok_or(DecodeError::InvalidValue { field: "message.delivery.level", value: 0 })
            }
            2 => Ok(Delivery::DeliverAtMs(r.u64("message.delivery.at_ms")?)),
            tag => Err(DecodeError::InvalidValue { field: "message.delivery", value: tag.into() }),
        }
    }
}

/// A message as a producer sends it.
///
/// Format: string topic, optional `u32` queue_id, optional string tag, `u32` count ×
/// string keys, `u32` count × (string, string) properties, `u32` flags, `u64`
/// born_timestamp_ms, [`Delivery`], `u32`-length body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic to store the message in.
    pub topic: String,
    /// Queue to store it in; `None` lets the broker pick.
    pub queue_id: Option<u32>,
    /// The message's tag, the cheapest thing to filter on.
    pub tag: Option<String>,
    /// Business keys, indexed for lookup.
    pub keys: Vec<String>,
    /// User properties, in the producer's order.
    pub properties: Vec<(String, String)>,
    /// Reserved for delay and transaction markers; send 0.
    pub flags: u32,
    /// When the producer created the message, Unix time in milliseconds.
    pub born_timestamp_ms: u64,
    /// When the message becomes visible to consumers.
    pub delivery: Delivery,
    /// The payload.
    pub body: Bytes,
}

impl Message {
    /// A message for `topic` with `body`, no tag, keys or properties, broker-chosen queue,
    /// immediate delivery and a zero born timestamp (set it: the codec has no clock).
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            queue_id: None,
            tag: None,
            keys: Vec::new(),
            properties: Vec::new(),
            flags: 0,
            born_timestamp_ms: 0,
            delivery: Delivery::Immediate,
            body: body.into(),
        }
    }
}

impl Wire for Message {
    const MIN_LEN: usize = 2 + 1 + 1 + 4 + 4 + 4 + 8 + Delivery::MIN_LEN + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("message.topic", &self.topic)?;
        w.opt_u32(self.queue_id);
        w.opt_str("message.tag", self.tag.as_deref())?;
        w.str_list("message.keys", &self.keys)?;
        w.properties("message.properties", &self.properties)?;
        w.u32(self.flags);
        w.u64(self.born_timestamp_ms);
        self.delivery.encode(w)?;
        w.bytes("message.body", &self.body)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Message {
            topic: r.str("message.topic")?,
            queue_id: r.opt_u32("message.queue_id")?,
            tag: r.opt_str("message.tag")?,
            keys: r.str_list("message.keys")?,
            properties: r.properties("message.properties")?,
            flags: r.u32("message.flags")?,
            born_timestamp_ms: r.u64("message.born_timestamp_ms")?,
            delivery: Delivery::decode(r)?,
            body: r.bytes("message.body")?,
        })
    }
}

/// Send one message or a batch; the broker answers with one [`SendResult`] per message,
/// in order. An empty batch is a bad request.
///
/// Format: `u32` count, count × [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The messages to store.
    pub messages: Vec<Message>,
}

impl Wire for SendRequest {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("send.messages", &self.messages)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(SendRequest { messages: r.list("send.messages")? })
    }
}

/// How durably a sent message was stored when the broker answered.
///
/// Format: `u8`: 0 `SEND_OK`, 1 `FLUSH_DISK_TIMEOUT`, 2 `FLUSH_SLAVE_TIMEOUT`,
/// 3 `SLAVE_NOT_AVAILABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendStatus {
    /// Stored as the flush mode promises (page cache for async, fsync for sync).
    SendOk,
    /// Stored, but the sync flush did not complete in time.
    FlushDiskTimeout,
    /// Stored, but the slave did not confirm in time.
    FlushSlaveTimeout,
    /// Stored, but no slave is available to replicate to.
    SlaveNotAvailable,
}

impl SendStatus {
    const ALL: [SendStatus; 4] = [
        SendStatus::SendOk,
        SendStatus::FlushDiskTimeout,
        SendStatus::FlushSlaveTimeout,
        SendStatus::SlaveNotAvailable,
    ];

    /// RocketMQ's name for the status, e.g. `SEND_OK`.
    pub const fn name(self) -> &'static str {
        match self {
            SendStatus::SendOk => "SEND_OK",
            SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        }
    }
}

/// RocketMQ's names: `SEND_OK`, `FLUSH_DISK_TIMEOUT`, `FLUSH_SLAVE_TIMEOUT`, `SLAVE_NOT_AVAILABLE`.
impl std::fmt::Display for SendStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendStatus::SendOk => "SEND_OK",
            SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        })
    }
}

/// Where and how one sent message was stored.
///
/// Format: string msg_id, `u32` queue_id, `u64` queue_offset, `u8` [`SendStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// The message id; its format is the broker's (consumers and lookups echo it back).
    pub msg_id: String,
    /// The queue the message was stored in.
    pub queue_id: u32,
    /// Its offset in that queue.
    pub queue_offset: u64,
    /// How durably it was stored.
    pub status: SendStatus,
}

impl Wire for SendResult {
    const MIN_LEN: usize = 2 + 4 + 8 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("send_result.msg_id", &self.msg_id)?;
        w.u32(self.queue_id);
        w.u64(self.queue_offset);
        w.u8(self.status as u8);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let msg_id = r.str("send_result.msg_id")?;
        let queue_id = r.u32("send_result.queue_id")?;
        let queue_offset = r.u64("send_result.queue_offset")?;
        let status = r.u8("send_result.status")?;
        let status = SendStatus::ALL
            .get(usize::from(status))
            .copied()
            .ok_or(DecodeError::InvalidValue { field: "send_result.status", value: status.into() })?;
        Ok(SendResult { msg_id, queue_id, queue_offset, status })
    }
}

/// The results of a send, one per message in request order.
///
/// Format: `u32` count, count × [`SendResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResponse {
    /// One result per sent message.
    pub results: Vec<SendResult>,
}

impl Wire for SendResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("send.results", &self.results)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(SendResponse { results: r.list("send.results")? })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{arb_message, arb_send_result, check_request, check_response, encoded_len, frame};
    use crate::{FrameKind, Request, RequestKind, Response};

    #[test]
    fn min_lens_are_the_smallest_encodings() {
        assert_eq!(encoded_len(&Message::new("", "")), Message::MIN_LEN);
        assert_eq!(encoded_len(&Delivery::Immediate), Delivery::MIN_LEN);
        let result = SendResult { msg_id: String::new(), queue_id: 0, queue_offset: 0, status: SendStatus::SendOk };
        assert_eq!(encoded_len(&result), SendResult::MIN_LEN);
    }

    #[test]
    fn status_values_and_names() {
        for (value, status) in SendStatus::ALL.into_iter().enumerate() {
            assert_eq!(status as usize, value);
        }
        assert_eq!(SendStatus::FlushDiskTimeout.name(), "FLUSH_DISK_TIMEOUT");
        let mut payload = vec![1, 0, 0, 0]; // one result
        payload.extend_from_slice(&[0, 0]); // msg_id ""
        payload.extend_from_slice(&[0; 12]); // queue_id, queue_offset
        payload.push(4); // status: out of range
        assert_eq!(
            Response::decode(frame(FrameKind::Response(RequestKind::Send), &payload)),
            Err(DecodeError::InvalidValue { field: "send_result.status", value: 4 })
        );
    }

    #[test]
    fn delay_level_zero_is_invalid() {
        let mut payload = vec![1, 0, 0, 0]; // one message
        payload.extend_from_slice(&[1, 0, b't', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // topic..properties
        payload.extend_from_slice(&[0; 12]); // flags, born_timestamp_ms
        payload.extend_from_slice(&[1, 0]); // delivery: delay level 0
        payload.extend_from_slice(&[0; 4]); // body
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::Send), &payload)),
            Err(DecodeError::InvalidValue { field: "message.delivery.level", value: 0 })
        );
        let level = payload.len() - 5;
        payload[level] = 3;
        let Ok(Request::Send(send)) = Request::decode(frame(FrameKind::Request(RequestKind::Send), &payload)) else {
            panic!("level 3 decodes");
        };
        assert_eq!(send.messages[0].delivery, Delivery::DelayLevel(NonZeroU8::new(3).unwrap()));
    }

    #[test]
    fn golden_send_frame() {
        let mut message = Message::new("t", &b"hi"[..]);
        message.tag = Some("A".to_owned());
        message.keys = vec!["k".to_owned()];
        message.properties = vec![("p".to_owned(), "v".to_owned())];
        message.born_timestamp_ms = 0x0102;
        let request = Request::Send(SendRequest { messages: vec![message] });
        let golden: &[u8] = &[
            b'W', b'E', b'I', b'R', 1, 0, // magic, version, flags
            0x01, 0x02, // kind: Send
            48, 0, 0, 0, // payload length
            1, 0, 0, 0, // message count
            1, 0, b't', // topic
            0,    // queue_id: absent
            1, 1, 0, b'A', // tag: present, "A"
            1, 0, 0, 0, 1, 0, b'k', // keys: ["k"]
            1, 0, 0, 0, 1, 0, b'p', 1, 0, b'v', // properties: [("p", "v")]
            0, 0, 0, 0, // flags
            0x02, 0x01, 0, 0, 0, 0, 0, 0, // born_timestamp_ms
            0, // delivery: immediate
            2, 0, 0, 0, b'h', b'i', // body
        ];
        check_request(&request, Some(golden)).unwrap();
    }

    proptest! {
        #[test]
        fn send_request_round_trips(messages in proptest::collection::vec(arb_message(), 0..4)) {
            check_request(&Request::Send(SendRequest { messages }), None)?;
        }

        #[test]
        fn send_response_round_trips(results in proptest::collection::vec(arb_send_result(), 0..5)) {
            check_response(&Response::Send(SendResponse { results }), None)?;
        }
    }
}
