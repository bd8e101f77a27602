//! Pull requests: resolve the subscription, fill a page through the filters'
//! [`ReadPath`], hold the request (long polling) while nothing new matches, and
//! encode the page straight from the CommitLog records.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use weir_filters::{Expression, PageLimits, ReadPath, Subscription, TrafficRole};
use weir_protocol::{
    EncodeError, ErrorCode, ErrorResponse, FilterExpression, PullPageWriter, PullRequest, PullStatus, StoredMessage,
    StoredMessageRef,
};
use weir_storage::{MessageId, ReadError, StoredRecord};

use crate::groups::Registered;
use crate::handler::{Context, Outcome, error, expression_of, group_error, invalid_filter, read_error, readable_queue};

/// ConsumeQueue entries one filtered read looks at.
const FILTER_SCAN_ENTRIES: usize = 4096;
/// Most entries one page scans while filling itself (bounds the time a pull holds a worker).
const PAGE_SCAN_ENTRIES: u64 = 64 * 1024;
/// Entries one pull may scan without a match before answering with the next offset.
const MAX_SCAN_PER_PULL: u64 = 256 * 1024;
/// Bytes a message takes on the wire beyond its stored record, at most (ids and host as text).
const WIRE_OVERHEAD: usize = 256;

/// Answers a pull with its response frame, encoded here rather than through
/// `Response::encode`: a page is written message by message from the records.
pub(crate) async fn pull(ctx: &Arc<Context>, req: PullRequest) -> Outcome<Bytes> {
    readable_queue(ctx, &req.topic, req.queue_id)?;
    let registered = resolve_subscription(ctx, &req)?;
    let max = req.max_messages.clamp(1, ctx.config.max_pull_messages) as usize;
    let wait = Duration::from_millis(req.max_wait_ms.min(ctx.config.max_pull_wait_ms).into());
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutting_down = ctx.shutting_down.clone();
    let mut offset = req.offset;
    let mut scanned = 0;
    loop {
        let notify = ctx.arrivals.watch(&req.topic, req.queue_id);
        let arrived = notify.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        let page = if registered.plugin.is_some() {
            // Plugin calls block for up to their CPU budget: keep them off the async workers.
            let (ctx, topic, queue_id, registered) = (ctx.clone(), req.topic.clone(), req.queue_id, registered.clone());
            tokio::task::spawn_blocking(move || read_page(&ctx, &topic, queue_id, offset, max, &registered))
                .await
                .map_err(|err| error(ErrorCode::Internal, format!("pull task failed: {err}")))??
        } else {
            read_page(ctx, &req.topic, req.queue_id, offset, max, &registered)?
        };
        scanned += page.next_offset.saturating_sub(offset);
        let out_of_time = tokio::time::Instant::now() >= deadline || *shutting_down.borrow();
        match page.status {
            // Nothing matched in this stretch: scan on while there is time, then
            // answer with the next offset so the consumer never re-reads the stretch.
            PullStatus::NoMatchedMessage if !out_of_time && scanned < MAX_SCAN_PER_PULL => {
                offset = page.next_offset;
                tokio::task::yield_now().await;
            }
            // Held: only a message that passes the filter answers the pull.
            PullStatus::NoNewMessage if !out_of_time => {
                tokio::select! {
                    _ = &mut arrived => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = shutting_down.changed() => {}
                }
                // Deleted while held: the consumer learns it now.
                readable_queue(ctx, &req.topic, req.queue_id)?;
            }
            PullStatus::NoNewMessage if offset != req.offset => {
                // Skipped to the end without a match: report how far the scan got.
                return Page { status: PullStatus::NoMatchedMessage, ..page }.frame();
            }
            _ => return page.frame(),
        }
    }
}

/// The subscription a pull filters with: the group's registered one, or the
/// pull's own expression, registered for the group (an ad-hoc one without a group).
fn resolve_subscription(ctx: &Context, req: &PullRequest) -> Outcome<Registered> {
    let expression = match &req.filter {
        FilterExpression::Subscribed => {
            return ctx.groups.subscription(&req.consumer_group, &req.topic).ok_or_else(|| {
                error(
                    ErrorCode::SubscriptionNotFound,
                    format!("group {} has no subscription to {}; subscribe first", req.consumer_group, req.topic),
                )
            });
        }
        filter => expression_of(filter)?,
    };
    if req.consumer_group.is_empty() {
        let subscription =
            Subscription::compile(expression, TrafficRole::Production, &ctx.index_shape).map_err(invalid_filter)?;
        return Ok(Registered {
            subscription: Arc::new(subscription),
            version: 0,
            stats: Arc::default(),
            plugin: None,
        });
    }
    // The same expression as the registered subscription keeps it (and its plugin).
    if let Some(registered) = ctx.groups.subscription(&req.consumer_group, &req.topic)
        && *registered.subscription.expression() == expression
    {
        return Ok(registered);
    }
    ctx.groups.subscribe(&req.consumer_group, &req.topic, expression, None).map_err(group_error)
}

/// One page of a queue: where the scan got to and the messages, already encoded.
struct Page {
    status: PullStatus,
    next_offset: u64,
    min_offset: u64,
    max_offset: u64,
    messages: PullPageWriter,
}

impl Page {
    /// The response frame.
    fn frame(self) -> Outcome<Bytes> {
        self.messages.finish(self.status, self.next_offset, self.min_offset, self.max_offset).map_err(encode_error)
    }
}

fn encode_error(err: EncodeError) -> ErrorResponse {
    error(ErrorCode::Internal, format!("response cannot be encoded: {err}"))
}

/// One page of a queue, filtered and capped so the response fits in a frame.
fn read_page(
    ctx: &Context,
    topic: &str,
    queue_id: u32,
    offset: u64,
    max: usize,
    registered: &Registered,
) -> Outcome<Page> {
    let (min_offset, max_offset) = ctx.store.queue_offsets(topic, queue_id);
    let empty =
        |status, next_offset| Page { status, next_offset, min_offset, max_offset, messages: Default::default() };
    if offset < min_offset {
        return Ok(empty(PullStatus::OffsetMoved, min_offset));
    }
    if offset > max_offset {
        return Ok(empty(PullStatus::OffsetIllegal, max_offset));
    }
    if offset == max_offset {
        return Ok(empty(PullStatus::NoNewMessage, offset));
    }
    let sub = &registered.subscription;
    // A subscription to everything skips only shadow traffic: read little ahead.
    let chunk = if *sub.expression() == Expression::All { max.saturating_mul(2) } else { FILTER_SCAN_ENTRIES.max(max) };
    let blooms = ctx.blooms.as_ref().and_then(|index| index.queue(topic, queue_id));
    let mut bytes_left = (weir_protocol::DEFAULT_MAX_PAYLOAD_LEN as usize - 64).saturating_sub(max * WIRE_OVERHEAD);
    let mut page = empty(PullStatus::Found, offset);
    let mut text = MessageText::default();
    let mut reader = ctx.store.entry_reader();
    // Fill the page from as many chunks as it takes, within a scan budget.
    while page.next_offset < max_offset && page.messages.len() < max && page.next_offset - offset < PAGE_SCAN_ENTRIES {
        let entries = match ctx.store.queue_entries(topic, queue_id, page.next_offset, chunk) {
            Ok(entries) => entries,
            Err(err) if page.messages.is_empty() => return Err(read_error(err)),
            Err(_) => break, // deliver what was read; the next pull reports the failure
        };
        let path = ReadPath {
            subscription: sub,
            stats: &registered.stats,
            blooms: blooms.as_deref(),
            prefilter: ctx.config.prefilter,
            shadow_property: &ctx.config.shadow_property,
            limits: PageLimits { max_messages: max - page.messages.len(), max_bytes: bytes_left },
        };
        let end = (page.next_offset + chunk as u64).min(max_offset);
        let result = path.run(page.next_offset, end, &entries, |entry| match reader.read(entry) {
            Ok(record) => Ok(Some(record)),
            // Retention removed the segment under us: skip, as RocketMQ does.
            Err(ReadError::OffsetOutOfRange(_)) => Ok(None),
            Err(err) => Err(err),
        });
        let filtered = match result {
            Ok(filtered) => filtered,
            Err(err) if page.messages.is_empty() => return Err(read_error(err)),
            // Deliver what was read; the next pull reports the failure.
            Err(_) => break,
        };
        let full = filtered.next_offset < end;
        page.next_offset = filtered.next_offset.min(max_offset);
        // A message's wire form is its record plus the id and born host as text.
        page.messages.reserve(filtered.records.iter().map(|record| record.bytes().len() + WIRE_OVERHEAD).sum());
        for record in &filtered.records {
            bytes_left = bytes_left.saturating_sub(record.bytes().len());
            page.messages.push(&text.message(ctx, record)).map_err(encode_error)?;
        }
        if full {
            break;
        }
    }
    if page.messages.is_empty() {
        page.status = PullStatus::NoMatchedMessage;
    }
    Ok(page)
}

/// A stored record as a wire message (lookups, which answer with a few owned messages).
pub(crate) fn stored_message(ctx: &Context, record: &StoredRecord) -> StoredMessage {
    MessageText::default().message(ctx, record).to_stored()
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
        ctx: &Context,
        record: &'a StoredRecord,
    ) -> StoredMessageRef<'a, impl Iterator<Item = &'a str> + Clone, impl Iterator<Item = (&'a str, &'a str)> + Clone>
    {
        let v = record.view();
        self.msg_id.clear();
        let id = MessageId { store_id: ctx.store.store_id(), commitlog_offset: v.commitlog_offset() };
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
            reconsume_times: 0,
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
