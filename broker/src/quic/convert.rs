//! Between the wire's types and the core's: requests in, answers and errors out.
//! Every `CoreError` gets its wire code here, and nowhere else.

use weir_filters::{Expression, FilterCounts};
use weir_plugins::{RegistryError, RetryDecision};
use weir_protocol::{
    Change, DeadLetter, ErrorCode, ErrorResponse, FilterCounters, FilterExpression, NackDecision, NackResponse,
    PluginInfo, PluginState, PolicyPlugin, ResendOutcome, RetryPolicyInfo, RetryStats, SendResponse, SendResult,
    SendStatus, StoreState, StoreStatus, SubscriptionStats, TopicConfig, TopicPermissions,
};
use weir_storage::{AppendError, AppendResult, AppendStatus, InvalidMessage, ReadError, StoreStats};

use crate::config::FlushKind;
use weir_protocol::{
    AssignedQueue, GroupDescription, GroupSubscription, HeartbeatResponse, SubscriptionConflict, TopicAssignment,
};

use crate::core::{
    CoreError, DeadLetterEntry, Delivery, GroupSummary, HeartbeatArgs, MemberRef, MemberSubscription, NackOutcome,
    NewMessage, OffsetTarget, PolicyUse, PullFilter, PullStatus, QueueLag, Resend, ResendResult, RetryInfo, Setting,
    SubscriptionInfo, Topic,
};
use crate::membership::{ConsumeMode, MemberView, Timings, TopicQueues};

/// The error frame for `err`.
pub fn error_response(err: &CoreError) -> ErrorResponse {
    let code = match err {
        CoreError::Invalid(_) => ErrorCode::BadRequest,
        CoreError::NotFound(_) => ErrorCode::NotFound,
        CoreError::UnknownTopic(_) => ErrorCode::UnknownTopic,
        CoreError::TopicExists(_) => ErrorCode::TopicExists,
        CoreError::Append(err) => append_code(err),
        CoreError::Read(err) => read_code(err),
        CoreError::Filter(_) => ErrorCode::InvalidFilter,
        CoreError::SubscriptionNotFound { .. } => ErrorCode::SubscriptionNotFound,
        CoreError::Plugin(err) => registry_code(err),
        CoreError::UnknownGroup(_) => ErrorCode::NotFound,
        CoreError::SubscriptionConflict { .. } => ErrorCode::SubscriptionConflict,
        CoreError::MemberIdInUse { .. } => ErrorCode::MemberIdInUse,
        CoreError::UnknownMember { .. } => ErrorCode::UnknownMember,
        CoreError::NotAssigned(_) => ErrorCode::NotAssigned,
        CoreError::Metadata { source, .. } if out_of_space(source) => ErrorCode::DiskFull,
        CoreError::Metadata { .. } | CoreError::Internal(_) => ErrorCode::Internal,
    };
    ErrorResponse::new(code, err.chain())
}

/// Whether a metadata write failed for want of space (the cause may be wrapped).
fn out_of_space(err: &std::io::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = next {
        if cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull) {
            return true;
        }
        next = cause.source();
    }
    false
}

fn append_code(err: &AppendError) -> ErrorCode {
    match err {
        AppendError::Invalid(InvalidMessage::TooLarge { .. }) => ErrorCode::MessageTooLarge,
        AppendError::Invalid(_) => ErrorCode::BadRequest,
        AppendError::DiskFull { .. } | AppendError::ReadOnly { out_of_space: true, .. } => ErrorCode::DiskFull,
        AppendError::ReadOnly { .. } => ErrorCode::StoreUnavailable,
        AppendError::Segment { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => ErrorCode::DiskFull,
        AppendError::Failed(_) | AppendError::Closed => ErrorCode::StoreUnavailable,
        _ => ErrorCode::Internal,
    }
}

fn read_code(err: &ReadError) -> ErrorCode {
    match err {
        ReadError::Corrupt { .. } | ReadError::Io(_) => ErrorCode::StoreUnavailable,
        ReadError::BadMessageId(_) => ErrorCode::BadRequest,
        _ => ErrorCode::NotFound,
    }
}

fn registry_code(err: &RegistryError) -> ErrorCode {
    match err {
        RegistryError::NotFound { .. } => ErrorCode::NotFound,
        RegistryError::InUse { .. } => ErrorCode::PluginInUse,
        RegistryError::NameRequired | RegistryError::InvalidName { .. } | RegistryError::KindChange { .. } => {
            ErrorCode::BadRequest
        }
        RegistryError::Load(_) | RegistryError::WrongKind(_) | RegistryError::Broken { .. } => ErrorCode::InvalidPlugin,
        _ => ErrorCode::Internal,
    }
}

/// A topic's name and metadata from its wire config.
pub fn topic(config: TopicConfig) -> (String, Topic) {
    let topic = Topic {
        read_queues: config.read_queues,
        write_queues: config.write_queues,
        readable: config.permissions.readable,
        writable: config.permissions.writable,
    };
    (config.name, topic)
}

/// A topic's wire config.
pub fn topic_config(name: String, topic: Topic) -> TopicConfig {
    TopicConfig {
        name,
        read_queues: topic.read_queues,
        write_queues: topic.write_queues,
        permissions: TopicPermissions { readable: topic.readable, writable: topic.writable },
    }
}

/// A sent message for the core.
pub fn new_message(m: weir_protocol::Message) -> NewMessage {
    NewMessage {
        topic: m.topic,
        queue_id: m.queue_id,
        tag: m.tag,
        keys: m.keys,
        properties: m.properties,
        body: m.body,
        born_timestamp_ms: m.born_timestamp_ms,
        flags: m.flags,
        delivery: match m.delivery {
            weir_protocol::Delivery::Immediate => Delivery::Immediate,
            weir_protocol::Delivery::DelayLevel(level) => Delivery::DelayLevel(level),
            weir_protocol::Delivery::DeliverAtMs(at) => Delivery::DeliverAtMs(at),
        },
    }
}

/// The send response for the store's results.
pub fn send_response(results: Vec<AppendResult>) -> SendResponse {
    let results = results
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
        .collect();
    SendResponse { results }
}

/// A subscription expression; `Subscribed` is not one.
pub fn expression(filter: FilterExpression) -> Result<Expression, CoreError> {
    match pull_filter(filter) {
        PullFilter::Expression(expression) => Ok(expression),
        PullFilter::Subscribed => Err(CoreError::Invalid("a subscription needs an expression".into())),
    }
}

/// What a pull filters with.
pub fn pull_filter(filter: FilterExpression) -> PullFilter {
    match filter {
        FilterExpression::All => PullFilter::Expression(Expression::All),
        FilterExpression::Tag(tags) => PullFilter::Expression(Expression::Tag(tags)),
        FilterExpression::Sql(sql) => PullFilter::Expression(Expression::Sql(sql)),
        FilterExpression::Subscribed => PullFilter::Subscribed,
    }
}

/// A pull's status on the wire.
pub fn pull_status(status: PullStatus) -> weir_protocol::PullStatus {
    match status {
        PullStatus::Found => weir_protocol::PullStatus::Found,
        PullStatus::NoNewMessage => weir_protocol::PullStatus::NoNewMessage,
        PullStatus::NoMatchedMessage => weir_protocol::PullStatus::NoMatchedMessage,
        PullStatus::OffsetMoved => weir_protocol::PullStatus::OffsetMoved,
        PullStatus::OffsetIllegal => weir_protocol::PullStatus::OffsetIllegal,
    }
}

/// A subscription and its counters on the wire.
pub fn subscription_stats(info: SubscriptionInfo) -> SubscriptionStats {
    SubscriptionStats {
        consumer_group: info.group,
        topic: info.topic,
        expression: info.expression,
        version: info.version,
        shadow: info.shadow,
        counters: filter_counters(info.counts),
    }
}

fn filter_counters(c: FilterCounts) -> FilterCounters {
    FilterCounters {
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
    }
}

/// The flush mode on the wire.
pub fn flush_mode(flush: FlushKind) -> weir_protocol::FlushMode {
    match flush {
        FlushKind::Async => weir_protocol::FlushMode::Async,
        FlushKind::Sync => weir_protocol::FlushMode::Sync,
    }
}

/// The wire form of the delayed-delivery figures.
pub fn timer_status(timers: &crate::delayed::TimerStatus) -> weir_protocol::TimerStatus {
    let mut wire = weir_protocol::TimerStatus::default();
    wire.pending = timers.pending;
    wire.next_due_ms = timers.next_due_ms.unwrap_or(0);
    wire.delivered = timers.delivered;
    wire.cancelled = timers.cancelled;
    wire.dropped = timers.dropped;
    wire.lost = timers.lost;
    wire.stale = timers.stale;
    wire.lateness_max_ms = timers.lateness_max_ms;
    wire.lateness_mean_ms = timers.lateness_mean_ms;
    wire.log_bytes = timers.log_bytes;
    wire
}

/// The store's state and figures on the wire.
pub fn store_status(stats: &StoreStats) -> StoreStatus {
    let mut store = StoreStatus::default();
    store.state = match stats.state {
        weir_storage::StoreState::Ok => StoreState::Ok,
        weir_storage::StoreState::ReadOnly { .. } => StoreState::ReadOnly,
        weir_storage::StoreState::Failed { .. } => StoreState::Failed,
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

/// A plugin's description on the wire, with what it decided as groups' retry policy.
pub fn plugin_info(info: weir_plugins::PluginInfo, policy: PolicyUse) -> PluginInfo {
    let (state, state_detail) = match info.state {
        weir_plugins::PluginState::Active => (PluginState::Active, String::new()),
        weir_plugins::PluginState::Disabled { subscriptions, reason } => {
            (PluginState::Disabled, format!("disabled for {subscriptions} subscription(s): {reason}"))
        }
        weir_plugins::PluginState::Broken { error } => (PluginState::Broken, error),
    };
    let manifest = info.manifest.unwrap_or_default();
    PluginInfo {
        name: info.name,
        kind: info.kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
        version: info.version,
        revision: info.revision,
        size_bytes: info.size_bytes as u64,
        state,
        state_detail,
        subscriptions: u32::try_from(info.subscriptions).unwrap_or(u32::MAX),
        calls: info.stats.calls,
        errors: info.stats.errors,
        total_call_nanos: info.stats.total_call_nanos,
        fuel_used: info.stats.fuel_used,
        description: manifest.description.unwrap_or_default(),
        hints: manifest.hints,
        params: manifest.params,
        groups: policy.groups,
        retries: policy.retries,
        dead_letters: policy.dead_letters,
        discards: policy.discards,
    }
}

/// A group's retry policy on the wire.
pub fn retry_policy_info(info: RetryInfo) -> RetryPolicyInfo {
    RetryPolicyInfo {
        plugin: info.plugin.map(|(plugin, params)| PolicyPlugin { plugin, params }),
        max_reconsume_times: info.max_reconsume_times,
        group_limit: info.group_limit,
        stats: RetryStats {
            failures: info.failures,
            retries: info.retries,
            dead_letters: info.dead_letters,
            discards: info.discards,
            fallbacks: info.fallbacks,
            policy_calls: info.policy_calls,
            policy_errors: info.policy_errors,
            policy_call_nanos: info.policy_call_nanos,
            resent: info.resent,
        },
    }
}

/// A wire setting change for the core.
pub fn setting<T, U>(change: Change<T>, map: impl FnOnce(T) -> U) -> Setting<U> {
    match change {
        Change::Keep => Setting::Keep,
        Change::Set(value) => Setting::Set(map(value)),
        Change::Clear => Setting::Clear,
    }
}

/// What became of a failed delivery, on the wire.
pub fn nack_response(outcome: NackOutcome) -> NackResponse {
    let decision = match outcome.decision {
        RetryDecision::RetryAfter(delay) => {
            NackDecision::Retry { delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX) }
        }
        RetryDecision::DeadLetter => NackDecision::DeadLetter,
        RetryDecision::Discard => NackDecision::Discard,
    };
    NackResponse {
        decision,
        reconsume_times: outcome.reconsume_times,
        stored_msg_id: outcome.stored_msg_id.unwrap_or_default(),
        decided_by: outcome.decided_by.unwrap_or_default(),
    }
}

/// A dead letter on the wire.
pub fn dead_letter(store_id: u32, entry: &DeadLetterEntry) -> DeadLetter {
    let view = entry.record.view();
    let origin = crate::retry::dead_letter_origin(&view);
    DeadLetter {
        message: super::page::stored_message(store_id, &entry.record),
        original_topic: origin.topic.to_owned(),
        original_msg_id: origin.msg_id.to_owned(),
        last_reason: origin.last_reason.to_owned(),
        resent: entry.resent,
    }
}

/// A resend's outcome on the wire.
pub fn resend_result(result: ResendResult) -> weir_protocol::ResendResult {
    let outcome = match result.outcome {
        Resend::Resent(new_msg_id) => ResendOutcome::Resent { new_msg_id },
        Resend::AlreadyResent => ResendOutcome::AlreadyResent,
        Resend::NotFound(detail) => ResendOutcome::NotFound { detail },
    };
    weir_protocol::ResendResult { msg_id: result.msg_id, original_topic: result.original_topic, outcome }
}

/// A wire member reference.
pub fn member_ref(member: Option<weir_protocol::MemberRef>) -> Option<MemberRef> {
    member.map(|m| MemberRef { member_id: m.member_id, generation: m.generation })
}

/// A heartbeat for the core.
pub fn heartbeat(req: weir_protocol::HeartbeatRequest, peer: std::net::SocketAddr) -> Result<HeartbeatArgs, CoreError> {
    let subscriptions = req
        .subscriptions
        .into_iter()
        .map(|s| {
            Ok(MemberSubscription {
                topic: s.topic,
                expression: expression(s.filter)?,
                plugin: s.plugin.map(|name| (name, s.plugin_params)),
            })
        })
        .collect::<Result<_, CoreError>>()?;
    let owned =
        req.owned.into_iter().flat_map(|t| t.queues.into_iter().map(move |q| (t.topic.clone(), q.queue_id))).collect();
    Ok(HeartbeatArgs {
        group: req.consumer_group,
        member_id: req.member_id,
        session: req.session,
        host: peer.to_string(),
        mode: consume_mode(req.mode),
        orderly: req.orderly,
        strategy: req.strategy,
        replace_subscriptions: req.replace_subscriptions,
        subscriptions,
        owned,
        known_generation: req.known_generation,
        max_wait: std::time::Duration::from_millis(req.max_wait_ms.into()),
    })
}

fn consume_mode(mode: weir_protocol::ConsumeMode) -> ConsumeMode {
    match mode {
        weir_protocol::ConsumeMode::Broadcasting => ConsumeMode::Broadcasting,
        _ => ConsumeMode::Clustering,
    }
}

fn wire_mode(mode: ConsumeMode) -> weir_protocol::ConsumeMode {
    match mode {
        ConsumeMode::Clustering => weir_protocol::ConsumeMode::Clustering,
        ConsumeMode::Broadcasting => weir_protocol::ConsumeMode::Broadcasting,
    }
}

/// A member's queues on the wire.
pub fn assignments(queues: Vec<TopicQueues>) -> Vec<TopicAssignment> {
    queues
        .into_iter()
        .map(|t| TopicAssignment {
            topic: t.topic,
            queues: t
                .queues
                .into_iter()
                .map(|(queue_id, since_generation)| AssignedQueue { queue_id, since_generation })
                .collect(),
        })
        .collect()
}

/// A heartbeat's answer.
pub fn heartbeat_response(view: MemberView, timings: Timings) -> HeartbeatResponse {
    let millis = |d: std::time::Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    HeartbeatResponse {
        generation: view.generation,
        heartbeat_interval_ms: millis(timings.heartbeat_interval),
        member_timeout_ms: millis(timings.member_timeout),
        assignments: assignments(view.assignments),
    }
}

/// A group's one-line summary.
pub fn group_summary(group: &GroupSummary) -> weir_protocol::GroupSummary {
    let live = group.live.as_ref();
    weir_protocol::GroupSummary {
        name: group.name.clone(),
        generation: live.map_or(0, |l| l.generation),
        strategy: group.strategy.as_str().to_owned(),
        mode: wire_mode(group.mode()),
        members: live.map_or(0, |l| l.members.len() as u32),
        subscriptions: group.subscriptions.len() as u32,
        shadow: group.shadow,
        conflicts: live.map_or(0, |l| l.conflicts.len() as u32),
    }
}

/// A group's description.
pub fn group_description(group: GroupSummary) -> GroupDescription {
    let now = std::time::Instant::now();
    let mode = wire_mode(group.mode());
    let (generation, members, conflicts) = match group.live {
        Some(live) => (live.generation, live.members, live.conflicts),
        None => (0, Vec::new(), Vec::new()),
    };
    GroupDescription {
        retry: retry_policy_info(group.retry),
        name: group.name,
        generation,
        strategy: group.strategy.as_str().to_owned(),
        mode,
        shadow: group.shadow,
        members: members
            .into_iter()
            .map(|m| weir_protocol::MemberInfo {
                member_id: m.member_id,
                host: m.host,
                mode: wire_mode(m.mode),
                orderly: m.orderly,
                assignments: assignments(m.assignments),
                last_heartbeat_ms: m.since_heartbeat.as_millis() as u64,
            })
            .collect(),
        subscriptions: group
            .subscriptions
            .into_iter()
            .map(|s| GroupSubscription {
                topic: s.topic,
                expression: s.expression,
                plugin: s.plugin,
                version: s.version,
            })
            .collect(),
        conflicts: conflicts
            .into_iter()
            .map(|c| SubscriptionConflict {
                refused_ms: now.saturating_duration_since(c.at).as_millis() as u64,
                member_id: c.member_id,
                host: c.host,
                topic: c.topic,
                expression: c.expression,
                group_expression: c.group_expression,
            })
            .collect(),
    }
}

/// A group's lag on the wire.
pub fn queue_lag(lag: QueueLag) -> weir_protocol::QueueLag {
    weir_protocol::QueueLag {
        topic: lag.topic,
        queue_id: lag.queue_id,
        broker_offset: lag.broker_offset,
        committed_offset: lag.committed_offset,
        lag: lag.lag,
        owner: lag.owner,
        last_commit_ms: lag.last_commit_ms,
    }
}

/// A reset's target for the core.
pub fn offset_target(to: weir_protocol::OffsetTarget) -> OffsetTarget {
    match to {
        weir_protocol::OffsetTarget::Earliest => OffsetTarget::Earliest,
        weir_protocol::OffsetTarget::Latest => OffsetTarget::Latest,
        weir_protocol::OffsetTarget::Timestamp(ms) => OffsetTarget::Timestamp(ms),
    }
}
