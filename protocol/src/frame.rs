//! The frame: a fixed 12-byte header followed by one request, response or error payload.
//!
//! Format: `[u8; 4]` magic `WEIR`, `u8` version, `u8` flags (reserved, 0), `u16` kind,
//! `u32` payload length, then `length` payload bytes; integers little-endian.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::wire::Writer;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"WEIR";

/// The protocol version this codec speaks, carried in every frame header.
pub const PROTOCOL_VERSION: u8 = 1;

/// The QUIC ALPN protocol id for this protocol version; a peer that offers no common ALPN
/// is refused during the TLS handshake, before any frame is sent.
pub const ALPN: &[u8] = b"weir/1";

/// Recommended largest UDP payload a peer sends and accepts, in bytes (README §1). Path MTU
/// discovery searches up to it and settles lower on smaller paths (about 1 452 on
/// Ethernet). On loopback, 4 400 drained a backlog about 25 % faster than 1 452 and sped
/// up acknowledged sends, because each packet costs a fixed amount of packet handling.
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 4400;

/// Largest usable UDP payload, in bytes. Senders batch up to ten datagrams into one
/// segmentation-offload (GSO) write, and the kernel refuses a batch over 64 KiB: above
/// this size whole batches would be dropped.
pub const MAX_UDP_PAYLOAD_LIMIT: u16 = 6500;

/// Smallest UDP payload QUIC allows (RFC 9000 §14).
pub const MIN_UDP_PAYLOAD: u16 = 1200;

/// A largest-UDP-payload setting outside [`MIN_UDP_PAYLOAD`]..=[`MAX_UDP_PAYLOAD_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("max_udp_payload must be from {} to {} bytes, not {}", MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD_LIMIT, .0)]
pub struct UdpPayloadOutOfRange(pub u16);

/// `bytes` as a largest UDP payload, or the error when QUIC or GSO cannot use it.
pub fn checked_udp_payload(bytes: u16) -> Result<u16, UdpPayloadOutOfRange> {
    if (MIN_UDP_PAYLOAD..=MAX_UDP_PAYLOAD_LIMIT).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(UdpPayloadOutOfRange(bytes))
    }
}

/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 12;

/// Default largest payload a decoder accepts: 8 MiB, room for a 4 MiB message (the
/// broker's default message size limit) or a batch of smaller ones, plus their metadata.
pub const DEFAULT_MAX_PAYLOAD_LEN: u32 = 8 * 1024 * 1024;

/// High bit of a kind: set on responses.
const RESPONSE_BIT: u16 = 0x8000;

/// The kind code of an error frame.
const ERROR_KIND: u16 = 0xffff;

/// What a request asks for; the response to it has the same kind with the high bit set.
///
/// Format: `u16` code, family in the high byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum RequestKind {
    /// Create a topic.
    CreateTopic = 0x0101,
    /// Change a topic's queue counts or permissions.
    UpdateTopic = 0x0102,
    /// Delete a topic.
    DeleteTopic = 0x0103,
    /// List topics.
    ListTopics = 0x0104,
    /// Send one message or a batch.
    Send = 0x0201,
    /// Pull messages from one queue, optionally long-polling.
    Pull = 0x0301,
    /// Look messages up by id or by key.
    QueryMessage = 0x0401,
    /// Cancel a pending delayed message by the id its send returned.
    CancelMessage = 0x0402,
    /// A queue's min and max offsets.
    QueueOffsets = 0x0501,
    /// The first queue offset stored at or after a timestamp.
    OffsetByTimestamp = 0x0502,
    /// Commit a consumer group's offset for a queue.
    CommitOffset = 0x0601,
    /// Fetch a consumer group's committed offset for a queue.
    FetchOffset = 0x0602,
    /// Broker status.
    Status = 0x0701,
    /// Declare a consumer group (production or shadow).
    CreateGroup = 0x0801,
    /// Register a group's subscription to a topic.
    Subscribe = 0x0802,
    /// A group's filter statistics.
    GroupStats = 0x0803,
    /// Upload (or replace) a WebAssembly plugin.
    PluginUpload = 0x0901,
    /// List plugins.
    PluginList = 0x0902,
    /// Remove a plugin.
    PluginRemove = 0x0903,
    /// Re-enable a plugin disabled after repeated failures.
    PluginEnable = 0x0904,
    /// Join or stay in a consumer group, and get the member's queues.
    Heartbeat = 0x0A01,
    /// Leave a consumer group.
    LeaveGroup = 0x0A02,
    /// Lock queues for a member's orderly consumption.
    LockQueues = 0x0A03,
    /// Release a member's queue locks.
    UnlockQueues = 0x0A04,
    /// List consumer groups.
    ListGroups = 0x0A05,
    /// A group's members, subscriptions and conflicts.
    DescribeGroup = 0x0A06,
    /// A group's lag per queue.
    GroupLag = 0x0A07,
    /// Move a group's offsets for a topic.
    ResetOffset = 0x0A08,
    /// Change a group's retry policy (dlq-policy plugin, redelivery limit).
    SetGroupPolicy = 0x0A09,
    /// Report a failed consumption: the broker stores a retry or dead-letter copy.
    Nack = 0x0B01,
    /// List a group's dead letters.
    DlqList = 0x0B02,
    /// Send dead letters back to their original topics.
    DlqResend = 0x0B03,
}

impl RequestKind {
    /// Every request kind, in code order.
    pub const ALL: [RequestKind; 32] = [
        RequestKind::CreateTopic,
        RequestKind::UpdateTopic,
        RequestKind::DeleteTopic,
        RequestKind::ListTopics,
        RequestKind::Send,
        RequestKind::Pull,
        RequestKind::QueryMessage,
        RequestKind::CancelMessage,
        RequestKind::QueueOffsets,
        RequestKind::OffsetByTimestamp,
        RequestKind::CommitOffset,
        RequestKind::FetchOffset,
        RequestKind::Status,
        RequestKind::CreateGroup,
        RequestKind::Subscribe,
        RequestKind::GroupStats,
        RequestKind::PluginUpload,
        RequestKind::PluginList,
        RequestKind::PluginRemove,
        RequestKind::PluginEnable,
        RequestKind::Heartbeat,
        RequestKind::LeaveGroup,
        RequestKind::LockQueues,
        RequestKind::UnlockQueues,
        RequestKind::ListGroups,
        RequestKind::DescribeGroup,
        RequestKind::GroupLag,
        RequestKind::ResetOffset,
        RequestKind::SetGroupPolicy,
        RequestKind::Nack,
        RequestKind::DlqList,
        RequestKind::DlqResend,
    ];

    /// The wire code.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// The kind with this wire code, if any.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// What a frame carries: a request, the response to a request kind, or an error.
///
/// Format: `u16`: the request code, the request code `| 0x8000`, or `0xffff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A request, client to broker.
    Request(RequestKind),
    /// The successful response to a request of this kind, broker to client.
    Response(RequestKind),
    /// An error response to any request, broker to client.
    Error,
}

impl FrameKind {
    /// The wire code.
    pub const fn code(self) -> u16 {
        match self {
            FrameKind::Request(kind) => kind.code(),
            FrameKind::Response(kind) => kind.code() | RESPONSE_BIT,
            FrameKind::Error => ERROR_KIND,
        }
    }

    /// The kind with this wire code, if any.
    pub fn from_code(code: u16) -> Option<Self> {
        if code == ERROR_KIND {
            Some(FrameKind::Error)
        } else if code & RESPONSE_BIT != 0 {
            RequestKind::from_code(code & !RESPONSE_BIT).map(FrameKind::Response)
        } else {
            RequestKind::from_code(code).map(FrameKind::Request)
        }
    }
}

/// One decoded frame: its kind and its still-encoded payload.
///
/// Turn it into a typed value with [`Request::decode`](crate::Request::decode) or
/// [`Response::decode`](crate::Response::decode).
///
/// Format: the 12-byte header (see the module docs), then `payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload holds.
    pub kind: FrameKind,
    /// The payload bytes, without the header.
    pub payload: Bytes,
}

/// Validates a complete header and returns the frame kind and payload length.
pub(crate) fn parse_header(header: &[u8; HEADER_LEN], max_payload_len: u32) -> Result<(FrameKind, u32), DecodeError> {
    let [m0, m1, m2, m3, version, flags, k0, k1, l0, l1, l2, l3] = *header;
    let found = [m0, m1, m2, m3];
    if found != MAGIC {
        return Err(DecodeError::BadMagic { found });
    }
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    if flags != 0 {
        return Err(DecodeError::ReservedFlags { flags });
    }
    let code = u16::from_le_bytes([k0, k1]);
    let kind = FrameKind::from_code(code).ok_or(DecodeError::UnknownKind { kind: code })?;
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    if len > max_payload_len {
        return Err(DecodeError::FrameTooLarge { len, max: max_payload_len });
    }
    Ok((kind, len))
}

/// Fills in a frame header for a payload of `payload_len` bytes.
pub(crate) fn write_header(
    header: &mut [u8; HEADER_LEN],
    kind: FrameKind,
    payload_len: usize,
) -> Result<(), EncodeError> {
    let len = u32::try_from(payload_len).map_err(|_| EncodeError::TooLong {
        field: "frame payload",
        len: payload_len,
        max: u32::MAX as usize,
    })?;
    header[..4].copy_from_slice(&MAGIC);
    header[4] = PROTOCOL_VERSION;
    header[5] = 0;
    header[6..8].copy_from_slice(&kind.code().to_le_bytes());
    header[8..].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Appends one frame of `kind` whose payload `write_payload` produces; on error `dst`
/// is truncated back to its original length.
pub(crate) fn encode_frame(
    dst: &mut BytesMut,
    kind: FrameKind,
    write_payload: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = dst.len();
    dst.put_bytes(0, HEADER_LEN);
    let result = write_payload(&mut Writer::new(dst)).and_then(|()| {
        let payload_len = dst.len() - start - HEADER_LEN;
        let header: &mut [u8; HEADER_LEN] =
            (&mut dst[start..start + HEADER_LEN]).try_into().expect("the header's bytes were put above");
        write_header(header, kind, payload_len)
    });
    match result {
        Ok(()) => Ok(()),
        Err(error) => {
            dst.truncate(start);
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_payloads_outside_what_quic_and_gso_allow_are_refused() {
        for good in [MIN_UDP_PAYLOAD, DEFAULT_MAX_UDP_PAYLOAD, MAX_UDP_PAYLOAD_LIMIT] {
            assert_eq!(checked_udp_payload(good), Ok(good));
        }
        for bad in [0, MIN_UDP_PAYLOAD - 1, MAX_UDP_PAYLOAD_LIMIT + 1, u16::MAX] {
            assert_eq!(checked_udp_payload(bad), Err(UdpPayloadOutOfRange(bad)));
        }
        assert_eq!(UdpPayloadOutOfRange(9000).to_string(), "max_udp_payload must be from 1200 to 6500 bytes, not 9000");
    }

    fn header(version: u8, flags: u8, kind: u16, len: u32) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[4] = version;
        bytes[5] = flags;
        bytes[6..8].copy_from_slice(&kind.to_le_bytes());
        bytes[8..].copy_from_slice(&len.to_le_bytes());
        bytes
    }

    #[test]
    fn kind_codes_round_trip_and_do_not_collide() {
        let mut codes = Vec::new();
        for kind in RequestKind::ALL {
            assert_eq!(RequestKind::from_code(kind.code()), Some(kind));
            for frame_kind in [FrameKind::Request(kind), FrameKind::Response(kind)] {
                assert_eq!(FrameKind::from_code(frame_kind.code()), Some(frame_kind));
                codes.push(frame_kind.code());
            }
        }
        codes.push(FrameKind::Error.code());
        assert_eq!(FrameKind::from_code(0xffff), Some(FrameKind::Error));
        let count = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), count);
    }

    #[test]
    fn unknown_codes_are_none() {
        for code in [0x0000, 0x0105, 0x0403, 0x0a00, 0x0a0a, 0x0b04, 0x0c01, 0x8000, 0x8105, 0x8a0a, 0x7fff, 0xfffe] {
            assert_eq!(FrameKind::from_code(code), None, "{code:#06x}");
        }
    }

    #[test]
    fn header_checks_in_order() {
        let ok = header(1, 0, 0x0701, 0);
        assert_eq!(parse_header(&ok, 16), Ok((FrameKind::Request(RequestKind::Status), 0)));
        let mut bad_magic = ok;
        bad_magic[..4].copy_from_slice(b"HTTP");
        assert_eq!(parse_header(&bad_magic, 16), Err(DecodeError::BadMagic { found: *b"HTTP" }));
        assert_eq!(parse_header(&header(2, 0, 0x0701, 0), 16), Err(DecodeError::UnsupportedVersion { version: 2 }));
        assert_eq!(parse_header(&header(1, 4, 0x0701, 0), 16), Err(DecodeError::ReservedFlags { flags: 4 }));
        assert_eq!(parse_header(&header(1, 0, 0x0999, 0), 16), Err(DecodeError::UnknownKind { kind: 0x0999 }));
        assert_eq!(parse_header(&header(1, 0, 0x8201, 17), 16), Err(DecodeError::FrameTooLarge { len: 17, max: 16 }));
        assert_eq!(parse_header(&header(1, 0, 0x8201, 16), 16), Ok((FrameKind::Response(RequestKind::Send), 16)));
    }

    #[test]
    fn encode_frame_patches_length_and_rolls_back_on_error() {
        let mut dst = BytesMut::from(&b"xy"[..]);
        encode_frame(&mut dst, FrameKind::Error, |w| {
            w.u16(7);
            Ok(())
        })
        .unwrap();
        assert_eq!(&dst[..2], b"xy");
        assert_eq!(&dst[2..], &[b'W', b'E', b'I', b'R', 1, 0, 0xff, 0xff, 2, 0, 0, 0, 7, 0]);

        let before = dst.clone();
        let long = "x".repeat(70_000);
        let error = encode_frame(&mut dst, FrameKind::Error, |w| w.str("message", &long));
        assert!(matches!(error, Err(EncodeError::TooLong { field: "message", .. })));
        assert_eq!(dst, before);
    }
}
