//! The client's error type, and which errors are worth retrying.

use std::path::PathBuf;
use std::time::Duration;

use weir_protocol::{DecodeError, EncodeError, ErrorCode, ErrorResponse, FrameKind};

/// Why a client call failed.
///
/// Broker refusals carry the protocol's typed [`ErrorCode`] ([`Error::Broker`]); match on
/// [`Error::code`] to handle, say, an unknown topic. [`Error::is_transient`] tells
/// whether the same request may succeed if tried again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (bad broker address, empty CA file …).
    #[error("invalid client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The CA certificate file could not be read.
    #[error("cannot read CA certificate file {}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The CA PEM is not a valid certificate list.
    #[error("invalid CA certificate: {reason}")]
    Ca {
        /// What is wrong with it.
        reason: String,
    },
    /// The broker address could not be resolved.
    #[error("cannot resolve broker address `{broker}`")]
    Resolve {
        /// The address as configured.
        broker: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The local UDP socket for QUIC could not be opened.
    #[error("cannot open the client's UDP socket")]
    Socket(#[source] std::io::Error),
    /// quinn refused to start a connection (invalid server name, endpoint stopping …).
    #[error("cannot start a QUIC connection to the broker")]
    Connect(#[source] quinn::ConnectError),
    /// The QUIC connection failed or was lost (broker down or restarted, TLS failure,
    /// idle timeout).
    #[error("connection to the broker failed")]
    Connection(#[source] quinn::ConnectionError),
    /// A call did not complete in time.
    #[error("no answer from the broker within {after:?}")]
    Timeout {
        /// The time allowed.
        after: Duration,
    },
    /// The broker refused the request with an error frame, or reset or stopped the
    /// request's stream with an error code.
    #[error("broker error {code}: {message}")]
    Broker {
        /// What went wrong, typed.
        code: ErrorCode,
        /// The broker's explanation, for people.
        message: String,
    },
    /// The request could not be encoded (a string or list over its wire limit).
    #[error("cannot encode the request")]
    Encode(#[from] EncodeError),
    /// The broker's response could not be decoded.
    #[error("cannot decode the broker's response")]
    Decode(#[from] DecodeError),
    /// The broker's response is larger than the client accepts.
    #[error("the broker's response exceeds the limit of {limit} bytes")]
    ResponseTooLarge {
        /// The limit, frame header included.
        limit: usize,
    },
    /// The broker answered with a response of another kind than the request's.
    #[error("the broker answered with a {response:?} frame, which does not match the request")]
    UnexpectedResponse {
        /// What came back.
        response: FrameKind,
    },
    /// The broker answered a send with another number of results than messages sent.
    #[error("sent {sent} messages but the broker returned {received} results")]
    ResultCount {
        /// Messages in the request.
        sent: usize,
        /// Results in the response.
        received: usize,
    },
    /// A stream failed in a way that is neither a lost connection nor a broker error code
    /// (for example 0-RTT data rejected).
    #[error("request stream failed: {reason}")]
    Stream {
        /// What happened.
        reason: String,
    },
}

impl Error {
    /// The broker's error code, when the broker refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying the same request again may succeed: the connection was lost or
    /// could not be made, the call timed out, or the broker had too many requests in
    /// flight (`TOO_MANY_STREAMS`).
    ///
    /// A request that failed transiently may still have been carried out (the answer was
    /// lost, not the request), so retrying a send can store a message twice.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Connection(error) => connection_error_is_transient(error),
            Error::Broker { code, .. } => *code == ErrorCode::TooManyStreams,
            _ => false,
        }
    }

    pub(crate) fn from_write(error: quinn::WriteError) -> Self {
        match error {
            quinn::WriteError::ConnectionLost(error) => Error::Connection(error),
            quinn::WriteError::Stopped(code) => Error::stream_code(code, "the broker stopped reading the request"),
            other => Error::Stream { reason: other.to_string() },
        }
    }

    pub(crate) fn from_read(error: quinn::ReadError) -> Self {
        match error {
            quinn::ReadError::ConnectionLost(error) => Error::Connection(error),
            quinn::ReadError::Reset(code) => Error::stream_code(code, "the broker reset the response stream"),
            other => Error::Stream { reason: other.to_string() },
        }
    }

    /// A stream reset or stop: its QUIC application error code is a protocol
    /// [`ErrorCode`] (protocol README §5.10).
    fn stream_code(code: quinn::VarInt, message: &str) -> Self {
        let code = u16::try_from(code.into_inner()).map_or(ErrorCode::Unknown(u16::MAX), ErrorCode::from_u16);
        Error::Broker { code, message: message.to_owned() }
    }
}

impl From<ErrorResponse> for Error {
    fn from(response: ErrorResponse) -> Self {
        Error::Broker { code: response.code, message: response.message }
    }
}

/// TLS failures (a crypto transport error) and version mismatches will fail again the
/// same way; lost, reset, timed-out or closed connections may come back (a restarted
/// broker).
fn connection_error_is_transient(error: &quinn::ConnectionError) -> bool {
    use quinn::ConnectionError as E;
    match error {
        E::VersionMismatch | E::TransportError(_) => false,
        E::ConnectionClosed(close) => !is_crypto_error(close.error_code),
        E::ApplicationClosed(_) | E::Reset | E::TimedOut | E::LocallyClosed | E::CidsExhausted => true,
    }
}

/// QUIC carries TLS alerts as transport error codes `0x0100..=0x01ff` (RFC 9000 §20.1).
fn is_crypto_error(code: quinn::TransportErrorCode) -> bool {
    u64::from(code) & !0xff == 0x100
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use quinn::{ApplicationClose, ConnectionClose, ConnectionError, TransportErrorCode, VarInt};

    use super::*;

    fn broker(code: ErrorCode) -> Error {
        Error::from(ErrorResponse::new(code, "refused"))
    }

    fn closed_by_peer(error_code: TransportErrorCode) -> Error {
        Error::Connection(ConnectionError::ConnectionClosed(ConnectionClose {
            error_code,
            frame_type: None,
            reason: Bytes::new(),
        }))
    }

    #[test]
    fn lost_connections_timeouts_and_busy_brokers_are_transient() {
        let transient = [
            Error::Timeout { after: Duration::from_secs(1) },
            Error::Connection(ConnectionError::TimedOut),
            Error::Connection(ConnectionError::Reset),
            Error::Connection(ConnectionError::LocallyClosed),
            Error::Connection(ConnectionError::ApplicationClosed(ApplicationClose {
                error_code: VarInt::from_u32(0),
                reason: Bytes::new(),
            })),
            closed_by_peer(TransportErrorCode::PROTOCOL_VIOLATION),
            broker(ErrorCode::TooManyStreams),
        ];
        for error in transient {
            assert!(error.is_transient(), "{error:?}");
        }
    }

    #[test]
    fn refusals_and_tls_failures_are_not_transient() {
        let permanent = [
            broker(ErrorCode::UnknownTopic),
            broker(ErrorCode::MessageTooLarge),
            broker(ErrorCode::DiskFull),
            broker(ErrorCode::BadRequest),
            broker(ErrorCode::StoreUnavailable),
            broker(ErrorCode::Unknown(999)),
            closed_by_peer(TransportErrorCode::crypto(120)), // no_application_protocol
            Error::Connection(ConnectionError::VersionMismatch),
            Error::ResponseTooLarge { limit: 10 },
            Error::Decode(DecodeError::TrailingBytes { count: 1 }),
        ];
        for error in permanent {
            assert!(!error.is_transient(), "{error:?}");
        }
    }

    #[test]
    fn stream_codes_map_to_error_codes() {
        let reset = Error::from_read(quinn::ReadError::Reset(VarInt::from_u32(11)));
        assert_eq!(reset.code(), Some(ErrorCode::TooManyStreams));
        assert!(reset.is_transient());
        let stopped = Error::from_write(quinn::WriteError::Stopped(VarInt::from_u32(3)));
        assert_eq!(stopped.code(), Some(ErrorCode::FrameTooLarge));
        let huge = Error::from_write(quinn::WriteError::Stopped(VarInt::from_u32(70_000)));
        assert_eq!(huge.code(), Some(ErrorCode::Unknown(u16::MAX)));
    }

    #[test]
    fn broker_errors_show_code_and_message() {
        let error = Error::from(ErrorResponse::new(ErrorCode::UnknownTopic, "no topic `orders`"));
        assert_eq!(error.to_string(), "broker error UNKNOWN_TOPIC: no topic `orders`");
        assert_eq!(error.code(), Some(ErrorCode::UnknownTopic));
    }
}
