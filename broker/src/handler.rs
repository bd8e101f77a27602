//! Request handlers: one decoded [`Request`] in, one [`Response`] out.
//!
//! Handlers translate between wire types and the storage engine's types and
//! map every failure to a typed error response; nothing here panics on input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use weir_filters::{
    BloomIndex, Expression, IndexShape, PageLimits, ReadPath, Subscription, SubscriptionError, TrafficRole,
};
use weir_protocol::{
    BrokerStatus, CommitOffsetRequest, Delivery, ErrorCode, ErrorResponse, FetchOffsetRequest, FetchOffsetResponse,
    FilterCounters, FilterExpression, GroupConfig, GroupStatsRequest, GroupStatsResponse, MessageQuery,
    OffsetByTimestampRequest, OffsetByTimestampResponse, PullRequest, PullResponse, PullStatus, QueryMessageResponse,
    QueueOffsetsRequest, QueueOffsetsResponse, Request, Response, SendRequest, SendResponse, SendResult, SendStatus,
    StoredMessage, SubscribeRequest, SubscribeResponse, SubscriptionStats,
};
use weir_storage::{AppendError, AppendStatus, InvalidMessage, ReadError, Store, StoredRecord};

use crate::config::{BrokerConfig, FlushKind};
use crate::groups::{GroupError, Groups, PluginUse, Registered};
use crate::long_poll::ArrivalNotifier;
use crate::offsets::ConsumerOffsets;
use crate::topics::{Topic, TopicTable};

/// Everything handlers share.
#[derive(Debug)]
pub struct Context {
    /// The configuration the broker started with.
    pub config: BrokerConfig,
    /// The storage engine.
    pub store: Arc<Store>,
    /// Topic metadata.
    pub topics: TopicTable,
    /// Consumer offsets.
    pub offsets: ConsumerOffsets,
    /// Consumer groups and their subscriptions.
    pub groups: Groups,
    /// The bloom index the pull path reads (none when disabled).
    pub blooms: Option<Arc<BloomIndex>>,
    /// The shape subscriptions are compiled for.
    pub index_shape: IndexShape,
    /// The WebAssembly plugins.
    pub plugins: weir_plugins::Registry,
    /// Wake-ups for held pulls.
    pub arrivals: Arc<ArrivalNotifier>,
    /// When the broker started.
    pub started: Instant,
    /// Open client connections.
    pub connections: AtomicU32,
    /// Set when the broker is shutting down: held pulls return at once.
    pub shutting_down: tokio::sync::watch::Receiver<bool>,
}

/// A handler's result: the response value, or the error frame to send.
pub(crate) type Outcome<T> = Result<T, ErrorResponse>;

/// An error response.
pub(crate) fn error(code: ErrorCode, message: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(code, message)
}

/// Answers one request.
pub async fn handle(ctx: &Arc<Context>, request: Request, peer: SocketAddr) -> Response {
    let outcome = match request {
        Request::CreateTopic(config) => ctx.topics.create(&config).map(Response::CreateTopic),
        Request::UpdateTopic(config) => ctx.topics.update(&config).map(Response::UpdateTopic),
        Request::DeleteTopic(req) => ctx.topics.delete(&req.topic).map(|()| Response::DeleteTopic),
        Request::ListTopics(req) => {
            Ok(Response::ListTopics(weir_protocol::ListTopicsResponse { topics: ctx.topics.list(req.include_system) }))
        }
        Request::Send(req) => send(ctx, req, peer).await.map(Response::Send),
        Request::Pull(req) => pull(ctx, req).await.map(Response::Pull),
        Request::QueryMessage(query) => query_message(ctx, query).map(Response::QueryMessage),
        Request::QueueOffsets(req) => queue_offsets(ctx, &req).map(Response::QueueOffsets),
        Request::OffsetByTimestamp(req) => offset_by_timestamp(ctx, &req).map(Response::OffsetByTimestamp),
        Request::CommitOffset(req) => commit_offset(ctx, &req).map(|()| Response::CommitOffset),
        Request::FetchOffset(req) => Ok(Response::FetchOffset(fetch_offset(ctx, &req))),
        Request::Status => Ok(Response::Status(status(ctx))),
        Request::CreateGroup(group) => create_group(ctx, group).map(Response::CreateGroup),
        Request::Subscribe(req) => subscribe(ctx, req).await.map(Response::Subscribe),
        Request::GroupStats(req) => Ok(Response::GroupStats(group_stats(ctx, &req))),
        Request::PluginUpload(req) => crate::plugins::upload(ctx, req).await.map(Response::PluginUpload),
        Request::PluginList => Ok(Response::PluginList(crate::plugins::list(ctx))),
        Request::PluginRemove(req) => crate::plugins::remove(ctx, req).await.map(|()| Response::PluginRemove),
        Request::PluginEnable(req) => crate::plugins::enable(ctx, req).await.map(Response::PluginEnable),
    };
    outcome.unwrap_or_else(Response::Error)
}

fn existing_topic(ctx: &Context, name: &str) -> Outcome<Topic> {
    ctx.topics.get(name).ok_or_else(|| error(ErrorCode::UnknownTopic, format!("no topic {name}")))
}

fn readable_queue(ctx: &Context, topic: &str, queue_id: u32) -> Outcome<()> {
    let t = existing_topic(ctx, topic)?;
    if !t.readable {
        return Err(error(ErrorCode::BadRequest, format!("topic {topic} is not readable")));
    }
    if queue_id >= t.read_queues {
        return Err(error(
            ErrorCode::BadRequest,
            format!("topic {topic} has {} read queues; no queue {queue_id}", t.read_queues),
        ));
    }
    Ok(())
}

async fn send(ctx: &Arc<Context>, req: SendRequest, peer: SocketAddr) -> Outcome<SendResponse> {
    if req.messages.is_empty() {
        return Err(error(ErrorCode::BadRequest, "empty send batch"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in req.messages {
        let topic = existing_topic(ctx, &m.topic)?;
        if !topic.writable {
            return Err(error(ErrorCode::BadRequest, format!("topic {} is not writable", m.topic)));
        }
        let queue_id = match m.queue_id {
            Some(q) if q < topic.write_queues => q,
            Some(q) => {
                return Err(error(
                    ErrorCode::BadRequest,
                    format!("topic {} has {} write queues; no queue {q}", m.topic, topic.write_queues),
                ));
            }
            None => ctx.topics.pick_queue(&topic),
        };
        if m.delivery != Delivery::Immediate {
            return Err(error(ErrorCode::BadRequest, "delayed delivery is not supported by this broker yet"));
        }
        messages.push(weir_storage::Message {
            topic: m.topic,
            queue_id,
            tag: m.tag.unwrap_or_default(),
            keys: m.keys,
            properties: m.properties,
            body: m.body,
            born_timestamp_ms: i64::try_from(m.born_timestamp_ms).unwrap_or(i64::MAX),
            born_host: peer,
            flags: m.flags,
        });
    }
    let appended = match ctx.config.flush {
        // A page-cache append takes microseconds: do it on this task.
        FlushKind::Async => ctx.store.append_batch(&messages),
        // A sync append waits for its fsync: keep it off the async workers.
        FlushKind::Sync => {
            let store = ctx.store.clone();
            tokio::task::spawn_blocking(move || store.append_batch(&messages))
                .await
                .map_err(|err| error(ErrorCode::Internal, format!("append task failed: {err}")))?
        }
    };
    let results = appended.map_err(append_error)?;
    Ok(SendResponse {
        results: results
            .into_iter()
            .map(|r| SendResult {
                msg_id: r.msg_id.to_string(),
                queue_id: r.queue_id,
                queue_offset: r.queue_offset,
                status: match r.status {
                    AppendStatus::SendOk => SendStatus::SendOk,
                    AppendStatus::FlushDiskTimeout => SendStatus::FlushDiskTimeout,
                },
            })
            .collect(),
    })
}

fn append_error(err: AppendError) -> ErrorResponse {
    let code = match &err {
        AppendError::Invalid(InvalidMessage::TooLarge { .. }) => ErrorCode::MessageTooLarge,
        AppendError::Invalid(_) => ErrorCode::BadRequest,
        AppendError::DiskFull { .. } => ErrorCode::DiskFull,
        AppendError::Failed(_) | AppendError::Closed => ErrorCode::StoreUnavailable,
        _ => ErrorCode::Internal,
    };
    error(code, err.to_string())
}

async fn pull(ctx: &Arc<Context>, req: PullRequest) -> Outcome<PullResponse> {
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
            }
            PullStatus::NoNewMessage if offset != req.offset => {
                // Skipped to the end without a match: report how far the scan got.
                return Ok(PullResponse { status: PullStatus::NoMatchedMessage, ..page });
            }
            _ => return Ok(page),
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

fn expression_of(filter: &FilterExpression) -> Outcome<Expression> {
    match filter {
        FilterExpression::All => Ok(Expression::All),
        FilterExpression::Tag(tags) => Ok(Expression::Tag(tags.clone())),
        FilterExpression::Sql(sql) => Ok(Expression::Sql(sql.clone())),
        FilterExpression::Subscribed => Err(error(ErrorCode::BadRequest, "a subscription needs an expression")),
    }
}

fn invalid_filter(err: SubscriptionError) -> ErrorResponse {
    error(ErrorCode::InvalidFilter, err.to_string())
}

fn group_error(err: GroupError) -> ErrorResponse {
    match err {
        GroupError::Invalid(err) => invalid_filter(err),
        GroupError::Io(err) => error(ErrorCode::Internal, format!("cannot persist consumer groups: {err}")),
    }
}

fn create_group(ctx: &Context, group: GroupConfig) -> Outcome<GroupConfig> {
    if group.name.is_empty() {
        return Err(error(ErrorCode::BadRequest, "consumer group must not be empty"));
    }
    let shadow = ctx.groups.set_shadow(&group.name, group.shadow).map_err(group_error)?;
    Ok(GroupConfig { name: group.name, shadow })
}

async fn subscribe(ctx: &Arc<Context>, req: SubscribeRequest) -> Outcome<SubscribeResponse> {
    existing_topic(ctx, &req.topic)?;
    if req.consumer_group.is_empty() {
        return Err(error(ErrorCode::BadRequest, "consumer group must not be empty"));
    }
    let expression = expression_of(&req.filter)?;
    let plugin = match req.plugin {
        Some(name) => {
            let filter = crate::plugins::filter(ctx, name.clone(), req.plugin_params.clone()).await?;
            Some(PluginUse { name, params: req.plugin_params, filter })
        }
        None => None,
    };
    let registered = ctx.groups.subscribe(&req.consumer_group, &req.topic, expression, plugin).map_err(group_error)?;
    Ok(SubscribeResponse { version: registered.version })
}

fn subscription_stats(ctx: &Context, group: Option<&str>) -> Vec<SubscriptionStats> {
    ctx.groups
        .all(group)
        .into_iter()
        .map(|(consumer_group, topic, registered)| {
            let c = registered.stats.snapshot();
            SubscriptionStats {
                shadow: registered.subscription.role() == TrafficRole::Shadow,
                consumer_group,
                topic,
                expression: registered.subscription.expression().to_string(),
                version: registered.version,
                counters: FilterCounters {
                    examined: c.examined,
                    skipped_by_tag: c.skipped_by_tag,
                    skipped_by_bloom: c.skipped_by_bloom,
                    skipped_by_block: c.skipped_by_block,
                    skipped_shadow: c.skipped_shadow,
                    body_reads: c.body_reads,
                    evaluated_sql: c.evaluated_sql,
                    sql_false: c.sql_false,
                    sql_errors: c.sql_errors,
                    plugin_rejected: c.plugin_rejected,
                    plugin_errors: c.plugin_errors,
                    delivered: c.delivered,
                },
            }
        })
        .collect()
}

fn group_stats(ctx: &Context, req: &GroupStatsRequest) -> GroupStatsResponse {
    let mut subscriptions = subscription_stats(ctx, Some(&req.consumer_group));
    subscriptions.retain(|s| req.topic.as_ref().is_none_or(|t| *t == s.topic));
    GroupStatsResponse { subscriptions }
}

/// ConsumeQueue entries one filtered read looks at.
const FILTER_SCAN_ENTRIES: usize = 4096;
/// Most entries one page scans while filling itself (bounds the time a pull holds a worker).
const PAGE_SCAN_ENTRIES: u64 = 64 * 1024;
/// Entries one pull may scan without a match before answering with the next offset.
const MAX_SCAN_PER_PULL: u64 = 256 * 1024;

/// One page of a queue, filtered and capped so the response fits in a frame.
fn read_page(
    ctx: &Context,
    topic: &str,
    queue_id: u32,
    offset: u64,
    max: usize,
    registered: &Registered,
) -> Outcome<PullResponse> {
    let (min_offset, max_offset) = ctx.store.queue_offsets(topic, queue_id);
    let page =
        |status, next_offset, messages| Ok(PullResponse { status, next_offset, min_offset, max_offset, messages });
    if offset < min_offset {
        return page(PullStatus::OffsetMoved, min_offset, Vec::new());
    }
    if offset > max_offset {
        return page(PullStatus::OffsetIllegal, max_offset, Vec::new());
    }
    if offset == max_offset {
        return page(PullStatus::NoNewMessage, offset, Vec::new());
    }
    let sub = &registered.subscription;
    // A subscription to everything skips only shadow traffic: read little ahead.
    let chunk = if *sub.expression() == Expression::All { max.saturating_mul(2) } else { FILTER_SCAN_ENTRIES.max(max) };
    let blooms = ctx.blooms.as_ref().and_then(|index| index.queue(topic, queue_id));
    let mut bytes_left = (weir_protocol::DEFAULT_MAX_PAYLOAD_LEN as usize - 64).saturating_sub(max * WIRE_OVERHEAD);
    let mut messages = Vec::new();
    let mut next_offset = offset;
    // Fill the page from as many chunks as it takes, within a scan budget.
    while next_offset < max_offset && messages.len() < max && next_offset - offset < PAGE_SCAN_ENTRIES {
        let entries = ctx.store.queue_entries(topic, queue_id, next_offset, chunk);
        let path = ReadPath {
            subscription: sub,
            stats: &registered.stats,
            blooms: blooms.as_deref(),
            prefilter: ctx.config.prefilter,
            shadow_property: &ctx.config.shadow_property,
            limits: PageLimits { max_messages: max - messages.len(), max_bytes: bytes_left },
        };
        let end = (next_offset + chunk as u64).min(max_offset);
        let result = path.run(next_offset, end, &entries, |entry| match ctx.store.read_entry(entry) {
            Ok(record) => Ok(Some(record)),
            // Retention removed the segment under us: skip, as RocketMQ does.
            Err(ReadError::OffsetOutOfRange(_)) => Ok(None),
            Err(err) => Err(err),
        });
        let filtered = match result {
            Ok(filtered) => filtered,
            Err(err) if messages.is_empty() => return Err(read_error(err)),
            // Deliver what was read; the next pull reports the failure.
            Err(_) => break,
        };
        let full = filtered.next_offset < end;
        next_offset = filtered.next_offset.min(max_offset);
        for record in &filtered.records {
            bytes_left = bytes_left.saturating_sub(record.bytes().len());
            messages.push(to_wire(ctx, record));
        }
        if full {
            break;
        }
    }
    let status = if messages.is_empty() { PullStatus::NoMatchedMessage } else { PullStatus::Found };
    page(status, next_offset, messages)
}

/// Bytes a message takes on the wire beyond its stored record, at most (ids and host as text).
const WIRE_OVERHEAD: usize = 256;

fn read_error(err: ReadError) -> ErrorResponse {
    let code = match err {
        ReadError::Corrupt { .. } => ErrorCode::StoreUnavailable,
        ReadError::BadMessageId(_) => ErrorCode::BadRequest,
        _ => ErrorCode::NotFound,
    };
    error(code, err.to_string())
}

/// A stored record as a wire message.
fn to_wire(ctx: &Context, record: &StoredRecord) -> StoredMessage {
    let v = record.view();
    StoredMessage {
        msg_id: weir_storage::MessageId { store_id: ctx.store.store_id(), commitlog_offset: v.commitlog_offset() }
            .to_string(),
        topic: v.topic().to_owned(),
        queue_id: v.queue_id(),
        queue_offset: v.queue_offset(),
        commitlog_offset: v.commitlog_offset(),
        born_timestamp_ms: u64::try_from(v.born_timestamp_ms()).unwrap_or(0),
        store_timestamp_ms: u64::try_from(v.store_timestamp_ms()).unwrap_or(0),
        born_host: host_text(v.born_host()),
        flags: v.flags(),
        reconsume_times: 0,
        tag: (!v.tag().is_empty()).then(|| v.tag().to_owned()),
        keys: v.keys().map(str::to_owned).collect(),
        properties: v.properties().map(|(k, val)| (k.to_owned(), val.to_owned())).collect(),
        body: record.bytes().slice(v.body_range()),
    }
}

/// `ip:port` as text. IPv4, the usual case, by hand: `SocketAddr`'s `Display` cost as
/// much as reading the message when every pulled message carries its born host.
fn host_text(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else { return addr.to_string() };
    let mut text = String::with_capacity(21);
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        push_decimal(&mut text, octet.into());
    }
    text.push(':');
    push_decimal(&mut text, v4.port().into());
    text
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

fn query_message(ctx: &Context, query: MessageQuery) -> Outcome<QueryMessageResponse> {
    let records = match query {
        MessageQuery::ById { msg_id } => vec![ctx.store.message_by_id(&msg_id).map_err(read_error)?],
        MessageQuery::ByKey { topic, key, max_results } => {
            existing_topic(ctx, &topic)?;
            ctx.store.messages_by_key(&topic, &key, max_results.clamp(1, 64) as usize)
        }
    };
    Ok(QueryMessageResponse { messages: records.iter().map(|r| to_wire(ctx, r)).collect() })
}

fn queue_offsets(ctx: &Context, req: &QueueOffsetsRequest) -> Outcome<QueueOffsetsResponse> {
    readable_queue(ctx, &req.topic, req.queue_id)?;
    let (min_offset, max_offset) = ctx.store.queue_offsets(&req.topic, req.queue_id);
    Ok(QueueOffsetsResponse { min_offset, max_offset })
}

fn offset_by_timestamp(ctx: &Context, req: &OffsetByTimestampRequest) -> Outcome<OffsetByTimestampResponse> {
    readable_queue(ctx, &req.topic, req.queue_id)?;
    let ts = i64::try_from(req.timestamp_ms).unwrap_or(i64::MAX);
    Ok(OffsetByTimestampResponse { offset: ctx.store.offset_at_time(&req.topic, req.queue_id, ts) })
}

fn commit_offset(ctx: &Context, req: &CommitOffsetRequest) -> Outcome<()> {
    readable_queue(ctx, &req.topic, req.queue_id)?;
    if req.consumer_group.is_empty() {
        return Err(error(ErrorCode::BadRequest, "consumer group must not be empty"));
    }
    ctx.offsets.commit(&req.consumer_group, &req.topic, req.queue_id, req.offset);
    Ok(())
}

fn fetch_offset(ctx: &Context, req: &FetchOffsetRequest) -> FetchOffsetResponse {
    FetchOffsetResponse { offset: ctx.offsets.fetch(&req.consumer_group, &req.topic, req.queue_id) }
}

fn status(ctx: &Context) -> BrokerStatus {
    let stats = ctx.store.stats();
    let mut status = BrokerStatus::default();
    status.version = env!("CARGO_PKG_VERSION").to_owned();
    status.uptime_ms = ctx.started.elapsed().as_millis() as u64;
    status.data_dir = ctx.config.data_dir.display().to_string();
    status.flush_mode = match ctx.config.flush {
        FlushKind::Async => weir_protocol::FlushMode::Async,
        FlushKind::Sync => weir_protocol::FlushMode::Sync,
    };
    status.topic_count = ctx.topics.list(false).len() as u32;
    status.commitlog_size_bytes = stats.commitlog_bytes;
    status.commitlog_max_offset = stats.max_offset;
    status.connections = ctx.connections.load(Ordering::Relaxed);
    status.subscriptions = subscription_stats(ctx, None);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_text_matches_display() {
        for addr in ["0.0.0.0:0", "127.0.0.1:7420", "10.20.255.9:65535", "[::1]:7420", "[fe80::1:2]:9"] {
            let addr: SocketAddr = addr.parse().expect("an address");
            assert_eq!(host_text(addr), addr.to_string());
        }
    }
}
