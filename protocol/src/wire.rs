//! Wire primitives every payload is built from.
//!
//! All integers are little-endian. Strings are UTF-8 behind a `u16` byte length, byte
//! fields (message bodies) sit behind a `u32` length, lists behind a `u32` item count, and
//! optional values behind a presence byte (`0` absent, `1` present).
//!
//! The [`Reader`] checks every length and count against the bytes that remain *before*
//! it allocates, so a bogus count costs nothing; message bodies are zero-copy slices of
//! the frame payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};

/// Longest string a `u16` length prefix can announce.
pub const MAX_STRING_LEN: usize = u16::MAX as usize;

/// A payload type with one fixed encoding.
pub(crate) trait Wire: Sized {
    /// Fewest bytes any value of this type encodes to. Counted lists of this type are
    /// rejected when `count * MIN_LEN` exceeds the remaining bytes.
    const MIN_LEN: usize;

    /// Appends the encoding of `self`.
    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;

    /// Reads one value, consuming exactly its encoding.
    fn decode(r: &mut Reader) -> Result<Self, DecodeError>;
}

/// The empty payload of requests and responses that carry nothing.
///
/// Format: no bytes.
impl Wire for () {
    const MIN_LEN: usize = 0;

    fn encode(&self, _: &mut Writer<'_>) -> Result<(), EncodeError> {
        Ok(())
    }

    fn decode(_: &mut Reader) -> Result<Self, DecodeError> {
        Ok(())
    }
}

/// Appends wire primitives to a buffer.
pub(crate) struct Writer<'a> {
    dst: &'a mut BytesMut,
}

impl<'a> Writer<'a> {
    /// Writes at the end of `dst`.
    pub(crate) fn new(dst: &'a mut BytesMut) -> Self {
        Writer { dst }
    }

    /// Format: `u8`.
    pub(crate) fn u8(&mut self, value: u8) {
        self.dst.put_u8(value);
    }

    /// Format: `u16` little-endian.
    pub(crate) fn u16(&mut self, value: u16) {
        self.dst.put_u16_le(value);
    }

    /// Format: `u32` little-endian.
    pub(crate) fn u32(&mut self, value: u32) {
        self.dst.put_u32_le(value);
    }

    /// Format: `u64` little-endian.
    pub(crate) fn u64(&mut self, value: u64) {
        self.dst.put_u64_le(value);
    }

    /// Format: `u8` 0 (false) or 1 (true).
    pub(crate) fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    /// Format: `u16` byte length, UTF-8 bytes.
    pub(crate) fn str(&mut self, field: &'static str, value: &str) -> Result<(), EncodeError> {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::TooLong {
            field,
            len: value.len(),
            max: MAX_STRING_LEN,
        })?;
        self.u16(len);
        self.dst.put_slice(value.as_bytes());
        Ok(())
    }

    /// Format: `u32` byte length, bytes.
    pub(crate) fn bytes(&mut self, field: &'static str, value: &[u8]) -> Result<(), EncodeError> {
        self.u32(len_u32(field, value.len())?);
        self.dst.put_slice(value);
        Ok(())
    }

    /// Format: presence byte, then the string when present.
    pub(crate) fn opt_str(&mut self, field: &'static str, value: Option<&str>) -> Result<(), EncodeError> {
        self.bool(value.is_some());
        match value {
            Some(value) => self.str(field, value),
            None => Ok(()),
        }
    }

    /// Format: presence byte, then `u32` when present.
    pub(crate) fn opt_u32(&mut self, value: Option<u32>) {
        self.bool(value.is_some());
        if let Some(value) = value {
            self.u32(value);
        }
    }

    /// Format: presence byte, then `u64` when present.
    pub(crate) fn opt_u64(&mut self, value: Option<u64>) {
        self.bool(value.is_some());
        if let Some(value) = value {
            self.u64(value);
        }
    }

    /// Format: presence byte, then the value when present.
    pub(crate) fn opt<T: Wire>(&mut self, value: Option<&T>) -> Result<(), EncodeError> {
        self.bool(value.is_some());
        match value {
            Some(value) => value.encode(self),
            None => Ok(()),
        }
    }

    /// Format: `u32` count, then each item.
    pub(crate) fn list<T: Wire>(&mut self, field: &'static str, items: &[T]) -> Result<(), EncodeError> {
        self.u32(len_u32(field, items.len())?);
        items.iter().try_for_each(|item| item.encode(self))
    }

    /// Format: `u32` count, then each `u32`.
    pub(crate) fn u32_list(&mut self, field: &'static str, items: &[u32]) -> Result<(), EncodeError> {
        self.u32(len_u32(field, items.len())?);
        items.iter().for_each(|&item| self.u32(item));
        Ok(())
    }

    /// Format: `u32` count, then each string.
    pub(crate) fn str_list(&mut self, field: &'static str, items: &[String]) -> Result<(), EncodeError> {
        self.str_iter(field, items.iter().map(String::as_str))
    }

    /// [`str_list`](Self::str_list) over borrowed strings (counted first, then written).
    pub(crate) fn str_iter<'s>(
        &mut self,
        field: &'static str,
        items: impl Iterator<Item = &'s str> + Clone,
    ) -> Result<(), EncodeError> {
        self.u32(len_u32(field, items.clone().count())?);
        items.into_iter().try_for_each(|item| self.str(field, item))
    }

    /// Format: `u32` count, then each pair as two strings (name, value), in order.
    pub(crate) fn properties(&mut self, field: &'static str, items: &[(String, String)]) -> Result<(), EncodeError> {
        self.properties_iter(field, items.iter().map(|(name, value)| (name.as_str(), value.as_str())))
    }

    /// [`properties`](Self::properties) over borrowed pairs (counted first, then written).
    pub(crate) fn properties_iter<'s>(
        &mut self,
        field: &'static str,
        items: impl Iterator<Item = (&'s str, &'s str)> + Clone,
    ) -> Result<(), EncodeError> {
        self.u32(len_u32(field, items.clone().count())?);
        items.into_iter().try_for_each(|(name, value)| {
            self.str(field, name)?;
            self.str(field, value)
        })
    }
}

fn len_u32(field: &'static str, len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLong { field, len, max: u32::MAX as usize })
}

/// Reads wire primitives from a frame payload, never past its end.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    /// Reads `payload` from its start.
    pub(crate) fn new(payload: Bytes) -> Self {
        Reader { buf: payload }
    }

    fn need(&self, field: &'static str, len: usize) -> Result<(), DecodeError> {
        if self.buf.remaining() < len { Err(DecodeError::Truncated { field }) } else { Ok(()) }
    }

    /// Reads a `u8`.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(field, 1)?;
        Ok(self.buf.get_u8())
    }

    /// Reads a little-endian `u16`.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(field, 2)?;
        Ok(self.buf.get_u16_le())
    }

    /// Reads a little-endian `u32`.
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(field, 4)?;
        Ok(self.buf.get_u32_le())
    }

    /// Reads a little-endian `u64`.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.buf.get_u64_le())
    }

    /// Reads a bool byte; anything but 0 or 1 is invalid.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidValue { field, value: value.into() }),
        }
    }

    /// Reads a `u16`-length UTF-8 string.
    pub(crate) fn str(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = usize::from(self.u16(field)?);
        self.need(field, len)?;
        let text = std::str::from_utf8(&self.buf[..len]).map_err(|_| DecodeError::InvalidUtf8 { field })?.to_owned();
        self.buf.advance(len);
        Ok(text)
    }

    /// Reads a `u32`-length byte field as a zero-copy slice of the payload.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(field)? as usize;
        self.need(field, len)?;
        Ok(self.buf.split_to(len))
    }

    /// Reads an optional string.
    pub(crate) fn opt_str(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        if self.bool(field)? { self.str(field).map(Some) } else { Ok(None) }
    }

    /// Reads an optional `u32`.
    pub(crate) fn opt_u32(&mut self, field: &'static str) -> Result<Option<u32>, DecodeError> {
        if self.bool(field)? { self.u32(field).map(Some) } else { Ok(None) }
    }

    /// Reads an optional `u64`.
    pub(crate) fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, DecodeError> {
        if self.bool(field)? { self.u64(field).map(Some) } else { Ok(None) }
    }

    /// Reads an optional value; `field` names the presence byte.
    pub(crate) fn opt<T: Wire>(&mut self, field: &'static str) -> Result<Option<T>, DecodeError> {
        if self.bool(field)? { T::decode(self).map(Some) } else { Ok(None) }
    }

    /// Reads a `u32` count of items at least `min_len` bytes each, rejecting counts the
    /// remaining bytes cannot hold.
    fn count(&mut self, field: &'static str, min_len: usize) -> Result<usize, DecodeError> {
        let count = self.u32(field)? as usize;
        if count > self.buf.remaining() / min_len.max(1) {
            return Err(DecodeError::Truncated { field });
        }
        Ok(count)
    }

    /// Reads a counted list of `T`.
    pub(crate) fn list<T: Wire>(&mut self, field: &'static str) -> Result<Vec<T>, DecodeError> {
        let count = self.count(field, T::MIN_LEN)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::decode(self)?);
        }
        Ok(items)
    }

    /// Reads a counted list of `u32`.
    pub(crate) fn u32_list(&mut self, field: &'static str) -> Result<Vec<u32>, DecodeError> {
        let count = self.count(field, 4)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.u32(field)?);
        }
        Ok(items)
    }

    /// Reads a counted list of strings.
    pub(crate) fn str_list(&mut self, field: &'static str) -> Result<Vec<String>, DecodeError> {
        let count = self.count(field, 2)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.str(field)?);
        }
        Ok(items)
    }

    /// Reads a counted list of (name, value) string pairs.
    pub(crate) fn properties(&mut self, field: &'static str) -> Result<Vec<(String, String)>, DecodeError> {
        let count = self.count(field, 4)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let name = self.str(field)?;
            let value = self.str(field)?;
            items.push((name, value));
        }
        Ok(items)
    }

    /// Ends decoding: every byte must have been consumed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.buf.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// Decodes a whole payload as one `T`, rejecting trailing bytes.
pub(crate) fn decode_exact<T: Wire>(payload: Bytes) -> Result<T, DecodeError> {
    let mut reader = Reader::new(payload);
    let value = T::decode(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

/// A string as a list element.
impl Wire for String {
    const MIN_LEN: usize = 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("string", self)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.str("string")
    }
}

impl Wire for u32 {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(*self);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        r.u32("u32")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader {
        Reader::new(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn integers_are_little_endian() {
        let mut buf = BytesMut::new();
        let mut w = Writer::new(&mut buf);
        w.u16(0x0102);
        w.u32(0x0304_0506);
        w.u64(0x0708_090a_0b0c_0d0e);
        assert_eq!(&buf[..], &[2, 1, 6, 5, 4, 3, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 9, 8, 7]);
    }

    #[test]
    fn string_layout_and_limit() {
        let mut buf = BytesMut::new();
        let mut w = Writer::new(&mut buf);
        w.str("topic", "ab").unwrap();
        assert_eq!(&buf[..], &[2, 0, b'a', b'b']);

        let long = "x".repeat(MAX_STRING_LEN + 1);
        let mut w = Writer::new(&mut buf);
        assert_eq!(
            w.str("topic", &long),
            Err(EncodeError::TooLong { field: "topic", len: MAX_STRING_LEN + 1, max: MAX_STRING_LEN })
        );
        let mut w = Writer::new(&mut buf);
        assert!(w.str("topic", &long[1..]).is_ok());
    }

    #[test]
    fn invalid_utf8_is_a_typed_error() {
        assert_eq!(reader(&[2, 0, 0xff, 0xfe]).str("tag"), Err(DecodeError::InvalidUtf8 { field: "tag" }));
    }

    #[test]
    fn bool_and_presence_bytes_are_strict() {
        assert_eq!(reader(&[2]).bool("flag"), Err(DecodeError::InvalidValue { field: "flag", value: 2 }));
        assert_eq!(
            reader(&[7, 0, 0, 0, 0]).opt_u32("queue_id"),
            Err(DecodeError::InvalidValue { field: "queue_id", value: 7 })
        );
        assert_eq!(reader(&[0]).opt_u64("offset"), Ok(None));
    }

    #[test]
    fn bogus_counts_are_rejected_before_allocating() {
        // Four billion keys announced, two bytes present: rejected without a huge Vec.
        assert_eq!(
            reader(&[0xff, 0xff, 0xff, 0xff, 0, 0]).str_list("keys"),
            Err(DecodeError::Truncated { field: "keys" })
        );
        // Exactly as many empty strings as the bytes can hold is fine.
        assert_eq!(reader(&[2, 0, 0, 0, 0, 0, 0, 0]).str_list("keys"), Ok(vec![String::new(), String::new()]));
        assert_eq!(
            reader(&[1, 0, 0, 0, 0, 0, 0]).properties("properties"),
            Err(DecodeError::Truncated { field: "properties" })
        );
    }

    #[test]
    fn u32_lists_and_optional_values() {
        let mut buf = BytesMut::new();
        let mut w = Writer::new(&mut buf);
        w.u32_list("queue_ids", &[1, 0x0203]).unwrap();
        w.opt(Some(&"ab".to_owned())).unwrap();
        w.opt::<String>(None).unwrap();
        assert_eq!(&buf[..], &[2, 0, 0, 0, 1, 0, 0, 0, 3, 2, 0, 0, 1, 2, 0, b'a', b'b', 0]);
        let mut r = Reader::new(buf.freeze());
        assert_eq!(r.u32_list("queue_ids"), Ok(vec![1, 0x0203]));
        assert_eq!(r.opt::<String>("name"), Ok(Some("ab".to_owned())));
        assert_eq!(r.opt::<String>("name"), Ok(None));
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(
            reader(&[2, 0, 0, 0, 1, 0, 0, 0]).u32_list("queue_ids"),
            Err(DecodeError::Truncated { field: "queue_ids" })
        );
        assert_eq!(reader(&[3]).opt::<String>("name"), Err(DecodeError::InvalidValue { field: "name", value: 3 }));
    }

    #[test]
    fn byte_lengths_past_the_end_are_truncation() {
        assert_eq!(reader(&[5, 0, 0, 0, 1, 2]).bytes("body"), Err(DecodeError::Truncated { field: "body" }));
        assert_eq!(reader(&[0xff, 0xff, 0xff]).u32("queue_id"), Err(DecodeError::Truncated { field: "queue_id" }));
    }

    #[test]
    fn finish_reports_trailing_bytes() {
        let mut r = reader(&[1, 2, 3]);
        r.u8("x").unwrap();
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes { count: 2 }));
    }
}
