//! The error response any request may get, and its typed error codes.

use std::fmt;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Wire, Writer};

/// Why the broker refused or failed a request.
///
/// The same `u16` values are used as QUIC application error codes when the broker resets
/// a stream or closes a connection. Codes this version does not know decode to
/// [`ErrorCode::Unknown`] so newer brokers stay readable.
///
/// Format: `u16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or invalid (bad frame, bad field value, empty batch…).
    BadRequest,
    /// The frame's protocol version is not spoken by the broker.
    UnsupportedVersion,
    /// The frame's payload exceeds the broker's frame size limit.
    FrameTooLarge,
    /// The topic does not exist.
    UnknownTopic,
    /// A topic with that name already exists.
    TopicExists,
    /// A message body (or the whole message) exceeds the broker's message size limit.
    MessageTooLarge,
    /// The disk is above its high-water mark; writes are refused until space is freed.
    DiskFull,
    /// The store stopped after an I/O error (fail-stop) and refuses requests until the
    /// broker is restarted.
    StoreUnavailable,
    /// The message, offset or other looked-up item does not exist.
    NotFound,
    /// A bug or unexpected condition in the broker.
    Internal,
    /// The connection has too many requests in flight (for example held long polls);
    /// retry later.
    TooManyStreams,
    /// Reserved for access control: the credentials do not allow this request.
    Unauthorized,
    /// A subscription expression (tag or SQL92) is invalid; the message gives the position.
    InvalidFilter,
    /// A pull asked for the group's registered subscription, and there is none: subscribe first.
    SubscriptionNotFound,
    /// A plugin module was refused (bad ABI, missing exports, forbidden imports, too large, ...).
    InvalidPlugin,
    /// The plugin is used by subscriptions; remove them first or force.
    PluginInUse,
    /// The member does not own that queue in the current generation, or its generation
    /// predates its ownership: a stale owner is fenced.
    NotAssigned,
    /// The member's subscription differs from the one the group's live members hold; the
    /// message names both expressions.
    SubscriptionConflict,
    /// Another live session uses this member id.
    MemberIdInUse,
    /// Not a live member of the group: it left or expired; heartbeat again to rejoin.
    UnknownMember,
    /// A code this version of the protocol does not know.
    Unknown(u16),
}

impl ErrorCode {
    /// Every known code, in wire order.
    pub const KNOWN: [ErrorCode; 20] = [
        ErrorCode::BadRequest,
        ErrorCode::UnsupportedVersion,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownTopic,
        ErrorCode::TopicExists,
        ErrorCode::MessageTooLarge,
        ErrorCode::DiskFull,
        ErrorCode::StoreUnavailable,
        ErrorCode::NotFound,
        ErrorCode::Internal,
        ErrorCode::TooManyStreams,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidFilter,
        ErrorCode::SubscriptionNotFound,
        ErrorCode::InvalidPlugin,
        ErrorCode::PluginInUse,
        ErrorCode::NotAssigned,
        ErrorCode::SubscriptionConflict,
        ErrorCode::MemberIdInUse,
        ErrorCode::UnknownMember,
    ];

    /// The wire value.
    pub const fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::FrameTooLarge => 3,
            ErrorCode::UnknownTopic => 4,
            ErrorCode::TopicExists => 5,
            ErrorCode::MessageTooLarge => 6,
            ErrorCode::DiskFull => 7,
            ErrorCode::StoreUnavailable => 8,
            ErrorCode::NotFound => 9,
            ErrorCode::Internal => 10,
            ErrorCode::TooManyStreams => 11,
            ErrorCode::Unauthorized => 12,
            ErrorCode::InvalidFilter => 13,
            ErrorCode::SubscriptionNotFound => 14,
            ErrorCode::InvalidPlugin => 15,
            ErrorCode::PluginInUse => 16,
            ErrorCode::NotAssigned => 17,
            ErrorCode::SubscriptionConflict => 18,
            ErrorCode::MemberIdInUse => 19,
            ErrorCode::UnknownMember => 20,
            ErrorCode::Unknown(code) => code,
        }
    }

    /// The code for a wire value; values this version does not know become
    /// [`ErrorCode::Unknown`].
    pub fn from_u16(code: u16) -> Self {
        Self::KNOWN.into_iter().find(|known| known.to_u16() == code).unwrap_or(ErrorCode::Unknown(code))
    }

    /// The code's name as operators see it, e.g. `UNKNOWN_TOPIC`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::UnknownTopic => "UNKNOWN_TOPIC",
            ErrorCode::TopicExists => "TOPIC_EXISTS",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::DiskFull => "DISK_FULL",
            ErrorCode::StoreUnavailable => "STORE_UNAVAILABLE",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::TooManyStreams => "TOO_MANY_STREAMS",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::InvalidFilter => "INVALID_FILTER",
            ErrorCode::SubscriptionNotFound => "SUBSCRIPTION_NOT_FOUND",
            ErrorCode::InvalidPlugin => "INVALID_PLUGIN",
            ErrorCode::PluginInUse => "PLUGIN_IN_USE",
            ErrorCode::NotAssigned => "NOT_ASSIGNED",
            ErrorCode::SubscriptionConflict => "SUBSCRIPTION_CONFLICT",
            ErrorCode::MemberIdInUse => "MEMBER_ID_IN_USE",
            ErrorCode::UnknownMember => "UNKNOWN_MEMBER",
            ErrorCode::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unknown(code) => write!(f, "UNKNOWN({code})"),
            known => f.write_str(known.name()),
        }
    }
}

/// The broker's answer when a request fails, whatever its kind.
///
/// Format: `u16` code, string message. This layout is frozen across protocol versions,
/// so a client can always read why its frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorResponse {
    /// An error response with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorResponse { code, message: message.into() }
    }
}

impl From<DecodeError> for ErrorResponse {
    /// The response a broker sends for a request it could not decode.
    fn from(error: DecodeError) -> Self {
        ErrorResponse::new(error.error_code(), error.to_string())
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorResponse {}

impl Wire for ErrorResponse {
    const MIN_LEN: usize = 2 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(self.code.to_u16());
        w.str("error.message", &self.message)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ErrorResponse { code: ErrorCode::from_u16(r.u16("error.code")?), message: r.str("error.message")? })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Response;
    use crate::testing::{arb_error_response, check_response, encoded_len};

    #[test]
    fn codes_are_stable() {
        let values: Vec<u16> = ErrorCode::KNOWN.iter().map(|code| code.to_u16()).collect();
        assert_eq!(values, (1..=20).collect::<Vec<u16>>());
        assert_eq!(ErrorCode::from_u16(17), ErrorCode::NotAssigned);
        assert_eq!(ErrorCode::from_u16(20), ErrorCode::UnknownMember);
        assert_eq!(ErrorCode::from_u16(21), ErrorCode::Unknown(21));
        assert_eq!(ErrorCode::from_u16(4), ErrorCode::UnknownTopic);
        assert_eq!(ErrorCode::from_u16(0), ErrorCode::Unknown(0));
        assert_eq!(ErrorCode::from_u16(999), ErrorCode::Unknown(999));
        assert_eq!(ErrorCode::Unknown(999).to_u16(), 999);
    }

    #[test]
    fn display_names() {
        assert_eq!(ErrorCode::StoreUnavailable.to_string(), "STORE_UNAVAILABLE");
        assert_eq!(ErrorCode::Unknown(77).to_string(), "UNKNOWN(77)");
        let names: Vec<String> = ErrorCode::KNOWN[16..].iter().map(ErrorCode::to_string).collect();
        assert_eq!(names, ["NOT_ASSIGNED", "SUBSCRIPTION_CONFLICT", "MEMBER_ID_IN_USE", "UNKNOWN_MEMBER"]);
        let response = ErrorResponse::new(ErrorCode::UnknownTopic, "no topic `orders`");
        assert_eq!(response.to_string(), "UNKNOWN_TOPIC: no topic `orders`");
    }

    #[test]
    fn decode_errors_become_responses() {
        let response = ErrorResponse::from(DecodeError::FrameTooLarge { len: 9, max: 8 });
        assert_eq!(response.code, ErrorCode::FrameTooLarge);
        assert_eq!(response.message, "frame payload of 9 bytes exceeds the limit of 8 bytes");
    }

    #[test]
    fn min_len_is_the_smallest_encoding() {
        let smallest = ErrorResponse::new(ErrorCode::Internal, "");
        assert_eq!(encoded_len(&smallest), ErrorResponse::MIN_LEN);
    }

    #[test]
    fn golden_error_frame() {
        let response = Response::Error(ErrorResponse::new(ErrorCode::UnknownTopic, "no t"));
        let golden: &[u8] = &[
            b'W', b'E', b'I', b'R', // magic
            1, 0, // version, flags
            0xff, 0xff, // kind: error
            8, 0, 0, 0, // payload length
            4, 0, // code: UNKNOWN_TOPIC
            4, 0, b'n', b'o', b' ', b't', // message
        ];
        check_response(&response, Some(golden)).unwrap();
    }

    proptest! {
        #[test]
        fn error_response_round_trips(response in arb_error_response()) {
            check_response(&Response::Error(response), None)?;
        }
    }
}
