//! The CommitLog record format (version 1).
//!
//! Format: little-endian, one record per message, laid out back to back in
//! CommitLog segments:
//!
//! ```text
//! offset size field
//!      0    4 total_len         u32, whole record including this field
//!      4    4 magic             u32, RECORD_MAGIC_V1 (or BLANK_MAGIC, see below)
//!      8    4 crc               u32, CRC32C of bytes [12, total_len)
//!     12    4 flags             u32, see `flags`
//!     16    4 queue_id          u32
//!     20    8 queue_offset      u64, position in the ConsumeQueue
//!     28    8 commitlog_offset  u64, global offset of this record
//!     36    8 born_timestamp    i64, ms since epoch, set by the producer
//!     44    8 store_timestamp   i64, ms since epoch, set by the appender
//!     52   16 born_host ip      IPv6 (IPv4 as v4-mapped)
//!     68    2 born_host port    u16
//!     70    1 topic_len         u8, then topic bytes (UTF-8)
//!      .    2 tag_len           u16, then tag bytes (UTF-8, empty = no tag)
//!      .    2 keys_len          u16, then keys: repeated (u16 len, UTF-8)
//!      .    4 props_len         u32, then properties: repeated (u16 len, key, u16 len, value)
//!      .    4 body_len          u32, then body bytes
//! ```
//!
//! A segment that cannot hold the next record ends with a *blank*: an 8-byte
//! header (`total_len` = bytes to the end of the segment, `BLANK_MAGIC`).
//! Fewer than 8 bytes left are simply left zeroed. A `total_len` of zero marks
//! the end of written data.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::error::{DecodeError, InvalidMessage};

/// Magic of a version-1 message record.
pub const RECORD_MAGIC_V1: u32 = 0x5745_4931; // "WEI1"
/// Magic of the blank record that pads a segment's end.
pub const BLANK_MAGIC: u32 = 0x5745_49FF;
/// Bytes of the fixed part of a record, before the topic.
pub const FIXED_HEADER_LEN: usize = 71;
/// Bytes every record (and every blank) starts with: length and magic.
pub const MIN_HEADER_LEN: usize = 8;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 127;
/// Longest encoded keys or tag section, in bytes.
pub const MAX_KEYS_LEN: usize = u16::MAX as usize;
/// Longest encoded properties section, in bytes (RocketMQ's limit).
pub const MAX_PROPERTIES_LEN: usize = 32 * 1024;

/// Record flag bits. Bits not listed are reserved and must be zero.
pub mod flags {
    /// The body is compressed (reserved for producer-side compression).
    pub const COMPRESSED: u32 = 1 << 0;
    /// A prepared (half) transactional message, invisible to consumers.
    pub const TRANSACTION_PREPARED: u32 = 1 << 2;
    /// The commit record of a transaction.
    pub const TRANSACTION_COMMIT: u32 = 1 << 3;
    /// The rollback record of a transaction.
    pub const TRANSACTION_ROLLBACK: u32 = 1 << 4;
}

/// A message handed to the store for appending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name (`[A-Za-z0-9_%|-]`, at most 127 bytes).
    pub topic: String,
    /// Queue of the topic the message goes to.
    pub queue_id: u32,
    /// Tag, empty for none.
    pub tag: String,
    /// Business keys, indexed for lookup.
    pub keys: Vec<String>,
    /// User and system properties, in order.
    pub properties: Vec<(String, String)>,
    /// Opaque payload.
    pub body: bytes::Bytes,
    /// When the producer created the message, ms since the Unix epoch.
    pub born_timestamp_ms: i64,
    /// Address of the producer.
    pub born_host: SocketAddr,
    /// Flag bits, see [`flags`].
    pub flags: u32,
}

/// Values the appender assigns under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Position of the record in the ConsumeQueue.
    pub queue_offset: u64,
    /// Global offset of the record in the CommitLog.
    pub commitlog_offset: u64,
    /// When the store accepted the message, ms since the Unix epoch.
    pub store_timestamp_ms: i64,
}

/// Checks a topic name: non-empty, at most [`MAX_TOPIC_LEN`] bytes of `[A-Za-z0-9_%|-]`.
///
/// The name becomes a directory, so nothing else (no `/`, no `.`) is allowed.
pub fn validate_topic(topic: &str) -> Result<(), InvalidMessage> {
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'%' | b'|' | b'-');
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN || !topic.bytes().all(ok_char) {
        return Err(InvalidMessage::Topic(topic.chars().take(200).collect()));
    }
    Ok(())
}

fn keys_section_len(keys: &[String]) -> usize {
    keys.iter().map(|k| 2 + k.len()).sum()
}

fn properties_section_len(props: &[(String, String)]) -> usize {
    props.iter().map(|(k, v)| 4 + k.len() + v.len()).sum()
}

/// Validates `msg` against format limits and returns its encoded record length.
pub fn encoded_len(msg: &Message, max_body: usize) -> Result<usize, InvalidMessage> {
    validate_topic(&msg.topic)?;
    if msg.body.len() > max_body {
        return Err(InvalidMessage::TooLarge { size: msg.body.len(), max: max_body });
    }
    if msg.tag.len() > MAX_KEYS_LEN {
        return Err(InvalidMessage::TagTooLong(msg.tag.len()));
    }
    let keys_len = keys_section_len(&msg.keys);
    if keys_len > MAX_KEYS_LEN || msg.keys.iter().any(|k| k.is_empty()) {
        return Err(InvalidMessage::Keys);
    }
    let props_len = properties_section_len(&msg.properties);
    let oversized_field = msg.properties.iter().any(|(k, v)| k.is_empty() || k.len() > 0xFFFF || v.len() > 0xFFFF);
    if props_len > MAX_PROPERTIES_LEN || oversized_field {
        return Err(InvalidMessage::Properties(props_len));
    }
    if msg.flags & !KNOWN_FLAGS != 0 {
        return Err(InvalidMessage::Flags(msg.flags));
    }
    Ok(FIXED_HEADER_LEN + msg.topic.len() + 2 + msg.tag.len() + 2 + keys_len + 4 + props_len + 4 + msg.body.len())
}

const KNOWN_FLAGS: u32 =
    flags::COMPRESSED | flags::TRANSACTION_PREPARED | flags::TRANSACTION_COMMIT | flags::TRANSACTION_ROLLBACK;

/// A little-endian cursor writing into a pre-sized buffer.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_le_bytes());
    }
}

/// Encodes `msg` into `buf`, which must be exactly [`encoded_len`] bytes long.
///
/// Field lengths were checked by [`encoded_len`], so the narrowing casts below cannot truncate.
pub fn encode(buf: &mut [u8], msg: &Message, placement: Placement) {
    let total_len = buf.len();
    let mut w = Writer { buf, pos: 0 };
    w.u32(total_len as u32);
    w.u32(RECORD_MAGIC_V1);
    w.u32(0); // CRC, filled in last
    w.u32(msg.flags);
    w.u32(msg.queue_id);
    w.u64(placement.queue_offset);
    w.u64(placement.commitlog_offset);
    w.u64(msg.born_timestamp_ms as u64);
    w.u64(placement.store_timestamp_ms as u64);
    let ip = match msg.born_host.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    w.put(&ip.octets());
    w.u16(msg.born_host.port());
    w.put(&[msg.topic.len() as u8]);
    w.put(msg.topic.as_bytes());
    w.u16(msg.tag.len() as u16);
    w.put(msg.tag.as_bytes());
    w.u16(keys_section_len(&msg.keys) as u16);
    for key in &msg.keys {
        w.u16(key.len() as u16);
        w.put(key.as_bytes());
    }
    w.u32(properties_section_len(&msg.properties) as u32);
    for (k, v) in &msg.properties {
        w.u16(k.len() as u16);
        w.put(k.as_bytes());
        w.u16(v.len() as u16);
        w.put(v.as_bytes());
    }
    w.u32(msg.body.len() as u32);
    w.put(&msg.body);
    debug_assert_eq!(w.pos, total_len);
    let crc = crc32c::crc32c(&w.buf[12..]);
    w.buf[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Writes a blank record covering all of `buf` (at least [`MIN_HEADER_LEN`] bytes).
pub fn encode_blank(buf: &mut [u8]) {
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&BLANK_MAGIC.to_le_bytes());
}

/// What the bytes at a position of a segment hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Slot<'a> {
    /// A valid message record.
    Record(RecordView<'a>),
    /// Padding to the end of the segment: continue with the next segment.
    Blank,
    /// No more written data here (zeroes, or too few bytes left for a header).
    End,
}

/// How thoroughly to check a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Structure and CRC: for bytes read back from disk.
    Crc,
    /// Structure only: for bytes this process published and has not let go of.
    Structure,
}

/// Reads whatever starts at `buf[0]`, validating length, magic, structure and (per `check`) CRC.
///
/// `buf` runs to the end of the segment (or of written data).
pub fn read_slot(buf: &[u8], check: Check) -> Result<Slot<'_>, DecodeError> {
    if buf.len() < MIN_HEADER_LEN {
        return Ok(Slot::End);
    }
    let total_len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let magic = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    match (total_len, magic) {
        (0, 0) => Ok(Slot::End),
        (len, BLANK_MAGIC) if len == buf.len() => Ok(Slot::Blank),
        (_, BLANK_MAGIC) => Err(DecodeError::BadBlank),
        (_, RECORD_MAGIC_V1) if check == Check::Crc => RecordView::parse(buf).map(Slot::Record),
        (_, RECORD_MAGIC_V1) => RecordView::parse_verified(buf).map(Slot::Record),
        (_, other) => Err(DecodeError::BadMagic(other)),
    }
}

/// A validated, borrowed view of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    bytes: &'a [u8],
    topic: &'a str,
    tag: &'a str,
    keys: &'a [u8],
    properties: &'a [u8],
    body_start: usize,
}

/// Where a parsed record's variable fields lie within its bytes. A [`StoredRecord`](crate::StoredRecord)
/// keeps it next to its verified bytes, so a view is rebuilt without parsing the record again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    topic_end: u32,
    tag: (u32, u32),
    keys: (u32, u32),
    properties: (u32, u32),
    body_start: u32,
}

/// A little-endian cursor over a record, failing instead of reading past the end.
#[derive(Clone)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len()).ok_or(DecodeError::Truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn str(&mut self, n: usize) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError::Utf8)
    }
}

fn read_u64(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

/// Iterates a length-prefixed string list (keys) or pair list (properties).
fn strings(section: &[u8]) -> impl Iterator<Item = &str> + Clone {
    let mut reader = Reader { buf: section, pos: 0 };
    std::iter::from_fn(move || {
        // Sections were validated by `RecordView::parse`.
        let len = reader.u16().ok()? as usize;
        reader.str(len).ok()
    })
}

fn validate_strings(section: &[u8]) -> Result<usize, DecodeError> {
    let mut reader = Reader { buf: section, pos: 0 };
    let mut count = 0;
    while reader.pos < section.len() {
        let len = reader.u16()? as usize;
        reader.str(len)?;
        count += 1;
    }
    Ok(count)
}

impl<'a> RecordView<'a> {
    /// Parses the record at the start of `buf`, checking structure and CRC.
    pub fn parse(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let bytes = Self::frame(buf)?;
        if crc32c::crc32c(&bytes[12..]) != read_u32(bytes, 8) {
            return Err(DecodeError::Crc);
        }
        Self::parse_fields(bytes)
    }

    /// Parses a record whose CRC was already checked (bytes kept since).
    pub(crate) fn parse_verified(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::parse_fields(Self::frame(buf)?)
    }

    /// The record's bytes, after checking length and magic.
    fn frame(buf: &'a [u8]) -> Result<&'a [u8], DecodeError> {
        if buf.len() < FIXED_HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        let total_len = read_u32(buf, 0) as usize;
        if total_len < FIXED_HEADER_LEN || total_len > buf.len() {
            return Err(DecodeError::BadLength(total_len));
        }
        let magic = read_u32(buf, 4);
        if magic != RECORD_MAGIC_V1 {
            return Err(DecodeError::BadMagic(magic));
        }
        Ok(&buf[..total_len])
    }

    fn parse_fields(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if read_u32(bytes, 12) & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::Flags);
        }
        let mut r = Reader { buf: bytes, pos: FIXED_HEADER_LEN - 1 };
        let topic_len = r.u8()? as usize;
        let topic = r.str(topic_len)?;
        validate_topic(topic).map_err(|_| DecodeError::Invalid("topic"))?;
        let tag_len = r.u16()? as usize;
        let tag = r.str(tag_len)?;
        let keys_len = r.u16()? as usize;
        let keys = r.take(keys_len)?;
        validate_strings(keys)?;
        if strings(keys).any(str::is_empty) {
            return Err(DecodeError::Invalid("keys"));
        }
        let props_len = r.u32()? as usize;
        if props_len > MAX_PROPERTIES_LEN {
            return Err(DecodeError::Invalid("properties length"));
        }
        let properties = r.take(props_len)?;
        if validate_strings(properties)? % 2 != 0 || strings(properties).step_by(2).any(str::is_empty) {
            return Err(DecodeError::Invalid("properties"));
        }
        let body_len = r.u32()? as usize;
        let body_start = r.pos;
        r.take(body_len)?;
        if r.pos != bytes.len() {
            return Err(DecodeError::BadLength(bytes.len()));
        }
        Ok(Self { bytes, topic, tag, keys, properties, body_start })
    }

    /// Where this record's fields lie, to rebuild the view with [`with_layout`](Self::with_layout).
    pub(crate) fn layout(&self) -> Layout {
        let at = |field: &[u8]| (field.as_ptr() as usize - self.bytes.as_ptr() as usize) as u32;
        let span = |field: &[u8]| (at(field), at(field) + field.len() as u32);
        Layout {
            topic_end: span(self.topic.as_bytes()).1,
            tag: span(self.tag.as_bytes()),
            keys: span(self.keys),
            properties: span(self.properties),
            body_start: self.body_start as u32,
        }
    }

    /// The view of `bytes`, a record [`parse`](Self::parse)d before into `layout`: no
    /// field is checked again (the short topic and tag are only re-read as UTF-8).
    pub(crate) fn with_layout(bytes: &'a [u8], layout: &Layout) -> Self {
        let range = |(start, end): (u32, u32)| &bytes[start as usize..end as usize];
        let text = |field| std::str::from_utf8(field).expect("validated when the record was parsed");
        RecordView {
            bytes,
            topic: text(&bytes[FIXED_HEADER_LEN..layout.topic_end as usize]),
            tag: text(range(layout.tag)),
            keys: range(layout.keys),
            properties: range(layout.properties),
            body_start: layout.body_start as usize,
        }
    }

    /// The whole encoded record.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    /// Always false: a record has at least its fixed header.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Flag bits.
    pub fn flags(&self) -> u32 {
        read_u32(self.bytes, 12)
    }
    /// Queue id.
    pub fn queue_id(&self) -> u32 {
        read_u32(self.bytes, 16)
    }
    /// Position in the ConsumeQueue.
    pub fn queue_offset(&self) -> u64 {
        read_u64(self.bytes, 20)
    }
    /// Global CommitLog offset recorded when the record was written.
    pub fn commitlog_offset(&self) -> u64 {
        read_u64(self.bytes, 28)
    }
    /// Producer timestamp, ms since the epoch.
    pub fn born_timestamp_ms(&self) -> i64 {
        read_u64(self.bytes, 36) as i64
    }
    /// Store timestamp, ms since the epoch.
    pub fn store_timestamp_ms(&self) -> i64 {
        read_u64(self.bytes, 44) as i64
    }
    /// Producer address.
    pub fn born_host(&self) -> SocketAddr {
        let octets: [u8; 16] = self.bytes[52..68].try_into().expect("16 bytes");
        let v6 = Ipv6Addr::from(octets);
        let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
        SocketAddr::new(ip, u16::from_le_bytes([self.bytes[68], self.bytes[69]]))
    }
    /// Topic name.
    pub fn topic(&self) -> &'a str {
        self.topic
    }
    /// Tag, empty for none.
    pub fn tag(&self) -> &'a str {
        self.tag
    }
    /// Business keys.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> + Clone + use<'a> {
        strings(self.keys)
    }
    /// Properties as (name, value) pairs, in the producer's order.
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + Clone + use<'a> {
        let mut it = strings(self.properties);
        std::iter::from_fn(move || Some((it.next()?, it.next()?)))
    }
    /// Value of the property `name`, if present.
    pub fn property(&self, name: &str) -> Option<&'a str> {
        self.properties().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
    /// Byte range of the body within [`bytes`](Self::bytes).
    pub fn body_range(&self) -> std::ops::Range<usize> {
        self.body_start..self.bytes.len()
    }
    /// The body.
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.body_start..]
    }
    /// Rebuilds an owned [`Message`] (copies every field).
    pub fn to_message(&self) -> Message {
        Message {
            topic: self.topic.to_owned(),
            queue_id: self.queue_id(),
            tag: self.tag.to_owned(),
            keys: self.keys().map(str::to_owned).collect(),
            properties: self.properties().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
            body: bytes::Bytes::copy_from_slice(self.body()),
            born_timestamp_ms: self.born_timestamp_ms(),
            born_host: self.born_host(),
            flags: self.flags(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample(topic: &str, queue_id: u32, body: &[u8]) -> Message {
        Message {
            topic: topic.to_owned(),
            queue_id,
            tag: "TagA".to_owned(),
            keys: vec!["order-1".to_owned(), "user-7".to_owned()],
            properties: vec![("region".to_owned(), "SH".to_owned()), ("amount".to_owned(), "120".to_owned())],
            body: bytes::Bytes::copy_from_slice(body),
            born_timestamp_ms: 1_700_000_000_000,
            born_host: "10.0.0.7:5555".parse().expect("addr"),
            flags: 0,
        }
    }

    fn encode_vec(msg: &Message, placement: Placement) -> Vec<u8> {
        let mut buf = vec![0; encoded_len(msg, usize::MAX).expect("valid")];
        encode(&mut buf, msg, placement);
        buf
    }

    const PLACEMENT: Placement =
        Placement { queue_offset: 7, commitlog_offset: 4096, store_timestamp_ms: 1_700_000_000_123 };

    #[test]
    fn round_trips_every_field() {
        let msg = sample("orders", 3, b"hello");
        let buf = encode_vec(&msg, PLACEMENT);
        let view = RecordView::parse(&buf).expect("valid");
        assert_eq!(view.to_message(), msg);
        assert_eq!(view.queue_offset(), 7);
        assert_eq!(view.commitlog_offset(), 4096);
        assert_eq!(view.store_timestamp_ms(), 1_700_000_000_123);
        assert_eq!(view.property("region"), Some("SH"));
        assert_eq!(view.property("missing"), None);
        assert_eq!(view.body(), b"hello");
    }

    #[test]
    fn a_view_rebuilt_from_its_layout_reads_the_same_fields() {
        let empty = Message { keys: vec![], properties: vec![], tag: String::new(), ..sample("t", 1, b"") };
        for msg in [sample("orders", 3, b"hello"), empty] {
            let buf = encode_vec(&msg, PLACEMENT);
            let parsed = RecordView::parse(&buf).expect("valid");
            let rebuilt = RecordView::with_layout(&buf, &parsed.layout());
            assert_eq!(rebuilt.to_message(), msg);
            assert_eq!(rebuilt.body_range(), parsed.body_range());
        }
    }

    #[test]
    fn golden_bytes_of_fixed_header() {
        let msg = Message { keys: vec![], properties: vec![], tag: String::new(), ..sample("t", 1, b"") };
        let buf = encode_vec(&msg, PLACEMENT);
        assert_eq!(buf.len(), FIXED_HEADER_LEN + 1 + 2 + 2 + 4 + 4);
        assert_eq!(&buf[0..8], &[84, 0, 0, 0, 0x31, 0x49, 0x45, 0x57]);
        assert_eq!(&buf[16..28], &[1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&buf[62..71], &[0xff, 0xff, 10, 0, 0, 7, 0xb3, 0x15, 1]);
    }

    #[test]
    fn rejects_invalid_messages() {
        let big = sample("t", 0, &[0; 11]);
        assert!(matches!(encoded_len(&big, 10), Err(InvalidMessage::TooLarge { size: 11, max: 10 })));
        for topic in ["", "../etc", "a/b", "a.b", &"x".repeat(128)] {
            assert!(matches!(encoded_len(&sample(topic, 0, b""), 10), Err(InvalidMessage::Topic(_))), "{topic}");
        }
        let huge_props = Message { properties: vec![("k".into(), "v".repeat(40_000))], ..sample("t", 0, b"") };
        assert!(matches!(encoded_len(&huge_props, 10), Err(InvalidMessage::Properties(_))));
        let bad_flags = Message { flags: 1 << 30, ..sample("t", 0, b"") };
        assert!(matches!(encoded_len(&bad_flags, 10), Err(InvalidMessage::Flags(_))));
    }

    #[test]
    fn detects_every_single_byte_corruption() {
        let buf = encode_vec(&sample("orders", 1, b"payload"), PLACEMENT);
        for i in 0..buf.len() {
            let mut damaged = buf.clone();
            damaged[i] ^= 0x40;
            assert!(!matches!(read_slot(&damaged, Check::Crc), Ok(Slot::Record(_))), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn reads_blank_and_end() {
        let mut buf = vec![0u8; 32];
        assert_eq!(read_slot(&buf, Check::Crc), Ok(Slot::End));
        assert_eq!(read_slot(&buf[..7], Check::Crc), Ok(Slot::End));
        encode_blank(&mut buf);
        assert_eq!(read_slot(&buf, Check::Crc), Ok(Slot::Blank));
        assert_eq!(read_slot(&buf[..16], Check::Crc), Err(DecodeError::BadBlank));
    }

    pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
        let text = "[a-zA-Z0-9 _=é]{0,12}";
        (
            "[A-Za-z0-9_%|-]{1,20}",
            any::<u32>(),
            text,
            prop::collection::vec("[a-z0-9-]{1,10}", 0..4),
            prop::collection::vec(("[a-z]{1,8}", text), 0..6),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<i64>(),
            any::<SocketAddr>(),
            prop::sample::select(vec![0, flags::COMPRESSED, flags::TRANSACTION_PREPARED]),
        )
            .prop_map(|(topic, queue_id, tag, keys, properties, body, born, host, flags)| Message {
                topic,
                queue_id,
                tag,
                keys,
                properties,
                body: body.into(),
                born_timestamp_ms: born,
                born_host: host,
                flags,
            })
    }

    /// Makes the CRC field match, so random bytes get past the checksum to the field checks.
    pub(crate) fn patch_crc(bytes: &mut [u8]) {
        if bytes.len() >= 12 {
            let end = (read_u32(bytes, 0) as usize).clamp(12, bytes.len());
            let crc = crc32c::crc32c(&bytes[12..end]);
            bytes[8..12].copy_from_slice(&crc.to_le_bytes());
        }
    }

    #[test]
    fn structurally_valid_garbage_with_a_good_crc_is_checked_field_by_field() {
        let mut buf = encode_vec(&sample("orders", 1, b"x"), PLACEMENT);
        buf[71] = b'/'; // first topic byte
        patch_crc(&mut buf);
        assert_eq!(read_slot(&buf, Check::Crc), Err(DecodeError::Invalid("topic")));
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(msg in arb_message(), q in any::<u64>(), c in any::<u64>(), s in any::<i64>()) {
            let placement = Placement { queue_offset: q, commitlog_offset: c, store_timestamp_ms: s };
            let buf = encode_vec(&msg, placement);
            let view = RecordView::parse(&buf).expect("valid record");
            // IPv4-mapped IPv6 addresses come back as IPv4; compare canonical forms.
            let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
            let mut expected = msg.clone();
            expected.born_host = canonical(msg.born_host);
            prop_assert_eq!(view.to_message(), expected);
            prop_assert_eq!((view.queue_offset(), view.commitlog_offset(), view.store_timestamp_ms()), (q, c, s));
        }

        /// What the fuzz target checks: no panic, and anything accepted re-encodes identically.
        #[test]
        fn decoding_garbage_never_panics(mut bytes in prop::collection::vec(any::<u8>(), 0..400), fix_crc: bool) {
            if fix_crc {
                patch_crc(&mut bytes);
            }
            if let Ok(Slot::Record(view)) = read_slot(&bytes, Check::Crc) {
                let placement = Placement {
                    queue_offset: view.queue_offset(),
                    commitlog_offset: view.commitlog_offset(),
                    store_timestamp_ms: view.store_timestamp_ms(),
                };
                prop_assert_eq!(&encode_vec(&view.to_message(), placement)[..], view.bytes());
            }
        }
    }
}
