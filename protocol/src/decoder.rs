//! Turning the bytes of one stream direction into its one frame.
//!
//! Each QUIC stream direction carries exactly one frame, so both decoders here reject
//! bytes after it. [`FrameDecoder`] takes the bytes as they arrive and reports a bad
//! header as soon as the 12 header bytes are in, before the payload is buffered;
//! [`decode_frame`] takes a stream read to its end in one buffer.

use std::cmp::Ordering;

use bytes::{Bytes, BytesMut};

use crate::error::DecodeError;
use crate::frame::{DEFAULT_MAX_PAYLOAD_LEN, Frame, FrameKind, HEADER_LEN, parse_header};

/// What [`FrameDecoder::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Not a whole frame yet: feed more bytes.
    Incomplete,
    /// The stream's frame, complete.
    Frame(Frame),
}

/// Incremental decoder for the one frame on a stream direction.
///
/// Feed it every chunk read from the stream with [`decode`](Self::decode) until it
/// returns [`Decoded::Frame`] or an error; when the peer finishes its side, call
/// [`finish`](Self::finish) to learn whether the stream was cut short. Or feed every
/// chunk with [`feed`](Self::feed) and take the frame with [`into_frame`](Self::into_frame)
/// once the stream ended (what a server reading a request does). After an error
/// the stream is unusable: answer with the error's [`error_code`](DecodeError::error_code)
/// and drop the decoder.
///
/// The header is validated (magic, version, flags, kind, payload limit) as soon as its 12
/// bytes are buffered. Memory grows only with bytes actually received, never with the
/// length a header announces.
#[derive(Debug)]
pub struct FrameDecoder {
    max_payload_len: u32,
    buf: BytesMut,
    /// Kind and payload length, once the header has been validated.
    header: Option<(FrameKind, usize)>,
    /// The frame has been returned; any further byte is trailing.
    done: bool,
    /// The frame, once whole, for [`into_frame`](Self::into_frame).
    frame: Option<Frame>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder accepting payloads up to [`DEFAULT_MAX_PAYLOAD_LEN`].
    pub fn new() -> Self {
        Self::with_max_payload_len(DEFAULT_MAX_PAYLOAD_LEN)
    }

    /// A decoder accepting payloads up to `max_payload_len` bytes (the header not counted).
    pub fn with_max_payload_len(max_payload_len: u32) -> Self {
        FrameDecoder { max_payload_len, buf: BytesMut::new(), header: None, done: false, frame: None }
    }

    /// Buffers `chunk` and returns the frame once all of it has arrived.
    ///
    /// Once the frame has been returned, a non-empty chunk is
    /// [`TrailingBytes`](DecodeError::TrailingBytes) and an empty one is
    /// [`Decoded::Incomplete`].
    pub fn decode(&mut self, chunk: &[u8]) -> Result<Decoded, DecodeError> {
        if self.done {
            return match chunk.len() {
                0 => Ok(Decoded::Incomplete),
                count => Err(DecodeError::TrailingBytes { count }),
            };
        }
        self.buf.extend_from_slice(chunk);
        let (kind, payload_len) = match self.header {
            Some(header) => header,
            None => {
                let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
                    return Ok(Decoded::Incomplete);
                };
                let (kind, len) = parse_header(header, self.max_payload_len)?;
                let header = (kind, len as usize);
                self.header = Some(header);
                header
            }
        };
        if !frame_is_complete(self.buf.len(), payload_len)? {
            return Ok(Decoded::Incomplete);
        }
        let payload = std::mem::take(&mut self.buf).freeze().split_off(HEADER_LEN);
        self.done = true;
        let frame = Frame { kind, payload };
        self.frame = Some(frame.clone());
        Ok(Decoded::Frame(frame))
    }

    /// Buffers `chunk`; the frame is kept for [`into_frame`](Self::into_frame).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        self.decode(chunk).map(drop)
    }

    /// The stream's one frame, once the peer has finished its side:
    /// [`TruncatedFrame`](DecodeError::TruncatedFrame) if the stream ended before it was whole.
    pub fn into_frame(self) -> Result<Frame, DecodeError> {
        self.finish()?;
        self.frame.ok_or(DecodeError::TruncatedFrame { received: 0, expected: HEADER_LEN })
    }

    /// Feeds every chunk: the one frame of a stream whose bytes arrived as `chunks`.
    pub fn decode_all<'a>(mut self, chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Frame, DecodeError> {
        for chunk in chunks {
            self.feed(chunk)?;
        }
        self.into_frame()
    }

    /// Checks the stream once the peer has finished its side: `Ok` when the frame was
    /// returned, [`TruncatedFrame`](DecodeError::TruncatedFrame) when the stream ended
    /// before it was whole (including an empty stream).
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.done {
            return Ok(());
        }
        let expected = self.header.map_or(HEADER_LEN, |(_, payload_len)| HEADER_LEN + payload_len);
        Err(DecodeError::TruncatedFrame { received: self.buf.len(), expected })
    }
}

/// Decodes a whole stream direction, read to its end, as exactly one frame. The payload
/// is a zero-copy slice of `stream`.
pub fn decode_frame(stream: Bytes, max_payload_len: u32) -> Result<Frame, DecodeError> {
    let Some(header) = stream.first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::TruncatedFrame { received: stream.len(), expected: HEADER_LEN });
    };
    let (kind, payload_len) = parse_header(header, max_payload_len)?;
    let payload_len = payload_len as usize;
    if !frame_is_complete(stream.len(), payload_len)? {
        return Err(DecodeError::TruncatedFrame { received: stream.len(), expected: HEADER_LEN + payload_len });
    }
    Ok(Frame { kind, payload: stream.slice(HEADER_LEN..) })
}

/// Whether `received` bytes hold exactly the frame; bytes beyond it are an error.
fn frame_is_complete(received: usize, payload_len: usize) -> Result<bool, DecodeError> {
    let frame_len = HEADER_LEN + payload_len;
    match received.cmp(&frame_len) {
        Ordering::Less => Ok(false),
        Ordering::Equal => Ok(true),
        Ordering::Greater => Err(DecodeError::TrailingBytes { count: received - frame_len }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::frame::{RequestKind, encode_frame};

    fn frame_bytes(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        encode_frame(&mut dst, kind, |w| w.bytes("payload", payload)).unwrap();
        dst.to_vec()
    }

    /// Payload of the frames built by `frame_bytes`: the `u32` length prefix, then bytes.
    fn expected_payload(payload: &[u8]) -> Bytes {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(payload);
        Bytes::from(bytes)
    }

    #[test]
    fn bad_header_is_reported_before_the_payload_arrives() {
        let mut bytes = frame_bytes(FrameKind::Error, &[1; 100]);
        bytes[4] = 9;
        let mut decoder = FrameDecoder::new();
        assert_eq!(decoder.decode(&bytes[..11]), Ok(Decoded::Incomplete));
        assert_eq!(decoder.decode(&bytes[11..12]), Err(DecodeError::UnsupportedVersion { version: 9 }));
    }

    #[test]
    fn oversized_frame_is_rejected_from_its_header() {
        let bytes = frame_bytes(FrameKind::Request(RequestKind::Send), &[0; 60]);
        let mut decoder = FrameDecoder::with_max_payload_len(63);
        assert_eq!(decoder.decode(&bytes[..HEADER_LEN]), Err(DecodeError::FrameTooLarge { len: 64, max: 63 }));
        assert_eq!(decode_frame(Bytes::from(bytes.clone()), 63), Err(DecodeError::FrameTooLarge { len: 64, max: 63 }));
        let mut decoder = FrameDecoder::with_max_payload_len(64);
        assert!(matches!(decoder.decode(&bytes), Ok(Decoded::Frame(_))));
    }

    #[test]
    fn empty_stream_is_truncated() {
        let decoder = FrameDecoder::new();
        assert_eq!(decoder.finish(), Err(DecodeError::TruncatedFrame { received: 0, expected: HEADER_LEN }));
        assert_eq!(
            decode_frame(Bytes::new(), DEFAULT_MAX_PAYLOAD_LEN),
            Err(DecodeError::TruncatedFrame { received: 0, expected: HEADER_LEN })
        );
    }

    #[test]
    fn trailing_bytes_in_the_same_chunk_or_later() {
        let mut bytes = frame_bytes(FrameKind::Error, b"abc");
        let frame_len = bytes.len();
        bytes.push(0);
        assert_eq!(FrameDecoder::new().decode(&bytes), Err(DecodeError::TrailingBytes { count: 1 }));
        assert_eq!(
            decode_frame(Bytes::from(bytes.clone()), DEFAULT_MAX_PAYLOAD_LEN),
            Err(DecodeError::TrailingBytes { count: 1 })
        );

        let mut decoder = FrameDecoder::new();
        assert!(matches!(decoder.decode(&bytes[..frame_len]), Ok(Decoded::Frame(_))));
        assert_eq!(decoder.finish(), Ok(()));
        assert_eq!(decoder.decode(&[]), Ok(Decoded::Incomplete));
        assert_eq!(decoder.decode(&bytes[frame_len..]), Err(DecodeError::TrailingBytes { count: 1 }));
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_frame(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let bytes = frame_bytes(FrameKind::Response(RequestKind::Pull), &payload);
            let expected = Frame {
                kind: FrameKind::Response(RequestKind::Pull),
                payload: expected_payload(&payload),
            };
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len())).collect();
            cuts.push(bytes.len());
            cuts.sort_unstable();

            let mut decoder = FrameDecoder::new();
            let mut start = 0;
            let mut decoded = None;
            for cut in cuts {
                match decoder.decode(&bytes[start..cut]).unwrap() {
                    Decoded::Incomplete => prop_assert!(cut < bytes.len()),
                    Decoded::Frame(frame) => decoded = Some(frame),
                }
                start = cut;
            }
            prop_assert_eq!(decoded.as_ref(), Some(&expected));
            prop_assert_eq!(decoder.finish(), Ok(()));
            prop_assert_eq!(decoder.into_frame(), Ok(expected.clone()));
            let chunks = [&bytes[..bytes.len() / 2], &bytes[bytes.len() / 2..]];
            prop_assert_eq!(FrameDecoder::new().decode_all(chunks), Ok(expected.clone()));
            prop_assert_eq!(decode_frame(Bytes::from(bytes), DEFAULT_MAX_PAYLOAD_LEN), Ok(expected));
        }

        #[test]
        fn every_truncation_is_incomplete_then_truncated(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let bytes = frame_bytes(FrameKind::Request(RequestKind::Send), &payload);
            for len in 0..bytes.len() {
                let mut decoder = FrameDecoder::new();
                prop_assert_eq!(decoder.decode(&bytes[..len]), Ok(Decoded::Incomplete));
                let expected = if len < HEADER_LEN { HEADER_LEN } else { bytes.len() };
                let truncated = DecodeError::TruncatedFrame { received: len, expected };
                prop_assert_eq!(decoder.finish(), Err(truncated));
                prop_assert_eq!(decoder.into_frame(), Err(truncated));
                prop_assert_eq!(
                    decode_frame(Bytes::copy_from_slice(&bytes[..len]), DEFAULT_MAX_PAYLOAD_LEN),
                    Err(truncated)
                );
            }
        }
    }
}
