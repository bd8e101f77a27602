//! Codec errors: why bytes could not be decoded or a value could not be encoded.
//!
//! Both enums are small, `Copy`-cheap and allocation-free so the hot path can return them
//! without cost; each variant names the field or limit involved.

use crate::error_response::ErrorCode;
use crate::frame::FrameKind;

/// Why bytes received from a peer are not a valid frame or payload.
///
/// A decode error ends the stream it happened on; [`DecodeError::error_code`] says which
/// [`ErrorCode`] the broker answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first four bytes are not `WEIR`: the peer does not speak this protocol.
    #[error("bad magic {found:02x?}: the peer does not speak the Weir protocol")]
    BadMagic {
        /// The four bytes received instead of the magic.
        found: [u8; 4],
    },
    /// The frame carries a protocol version this codec does not implement.
    #[error("unsupported protocol version {version} (this codec speaks version {})", crate::frame::PROTOCOL_VERSION)]
    UnsupportedVersion {
        /// The version byte received.
        version: u8,
    },
    /// The header's reserved flags byte is not zero.
    #[error("reserved frame flags {flags:#04x} are set")]
    ReservedFlags {
        /// The flags byte received.
        flags: u8,
    },
    /// The header's kind is not a request, response or error kind.
    #[error("unknown frame kind {kind:#06x}")]
    UnknownKind {
        /// The kind received.
        kind: u16,
    },
    /// The header announces a payload longer than the decoder accepts.
    #[error("frame payload of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced payload length.
        len: u32,
        /// The decoder's limit.
        max: u32,
    },
    /// The stream ended before a whole frame arrived.
    #[error("stream ended after {received} bytes, inside a frame of at least {expected} bytes")]
    TruncatedFrame {
        /// Bytes received on the stream.
        received: usize,
        /// Bytes the frame needs (the header length while the header is incomplete).
        expected: usize,
    },
    /// A well-formed frame of a kind the caller cannot accept here (for example a
    /// response frame given to the request decoder).
    #[error("unexpected frame kind {kind:?}")]
    UnexpectedKind {
        /// The frame's kind.
        kind: FrameKind,
    },
    /// The payload ended inside a field, or a count announces more items than the
    /// remaining bytes can hold.
    #[error("payload truncated in field `{field}`")]
    Truncated {
        /// The field being decoded.
        field: &'static str,
    },
    /// A string field is not valid UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The string field.
        field: &'static str,
    },
    /// A field holds a value outside its domain (an unknown enum tag, a bool that is
    /// neither 0 nor 1, unknown permission bits, a status field of the wrong size).
    #[error("field `{field}` has invalid value {value}")]
    InvalidValue {
        /// The field being decoded.
        field: &'static str,
        /// The value received.
        value: u64,
    },
    /// Bytes follow the last field of a payload, or follow the one frame of a stream.
    #[error("{count} unexpected trailing bytes")]
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
}

impl DecodeError {
    /// The code the broker puts in its [`ErrorResponse`](crate::ErrorResponse) (or in the
    /// QUIC stream reset) for this error.
    pub const fn error_code(&self) -> ErrorCode {
        match self {
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            DecodeError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// Why a value cannot be put on the wire.
///
/// Encoding never panics; on error the destination buffer is left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string, byte field, list or the whole payload is longer than its length prefix
    /// can express.
    #[error("`{field}` has length {len}, over the wire limit of {max}")]
    TooLong {
        /// The field (or `frame payload`).
        field: &'static str,
        /// Its length in bytes, or its item count for lists.
        len: usize,
        /// The largest length the wire format can express.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_for_decode_errors() {
        assert_eq!(DecodeError::UnsupportedVersion { version: 9 }.error_code(), ErrorCode::UnsupportedVersion);
        assert_eq!(DecodeError::FrameTooLarge { len: 10, max: 1 }.error_code(), ErrorCode::FrameTooLarge);
        assert_eq!(DecodeError::InvalidUtf8 { field: "topic" }.error_code(), ErrorCode::BadRequest);
        assert_eq!(DecodeError::BadMagic { found: *b"HTTP" }.error_code(), ErrorCode::BadRequest);
    }

    #[test]
    fn messages_name_the_field() {
        let message = DecodeError::Truncated { field: "topic" }.to_string();
        assert_eq!(message, "payload truncated in field `topic`");
        let message = EncodeError::TooLong { field: "tag", len: 70_000, max: 65_535 }.to_string();
        assert_eq!(message, "`tag` has length 70000, over the wire limit of 65535");
    }
}
