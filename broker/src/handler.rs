//! Request handlers: one decoded [`Request`] in, one [`Response`] out.
//!
//! Handlers translate between wire types and the storage engine's types and
//! map every failure to a typed error response; nothing here panics on input.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use weir_filters::{BloomIndex, Expression, IndexShape, SubscriptionError, TrafficRole};
use weir_protocol::{
    BrokerStatus, CommitOffsetRequest, Delivery, ErrorCode, ErrorResponse, FetchOffsetRequest, FetchOffsetResponse,
    FilterCounters, FilterExpression, GroupConfig, GroupStatsRequest, GroupStatsResponse, MessageQuery,
    OffsetByTimestampRequest, OffsetByTimestampResponse, QueryMessageResponse, QueueOffsetsRequest,
    QueueOffsetsResponse, Request, Response, SendRequest, SendResponse, SendResult, SendStatus, SubscribeRequest,
    SubscribeResponse, SubscriptionStats,
};
use weir_storage::{AppendError, AppendStatus, InvalidMessage, ReadError, Store};

use crate::config::{BrokerConfig, FlushKind};
use crate::groups::{GroupError, Groups, PluginUse};
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

/// What a request is answered with.
#[derive(Debug)]
pub enum Reply {
    /// A response to encode.
    Response(Response),
    /// A response frame the handler encoded itself (a pull page, written from the records).
    Frame(bytes::Bytes),
}

/// Answers one request.
pub async fn handle(ctx: &Arc<Context>, request: Request, peer: SocketAddr) -> Reply {
    let outcome = match request {
        Request::Pull(req) => {
            return match crate::pull::pull(ctx, req).await {
                Ok(frame) => Reply::Frame(frame),
                Err(err) => Reply::Response(Response::Error(err)),
            };
        }
        Request::CreateTopic(config) => ctx.topics.create(&config).map(Response::CreateTopic),
        Request::UpdateTopic(config) => ctx.topics.update(&config).map(Response::UpdateTopic),
        Request::DeleteTopic(req) => delete_topic(ctx, req.topic).await.map(|()| Response::DeleteTopic),
        Request::ListTopics(req) => {
            Ok(Response::ListTopics(weir_protocol::ListTopicsResponse { topics: ctx.topics.list(req.include_system) }))
        }
        Request::Send(req) => send(ctx, req, peer).await.map(Response::Send),
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
    Reply::Response(outcome.unwrap_or_else(Response::Error))
}

/// Deletes a topic and everything kept for it: its queues and indexes (the store
/// never serves its records again), its groups' offsets and subscriptions. Held
/// pulls on it wake up to `UNKNOWN_TOPIC`.
async fn delete_topic(ctx: &Arc<Context>, topic: String) -> Outcome<()> {
    // First the metadata: sends and pulls get UNKNOWN_TOPIC from here on.
    ctx.topics.delete(&topic)?;
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        ctx.store.delete_topic(&topic).map_err(|err| {
            error(
                ErrorCode::Internal,
                format!("topic {topic} is deleted but its queues could not all be removed: {err}"),
            )
        })?;
        ctx.offsets.remove_topic(&topic);
        ctx.offsets
            .persist()
            .map_err(|err| error(ErrorCode::Internal, format!("cannot persist consumer offsets: {err}")))?;
        ctx.groups.remove_topic(&topic).map_err(group_error)
    })
    .await
    .map_err(|err| error(ErrorCode::Internal, format!("delete task failed: {err}")))?
}

fn existing_topic(ctx: &Context, name: &str) -> Outcome<Topic> {
    ctx.topics.get(name).ok_or_else(|| error(ErrorCode::UnknownTopic, format!("no topic {name}")))
}

pub(crate) fn readable_queue(ctx: &Context, topic: &str, queue_id: u32) -> Outcome<()> {
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
        AppendError::DiskFull { .. } | AppendError::ReadOnly { out_of_space: true, .. } => ErrorCode::DiskFull,
        AppendError::ReadOnly { .. } => ErrorCode::StoreUnavailable,
        AppendError::Segment { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => ErrorCode::DiskFull,
        AppendError::Failed(_) | AppendError::Closed => ErrorCode::StoreUnavailable,
        _ => ErrorCode::Internal,
    };
    error(code, err.to_string())
}

pub(crate) fn expression_of(filter: &FilterExpression) -> Outcome<Expression> {
    match filter {
        FilterExpression::All => Ok(Expression::All),
        FilterExpression::Tag(tags) => Ok(Expression::Tag(tags.clone())),
        FilterExpression::Sql(sql) => Ok(Expression::Sql(sql.clone())),
        FilterExpression::Subscribed => Err(error(ErrorCode::BadRequest, "a subscription needs an expression")),
    }
}

pub(crate) fn invalid_filter(err: SubscriptionError) -> ErrorResponse {
    error(ErrorCode::InvalidFilter, err.to_string())
}

pub(crate) fn group_error(err: GroupError) -> ErrorResponse {
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

pub(crate) fn read_error(err: ReadError) -> ErrorResponse {
    let code = match err {
        ReadError::Corrupt { .. } | ReadError::Io(_) => ErrorCode::StoreUnavailable,
        ReadError::BadMessageId(_) => ErrorCode::BadRequest,
        _ => ErrorCode::NotFound,
    };
    error(code, err.to_string())
}

fn query_message(ctx: &Context, query: MessageQuery) -> Outcome<QueryMessageResponse> {
    let records = match query {
        MessageQuery::ById { msg_id } => vec![ctx.store.message_by_id(&msg_id).map_err(read_error)?],
        MessageQuery::ByKey { topic, key, max_results } => {
            existing_topic(ctx, &topic)?;
            ctx.store.messages_by_key(&topic, &key, max_results.clamp(1, 64) as usize)
        }
    };
    Ok(QueryMessageResponse { messages: records.iter().map(|r| crate::pull::stored_message(ctx, r)).collect() })
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
    status.store = store_status(&stats);
    status
}

fn store_status(stats: &weir_storage::StoreStats) -> weir_protocol::StoreStatus {
    let mut store = weir_protocol::StoreStatus::default();
    store.state = match stats.state {
        weir_storage::StoreState::Ok => weir_protocol::StoreState::Ok,
        weir_storage::StoreState::ReadOnly { .. } => weir_protocol::StoreState::ReadOnly,
        weir_storage::StoreState::Failed { .. } => weir_protocol::StoreState::Failed,
    };
    store.reason = stats.state.reason().unwrap_or_default().to_owned();
    store.disk_usage_ppm = (stats.disk_usage.clamp(0.0, 1.0) * 1e6) as u32;
    store.disk_free_bytes = stats.disk_free_bytes;
    store.dispatch_lag_bytes = stats.dispatch_lag_bytes();
    store.store_bytes = stats.store_bytes();
    store.consume_queue_bytes = stats.consume_queue_bytes;
    store.index_bytes = stats.index_bytes;
    store.queues = stats.queues as u64;
    store.mapped_queue_files = stats.mapped_queue_files.0 as u64;
    store.mapped_queue_files_limit = stats.mapped_queue_files.1 as u64;
    store.queue_file_evictions = stats.queue_file_evictions;
    store
}
