//! Arbitrary bytes as one stream direction: the frame decoders and the request and
//! response decoders must return a value or a typed error, never panic; a decoded value
//! must re-encode to bytes that decode to the same value. The crate's
//! `arbitrary_bytes_never_panic` proptest checks the same property.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_protocol::bytes::{Bytes, BytesMut};
use weir_protocol::{
    DEFAULT_MAX_PAYLOAD_LEN, DecodeError, Frame, FrameDecoder, Request, Response, decode_frame,
};

/// Feeds `data` to a `FrameDecoder` in `chunk_len` pieces, as a stream would arrive.
fn decode_in_chunks(data: &[u8], chunk_len: usize) -> Result<Frame, DecodeError> {
    FrameDecoder::new().decode_all(data.chunks(chunk_len))
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks a chunk size, so the incremental decoder sees many splits.
    let chunk_len = usize::from(data.first().copied().unwrap_or(1).max(1));
    let incremental = decode_in_chunks(data, chunk_len);
    let whole = decode_frame(Bytes::copy_from_slice(data), DEFAULT_MAX_PAYLOAD_LEN);
    assert_eq!(incremental.as_ref().ok(), whole.as_ref().ok(), "incremental and whole-stream decoding disagree");
    let Ok(frame) = whole else { return };

    if let Ok(request) = Request::decode(frame.clone()) {
        let mut dst = BytesMut::new();
        request.encode(&mut dst).expect("a decoded request re-encodes");
        let again = decode_frame(dst.freeze(), u32::MAX).expect("a re-encoded request is one frame");
        assert_eq!(Request::decode(again), Ok(request));
    }
    if let Ok(response) = Response::decode(frame) {
        let mut dst = BytesMut::new();
        response.encode(&mut dst).expect("a decoded response re-encodes");
        let again = decode_frame(dst.freeze(), u32::MAX).expect("a re-encoded response is one frame");
        assert_eq!(Response::decode(again), Ok(response));
    }
});
