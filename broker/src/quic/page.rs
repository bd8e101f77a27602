//! A pull page's response frame, written message by message from the CommitLog
//! records (no intermediate messages), and the wire form of looked-up records.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use weir_protocol::{EncodeError, PullPageWriter, StoredMessage, StoredMessageRef};
use weir_storage::{MessageId, StoredRecord};

use crate::core::PullPage;

/// Bytes a message takes on the wire beyond its stored record, at most (ids and host as text).
pub const WIRE_OVERHEAD: usize = 256;

/// The pull response frame for `page`.
pub fn encode(page: PullPage, store_id: u32) -> Result<Bytes, EncodeError> {
    let mut messages = PullPageWriter::default();
    messages.reserve(page.records.iter().map(|record| record.bytes().len() + WIRE_OVERHEAD).sum());
    let mut text = MessageText::default();
    for record in &page.records {
        messages.push(&text.message(store_id, record))?;
    }
    messages.finish(super::convert::pull_status(page.status), page.next_offset, page.min_offset, page.max_offset)
}

/// A stored record as a wire message (lookups, which answer with a few owned messages).
pub fn stored_message(store_id: u32, record: &StoredRecord) -> StoredMessage {
    MessageText::default().message(store_id, record).to_stored()
}

/// The text fields a wire message has and a record does not (its id and born host),
/// in buffers reused from one message to the next. The born host is rewritten only when
/// it changes: a page's messages mostly come from a few producers.
#[derive(Default)]
struct MessageText {
    msg_id: String,
    born_host: String,
    born_host_addr: Option<SocketAddr>,
}

impl MessageText {
    /// `record` as a wire message borrowing the record and these buffers.
    fn message<'a>(
        &'a mut self,
        store_id: u32,
        record: &'a StoredRecord,
    ) -> StoredMessageRef<'a, impl Iterator<Item = &'a str> + Clone, impl Iterator<Item = (&'a str, &'a str)> + Clone>
    {
        let v = record.view();
        self.msg_id.clear();
        let id = MessageId { store_id, commitlog_offset: v.commitlog_offset() };
        write!(self.msg_id, "{id}").expect("writing to a String cannot fail");
        if self.born_host_addr != Some(v.born_host()) {
            write_host(&mut self.born_host, v.born_host());
            self.born_host_addr = Some(v.born_host());
        }
        StoredMessageRef {
            msg_id: &self.msg_id,
            topic: v.topic(),
            queue_id: v.queue_id(),
            queue_offset: v.queue_offset(),
            commitlog_offset: v.commitlog_offset(),
            born_timestamp_ms: u64::try_from(v.born_timestamp_ms()).unwrap_or(0),
            store_timestamp_ms: u64::try_from(v.store_timestamp_ms()).unwrap_or(0),
            born_host: &self.born_host,
            flags: v.flags(),
            // Only retry and dead-letter copies (in `%` topics) carry a redelivery count.
            reconsume_times: if v.topic().starts_with('%') { crate::retry::reconsume_times(&v) } else { 0 },
            tag: (!v.tag().is_empty()).then(|| v.tag()),
            keys: v.keys(),
            properties: v.properties(),
            body: &record.bytes()[v.body_range()],
        }
    }
}

/// Replaces `text` with `ip:port`. IPv4, the usual case, by hand: `SocketAddr`'s
/// `Display` cost as much as reading the message when every pulled message carries
/// its born host.
fn write_host(text: &mut String, addr: SocketAddr) {
    text.clear();
    let SocketAddr::V4(v4) = addr else {
        write!(text, "{addr}").expect("writing to a String cannot fail");
        return;
    };
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        push_decimal(text, octet.into());
    }
    text.push(':');
    push_decimal(text, v4.port().into());
}

fn push_decimal(text: &mut String, mut n: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    text.push_str(std::str::from_utf8(&digits[start..]).expect("decimal digits are ASCII"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_text_matches_display() {
        let mut text = "left over".to_owned();
        for addr in ["0.0.0.0:0", "127.0.0.1:7420", "10.20.255.9:65535", "[::1]:7420", "[fe80::1:2]:9"] {
            let addr: SocketAddr = addr.parse().expect("an address");
            write_host(&mut text, addr);
            assert_eq!(text, addr.to_string());
        }
    }
}
