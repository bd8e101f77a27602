//! Test support: value strategies for every wire type and the shared round-trip check.

use std::fmt::Debug;
use std::num::NonZeroU8;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::consumer_offset::{CommitOffsetRequest, FetchOffsetRequest, FetchOffsetResponse};
use crate::decoder::decode_frame;
use crate::error::{DecodeError, EncodeError};
use crate::error_response::{ErrorCode, ErrorResponse};
use crate::frame::{Frame, FrameKind};
use crate::group::{
    FilterCounters, GroupConfig, GroupStatsRequest, GroupStatsResponse, SubscribeRequest, SubscribeResponse,
    SubscriptionStats,
};
use crate::membership::{
    AssignedQueue, ConsumeMode, DescribeGroupRequest, GroupDescription, GroupLagRequest, GroupLagResponse,
    GroupSubscription, GroupSummary, HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, ListGroupsResponse,
    LockQueuesRequest, LockQueuesResponse, MemberInfo, MemberRef, MemberSubscription, OffsetTarget, QueueLag,
    QueueOffset, ResetOffsetRequest, ResetOffsetResponse, SubscriptionConflict, TopicAssignment, UnlockQueuesRequest,
};
use crate::message::StoredMessage;
use crate::plugin::{
    PluginEnableRequest, PluginEnableResponse, PluginInfo, PluginListResponse, PluginRemoveRequest, PluginState,
    PluginUploadRequest,
};
use crate::pull::{FilterExpression, PullRequest, PullResponse, PullStatus};
use crate::query::{CancelMessageRequest, CancelMessageResponse, MessageQuery, QueryMessageResponse};
use crate::queue_offsets::{
    OffsetByTimestampRequest, OffsetByTimestampResponse, QueueOffsetsRequest, QueueOffsetsResponse,
};
use crate::request::Request;
use crate::response::Response;
use crate::retry::{
    Change, DeadLetter, DlqListRequest, DlqListResponse, DlqResendRequest, DlqResendResponse, NackDecision,
    NackRequest, NackResponse, PolicyPlugin, ResendOutcome, ResendResult, RetryPolicyInfo, RetryStats,
    SetGroupPolicyRequest,
};
use crate::send::{Delivery, Message, SendRequest, SendResponse, SendResult, SendStatus};
use crate::status::{BrokerStatus, FlushMode, StoreState, StoreStatus, TimerStatus};
use crate::topic::{DeleteTopicRequest, ListTopicsRequest, ListTopicsResponse, TopicConfig, TopicPermissions};
use crate::wire::{Wire, Writer};

/// A frame of `kind` with `payload`, as the frame decoder would return it.
pub(crate) fn frame(kind: FrameKind, payload: &[u8]) -> Frame {
    Frame { kind, payload: Bytes::copy_from_slice(payload) }
}

/// How many bytes `value` encodes to.
pub(crate) fn encoded_len<T: Wire>(value: &T) -> usize {
    let mut dst = BytesMut::new();
    value.encode(&mut Writer::new(&mut dst)).unwrap();
    dst.len()
}

/// Checks that `request` encodes (to `golden`, if given) as a frame of its kind and
/// decodes back to itself, that the response decoder refuses it, and that its payload cut
/// short or extended is a typed error.
pub(crate) fn check_request(request: &Request, golden: Option<&[u8]>) -> Result<(), TestCaseError> {
    let frame = check_frame(request, FrameKind::Request(request.kind()), golden, Request::encode, Request::decode)?;
    let kind = frame.kind;
    prop_assert_eq!(Response::decode(frame), Err(DecodeError::UnexpectedKind { kind }));
    Ok(())
}

/// Like [`check_request`], for responses (which the request decoder refuses).
pub(crate) fn check_response(response: &Response, golden: Option<&[u8]>) -> Result<(), TestCaseError> {
    let frame = check_frame(response, response.kind(), golden, Response::encode, Response::decode)?;
    let kind = frame.kind;
    prop_assert_eq!(Request::decode(frame), Err(DecodeError::UnexpectedKind { kind }));
    Ok(())
}

/// The shared round-trip, truncation and trailing-byte checks; returns the encoded frame.
fn check_frame<T: Clone + Debug + PartialEq>(
    value: &T,
    kind: FrameKind,
    golden: Option<&[u8]>,
    encode: impl Fn(&T, &mut BytesMut) -> Result<(), EncodeError>,
    decode: impl Fn(Frame) -> Result<T, DecodeError>,
) -> Result<Frame, TestCaseError> {
    let mut dst = BytesMut::new();
    encode(value, &mut dst).unwrap();
    if let Some(golden) = golden {
        prop_assert_eq!(&dst[..], golden, "encoding differs from the golden bytes");
    }
    let frame = decode_frame(dst.freeze(), u32::MAX).unwrap();
    prop_assert_eq!(frame.kind, kind);
    prop_assert_eq!(decode(frame.clone()), Ok(value.clone()));

    for len in 0..frame.payload.len() {
        let cut = Frame { kind: frame.kind, payload: frame.payload.slice(..len) };
        let result = decode(cut);
        prop_assert!(
            matches!(result, Err(DecodeError::Truncated { .. })),
            "payload cut to {} bytes gave {:?}",
            len,
            result
        );
    }

    let mut longer = frame.payload.to_vec();
    longer.push(0);
    let extended = Frame { kind: frame.kind, payload: Bytes::from(longer) };
    prop_assert_eq!(decode(extended), Err(DecodeError::TrailingBytes { count: 1 }));
    Ok(frame)
}

fn arb_string() -> impl Strategy<Value = String> + Clone {
    "\\PC{0,8}"
}

fn arb_properties() -> impl Strategy<Value = Vec<(String, String)>> {
    vec((arb_string(), arb_string()), 0..3)
}

fn arb_body() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..32).prop_map(Bytes::from)
}

/// Any topic config.
pub(crate) fn arb_topic_config() -> impl Strategy<Value = TopicConfig> {
    (arb_string(), any::<u32>(), any::<u32>(), any::<(bool, bool)>()).prop_map(
        |(name, read_queues, write_queues, (readable, writable))| TopicConfig {
            name,
            read_queues,
            write_queues,
            permissions: TopicPermissions { readable, writable },
        },
    )
}

fn arb_delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![
        Just(Delivery::Immediate),
        (1u8..).prop_map(|level| Delivery::DelayLevel(NonZeroU8::new(level).unwrap())),
        any::<u64>().prop_map(Delivery::DeliverAtMs),
    ]
}

/// Any message to send.
pub(crate) fn arb_message() -> impl Strategy<Value = Message> {
    (
        (arb_string(), any::<Option<u32>>(), proptest::option::of(arb_string())),
        (vec(arb_string(), 0..3), arb_properties()),
        (any::<u32>(), any::<u64>(), arb_delivery(), arb_body()),
    )
        .prop_map(|((topic, queue_id, tag), (keys, properties), (flags, born, delivery, body))| Message {
            topic,
            queue_id,
            tag,
            keys,
            properties,
            flags,
            born_timestamp_ms: born,
            delivery,
            body,
        })
}

/// Any send result.
pub(crate) fn arb_send_result() -> impl Strategy<Value = SendResult> {
    let status = prop_oneof![
        Just(SendStatus::SendOk),
        Just(SendStatus::FlushDiskTimeout),
        Just(SendStatus::FlushSlaveTimeout),
        Just(SendStatus::SlaveNotAvailable),
    ];
    (arb_string(), any::<u32>(), any::<u64>(), status).prop_map(|(msg_id, queue_id, queue_offset, status)| SendResult {
        msg_id,
        queue_id,
        queue_offset,
        status,
    })
}

/// Any subscription filter.
pub(crate) fn arb_filter() -> impl Strategy<Value = FilterExpression> {
    prop_oneof![
        Just(FilterExpression::All),
        arb_string().prop_map(FilterExpression::Tag),
        arb_string().prop_map(FilterExpression::Sql),
        Just(FilterExpression::Subscribed),
    ]
}

/// Any stored message.
pub(crate) fn arb_stored_message() -> impl Strategy<Value = StoredMessage> {
    (
        (arb_string(), arb_string(), any::<u32>(), any::<[u64; 4]>()),
        (arb_string(), any::<u32>(), any::<u32>()),
        (proptest::option::of(arb_string()), vec(arb_string(), 0..3), arb_properties(), arb_body()),
    )
        .prop_map(
            |(
                (msg_id, topic, queue_id, [queue_offset, commitlog_offset, born, stored]),
                (born_host, flags, reconsume_times),
                (tag, keys, properties, body),
            )| StoredMessage {
                msg_id,
                topic,
                queue_id,
                queue_offset,
                commitlog_offset,
                born_timestamp_ms: born,
                store_timestamp_ms: stored,
                born_host,
                flags,
                reconsume_times,
                tag,
                keys,
                properties,
                body,
            },
        )
}

/// Any pull response.
pub(crate) fn arb_pull_response() -> impl Strategy<Value = PullResponse> {
    let status = prop_oneof![
        Just(PullStatus::Found),
        Just(PullStatus::NoNewMessage),
        Just(PullStatus::NoMatchedMessage),
        Just(PullStatus::OffsetIllegal),
        Just(PullStatus::OffsetMoved),
    ];
    (status, any::<[u64; 3]>(), vec(arb_stored_message(), 0..3)).prop_map(
        |(status, [next_offset, min_offset, max_offset], messages)| PullResponse {
            status,
            next_offset,
            min_offset,
            max_offset,
            messages,
        },
    )
}

/// Any message lookup.
pub(crate) fn arb_message_query() -> impl Strategy<Value = MessageQuery> {
    prop_oneof![
        arb_string().prop_map(|msg_id| MessageQuery::ById { msg_id }),
        (arb_string(), arb_string(), any::<u32>())
            .prop_map(|(topic, key, max_results)| { MessageQuery::ByKey { topic, key, max_results } }),
    ]
}

/// Any broker status.
pub(crate) fn arb_broker_status() -> impl Strategy<Value = BrokerStatus> {
    (
        (arb_string(), arb_string(), any::<bool>()),
        (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<u32>()),
        vec(arb_subscription_stats(), 0..2),
        (arb_store_status(), any::<u64>(), any::<[u64; 10]>()),
    )
        .prop_map(
            |(
                (version, data_dir, sync),
                (uptime_ms, topic_count, size, max_offset, connections),
                subscriptions,
                (store, flushes, t),
            )| {
                BrokerStatus {
                    version,
                    uptime_ms,
                    data_dir,
                    flush_mode: if sync { FlushMode::Sync } else { FlushMode::Async },
                    topic_count,
                    commitlog_size_bytes: size,
                    commitlog_max_offset: max_offset,
                    connections,
                    subscriptions,
                    store,
                    flushes,
                    timers: TimerStatus {
                        pending: t[0],
                        next_due_ms: t[1],
                        delivered: t[2],
                        cancelled: t[3],
                        dropped: t[4],
                        lost: t[5],
                        stale: t[6],
                        lateness_max_ms: t[7],
                        lateness_mean_ms: t[8],
                        log_bytes: t[9],
                    },
                }
            },
        )
}

/// Any store status.
fn arb_store_status() -> impl Strategy<Value = StoreStatus> {
    (0u8..3, arb_string(), any::<u32>(), any::<[u64; 9]>()).prop_map(|(state, reason, disk_usage_ppm, n)| StoreStatus {
        state: [StoreState::Ok, StoreState::ReadOnly, StoreState::Failed][state as usize],
        reason,
        disk_usage_ppm,
        disk_free_bytes: n[0],
        dispatch_lag_bytes: n[1],
        store_bytes: n[2],
        consume_queue_bytes: n[3],
        index_bytes: n[4],
        queues: n[5],
        mapped_queue_files: n[6],
        mapped_queue_files_limit: n[7],
        queue_file_evictions: n[8],
    })
}

/// Any plugin listing entry.
pub(crate) fn arb_plugin_info() -> impl Strategy<Value = PluginInfo> {
    (
        (arb_string(), arb_string(), arb_string(), arb_string()),
        (any::<[u64; 6]>(), any::<u32>(), 0u8..3),
        (vec(arb_string(), 0..3), vec(arb_string(), 0..2)),
    )
        .prop_map(|((name, kind, version, description), (n, subscriptions, state), (hints, params))| PluginInfo {
            name,
            kind,
            version,
            revision: n[0],
            size_bytes: n[1],
            state: [PluginState::Active, PluginState::Disabled, PluginState::Broken][state as usize],
            state_detail: description.clone(),
            subscriptions,
            calls: n[2],
            errors: n[3],
            total_call_nanos: n[4],
            fuel_used: n[5],
            description,
            hints,
            params,
            groups: subscriptions / 2,
            retries: n[2] / 2,
            dead_letters: n[3] / 2,
            discards: n[4] / 2,
        })
}

/// Any subscription's statistics.
pub(crate) fn arb_subscription_stats() -> impl Strategy<Value = SubscriptionStats> {
    ((arb_string(), arb_string(), arb_string()), any::<u64>(), any::<bool>(), any::<[u64; 12]>()).prop_map(
        |((consumer_group, topic, expression), version, shadow, c)| SubscriptionStats {
            consumer_group,
            topic,
            expression,
            version,
            shadow,
            counters: FilterCounters::from_fields(c),
        },
    )
}

/// Any group config.
pub(crate) fn arb_group_config() -> impl Strategy<Value = GroupConfig> {
    (arb_string(), any::<bool>(), proptest::option::of(arb_string())).prop_map(|(name, shadow, strategy)| GroupConfig {
        name,
        shadow,
        strategy,
    })
}

/// Any member reference.
pub(crate) fn arb_member_ref() -> impl Strategy<Value = MemberRef> {
    (arb_string(), any::<u64>()).prop_map(|(member_id, generation)| MemberRef { member_id, generation })
}

/// Any consume mode.
pub(crate) fn arb_consume_mode() -> impl Strategy<Value = ConsumeMode> {
    prop_oneof![Just(ConsumeMode::Clustering), Just(ConsumeMode::Broadcasting)]
}

/// Any member subscription.
pub(crate) fn arb_member_subscription() -> impl Strategy<Value = MemberSubscription> {
    (arb_string(), arb_filter(), proptest::option::of(arb_string()), arb_string())
        .prop_map(|(topic, filter, plugin, plugin_params)| MemberSubscription { topic, filter, plugin, plugin_params })
}

/// Any topic assignment.
pub(crate) fn arb_topic_assignment() -> impl Strategy<Value = TopicAssignment> {
    let queue = (any::<u32>(), any::<u64>())
        .prop_map(|(queue_id, since_generation)| AssignedQueue { queue_id, since_generation });
    (arb_string(), vec(queue, 0..3)).prop_map(|(topic, queues)| TopicAssignment { topic, queues })
}

/// Any heartbeat.
pub(crate) fn arb_heartbeat_request() -> impl Strategy<Value = HeartbeatRequest> {
    (
        (arb_string(), arb_string(), any::<u64>()),
        (arb_consume_mode(), any::<bool>(), proptest::option::of(arb_string()), any::<bool>()),
        (vec(arb_member_subscription(), 0..3), vec(arb_topic_assignment(), 0..3)),
        (any::<u64>(), any::<u32>()),
    )
        .prop_map(
            |(
                (consumer_group, member_id, session),
                (mode, orderly, strategy, replace_subscriptions),
                (subscriptions, owned),
                (known_generation, max_wait_ms),
            )| HeartbeatRequest {
                consumer_group,
                member_id,
                session,
                mode,
                orderly,
                strategy,
                replace_subscriptions,
                subscriptions,
                owned,
                known_generation,
                max_wait_ms,
            },
        )
}

/// Any heartbeat response.
pub(crate) fn arb_heartbeat_response() -> impl Strategy<Value = HeartbeatResponse> {
    (any::<u64>(), any::<[u32; 2]>(), vec(arb_topic_assignment(), 0..3)).prop_map(
        |(generation, [heartbeat_interval_ms, member_timeout_ms], assignments)| HeartbeatResponse {
            generation,
            heartbeat_interval_ms,
            member_timeout_ms,
            assignments,
        },
    )
}

/// Any group summary.
pub(crate) fn arb_group_summary() -> impl Strategy<Value = GroupSummary> {
    ((arb_string(), any::<u64>(), arb_string(), arb_consume_mode()), (any::<[u32; 3]>(), any::<bool>())).prop_map(
        |((name, generation, strategy, mode), ([members, subscriptions, conflicts], shadow))| GroupSummary {
            name,
            generation,
            strategy,
            mode,
            members,
            subscriptions,
            shadow,
            conflicts,
        },
    )
}

/// Any group member's description.
pub(crate) fn arb_member_info() -> impl Strategy<Value = MemberInfo> {
    ((arb_string(), arb_string(), arb_consume_mode(), any::<bool>()), vec(arb_topic_assignment(), 0..3), any::<u64>())
        .prop_map(|((member_id, host, mode, orderly), assignments, last_heartbeat_ms)| MemberInfo {
            member_id,
            host,
            mode,
            orderly,
            assignments,
            last_heartbeat_ms,
        })
}

/// Any subscription conflict.
pub(crate) fn arb_subscription_conflict() -> impl Strategy<Value = SubscriptionConflict> {
    ((arb_string(), arb_string(), arb_string()), (arb_string(), arb_string()), any::<u64>()).prop_map(
        |((member_id, host, topic), (expression, group_expression), refused_ms)| SubscriptionConflict {
            member_id,
            host,
            topic,
            expression,
            group_expression,
            refused_ms,
        },
    )
}

/// Any group description.
pub(crate) fn arb_group_description() -> impl Strategy<Value = GroupDescription> {
    let subscription = (arb_string(), arb_string(), proptest::option::of(arb_string()), any::<u64>())
        .prop_map(|(topic, expression, plugin, version)| GroupSubscription { topic, expression, plugin, version });
    (
        (arb_string(), any::<u64>(), arb_string(), arb_consume_mode(), any::<bool>()),
        (vec(arb_member_info(), 0..3), vec(subscription, 0..3), vec(arb_subscription_conflict(), 0..2)),
        arb_retry_policy_info(),
    )
        .prop_map(|((name, generation, strategy, mode, shadow), (members, subscriptions, conflicts), retry)| {
            GroupDescription { name, generation, strategy, mode, shadow, members, subscriptions, conflicts, retry }
        })
}

/// Any queue's lag.
pub(crate) fn arb_queue_lag() -> impl Strategy<Value = QueueLag> {
    (
        (arb_string(), any::<u32>(), any::<u64>(), any::<Option<u64>>()),
        (any::<u64>(), proptest::option::of(arb_string()), any::<Option<u64>>()),
    )
        .prop_map(|((topic, queue_id, broker_offset, committed_offset), (lag, owner, last_commit_ms))| QueueLag {
            topic,
            queue_id,
            broker_offset,
            committed_offset,
            lag,
            owner,
            last_commit_ms,
        })
}

/// Any offset reset target.
pub(crate) fn arb_offset_target() -> impl Strategy<Value = OffsetTarget> {
    prop_oneof![
        Just(OffsetTarget::Earliest),
        Just(OffsetTarget::Latest),
        any::<u64>().prop_map(OffsetTarget::Timestamp)
    ]
}

/// Any offset reset's result.
pub(crate) fn arb_reset_offset_response() -> impl Strategy<Value = ResetOffsetResponse> {
    let queue = (any::<u32>(), any::<u64>()).prop_map(|(queue_id, offset)| QueueOffset { queue_id, offset });
    (any::<u64>(), vec(queue, 0..3)).prop_map(|(generation, queues)| ResetOffsetResponse { generation, queues })
}

/// Any error response, with known and unknown codes.
pub(crate) fn arb_error_response() -> impl Strategy<Value = ErrorResponse> {
    (any::<u16>(), arb_string()).prop_map(|(code, message)| ErrorResponse::new(ErrorCode::from_u16(code), message))
}

/// Any request.
pub(crate) fn arb_request() -> impl Strategy<Value = Request> {
    let consumer_queue = (arb_string(), arb_string(), any::<u32>());
    let member = || proptest::option::of(arb_member_ref());
    let queue_ids = || vec(any::<u32>(), 0..4);
    prop_oneof![
        arb_topic_config().prop_map(Request::CreateTopic),
        arb_topic_config().prop_map(Request::UpdateTopic),
        arb_string().prop_map(|topic| Request::DeleteTopic(DeleteTopicRequest { topic })),
        any::<bool>().prop_map(|include_system| Request::ListTopics(ListTopicsRequest { include_system })),
        vec(arb_message(), 0..3).prop_map(|messages| Request::Send(SendRequest { messages })),
        (consumer_queue.clone(), any::<u64>(), any::<[u32; 2]>(), arb_filter(), member()).prop_map(
            |((consumer_group, topic, queue_id), offset, [max_messages, max_wait_ms], filter, member)| {
                Request::Pull(PullRequest {
                    consumer_group,
                    topic,
                    queue_id,
                    offset,
                    max_messages,
                    max_wait_ms,
                    filter,
                    member,
                })
            }
        ),
        arb_message_query().prop_map(Request::QueryMessage),
        arb_string().prop_map(|msg_id| Request::CancelMessage(CancelMessageRequest { msg_id })),
        (arb_string(), any::<u32>())
            .prop_map(|(topic, queue_id)| { Request::QueueOffsets(QueueOffsetsRequest { topic, queue_id }) }),
        (arb_string(), any::<u32>(), any::<u64>()).prop_map(|(topic, queue_id, timestamp_ms)| {
            Request::OffsetByTimestamp(OffsetByTimestampRequest { topic, queue_id, timestamp_ms })
        }),
        (consumer_queue.clone(), any::<u64>(), member()).prop_map(
            |((consumer_group, topic, queue_id), offset, member)| {
                Request::CommitOffset(CommitOffsetRequest { consumer_group, topic, queue_id, offset, member })
            }
        ),
        (consumer_queue, member()).prop_map(|((consumer_group, topic, queue_id), member)| {
            Request::FetchOffset(FetchOffsetRequest { consumer_group, topic, queue_id, member })
        }),
        Just(Request::Status),
        arb_group_config().prop_map(Request::CreateGroup),
        (arb_string(), arb_string(), arb_filter(), proptest::option::of(arb_string()), arb_string()).prop_map(
            |(consumer_group, topic, filter, plugin, plugin_params)| {
                Request::Subscribe(SubscribeRequest { consumer_group, topic, filter, plugin, plugin_params })
            }
        ),
        (proptest::option::of(arb_string()), proptest::option::of(arb_string()), vec(any::<u8>(), 0..64)).prop_map(
            |(name, version, wasm)| {
                Request::PluginUpload(PluginUploadRequest {
                    name,
                    kind: Some("filter".into()),
                    version,
                    wasm: Bytes::from(wasm),
                })
            }
        ),
        Just(Request::PluginList),
        (arb_string(), any::<bool>())
            .prop_map(|(name, force)| Request::PluginRemove(PluginRemoveRequest { name, force })),
        arb_string().prop_map(|name| Request::PluginEnable(PluginEnableRequest { name })),
        (arb_string(), proptest::option::of(arb_string()))
            .prop_map(|(consumer_group, topic)| Request::GroupStats(GroupStatsRequest { consumer_group, topic })),
        arb_heartbeat_request().prop_map(Request::Heartbeat),
        (arb_string(), arb_string(), any::<u64>()).prop_map(|(consumer_group, member_id, session)| {
            Request::LeaveGroup(LeaveGroupRequest { consumer_group, member_id, session })
        }),
        (arb_string(), arb_member_ref(), arb_string(), queue_ids()).prop_map(
            |(consumer_group, member, topic, queue_ids)| {
                Request::LockQueues(LockQueuesRequest { consumer_group, member, topic, queue_ids })
            }
        ),
        (arb_string(), arb_member_ref(), arb_string(), queue_ids()).prop_map(
            |(consumer_group, member, topic, queue_ids)| {
                Request::UnlockQueues(UnlockQueuesRequest { consumer_group, member, topic, queue_ids })
            }
        ),
        Just(Request::ListGroups),
        arb_string().prop_map(|consumer_group| Request::DescribeGroup(DescribeGroupRequest { consumer_group })),
        (arb_string(), proptest::option::of(arb_string()))
            .prop_map(|(consumer_group, topic)| Request::GroupLag(GroupLagRequest { consumer_group, topic })),
        (arb_string(), arb_string(), arb_offset_target()).prop_map(|(consumer_group, topic, to)| {
            Request::ResetOffset(ResetOffsetRequest { consumer_group, topic, to })
        }),
        arb_retry_request(),
    ]
}

/// Any request of the retry family (nack, dead letters, group policy).
pub(crate) fn arb_retry_request() -> impl Strategy<Value = Request> {
    let change_plugin = prop_oneof![
        Just(Change::Keep),
        Just(Change::Clear),
        (arb_string(), arb_string()).prop_map(|(plugin, params)| Change::Set(PolicyPlugin { plugin, params })),
    ];
    let change_limit = prop_oneof![Just(Change::Keep), Just(Change::Clear), any::<u32>().prop_map(Change::Set)];
    prop_oneof![
        (arb_string(), arb_string(), arb_string(), any::<Option<u32>>()).prop_map(
            |(consumer_group, msg_id, reason, in_place_attempts)| {
                Request::Nack(NackRequest { consumer_group, msg_id, reason, in_place_attempts })
            }
        ),
        (arb_string(), proptest::option::of(arb_string()), any::<u64>(), any::<u32>()).prop_map(
            |(consumer_group, msg_id, from_offset, max_messages)| {
                Request::DlqList(DlqListRequest { consumer_group, msg_id, from_offset, max_messages })
            }
        ),
        (arb_string(), vec(arb_string(), 0..3))
            .prop_map(|(consumer_group, msg_ids)| Request::DlqResend(DlqResendRequest { consumer_group, msg_ids })),
        (arb_string(), change_plugin, change_limit).prop_map(|(consumer_group, plugin, max_reconsume_times)| {
            Request::SetGroupPolicy(SetGroupPolicyRequest { consumer_group, plugin, max_reconsume_times })
        }),
    ]
}

/// Any group retry policy.
pub(crate) fn arb_retry_policy_info() -> impl Strategy<Value = RetryPolicyInfo> {
    let plugin = (arb_string(), arb_string()).prop_map(|(plugin, params)| PolicyPlugin { plugin, params });
    (proptest::option::of(plugin), any::<u32>(), any::<bool>(), any::<[u64; 9]>()).prop_map(
        |(plugin, max_reconsume_times, group_limit, n)| RetryPolicyInfo {
            plugin,
            max_reconsume_times,
            group_limit,
            stats: RetryStats {
                failures: n[0],
                retries: n[1],
                dead_letters: n[2],
                discards: n[3],
                fallbacks: n[4],
                policy_calls: n[5],
                policy_errors: n[6],
                policy_call_nanos: n[7],
                resent: n[8],
            },
        },
    )
}

/// Any response of the retry family.
pub(crate) fn arb_retry_response() -> impl Strategy<Value = Response> {
    let decision = prop_oneof![
        any::<u64>().prop_map(|delay_ms| NackDecision::Retry { delay_ms }),
        Just(NackDecision::DeadLetter),
        Just(NackDecision::Discard),
    ];
    let dead_letter = (arb_stored_message(), (arb_string(), arb_string(), arb_string()), any::<bool>()).prop_map(
        |(message, (original_topic, original_msg_id, last_reason), resent)| DeadLetter {
            message,
            original_topic,
            original_msg_id,
            last_reason,
            resent,
        },
    );
    let outcome = prop_oneof![
        arb_string().prop_map(|new_msg_id| ResendOutcome::Resent { new_msg_id }),
        Just(ResendOutcome::AlreadyResent),
        arb_string().prop_map(|detail| ResendOutcome::NotFound { detail }),
    ];
    let result = (arb_string(), arb_string(), outcome).prop_map(|(msg_id, original_topic, outcome)| ResendResult {
        msg_id,
        original_topic,
        outcome,
    });
    prop_oneof![
        arb_retry_policy_info().prop_map(Response::SetGroupPolicy),
        (decision, any::<u32>(), arb_string(), arb_string()).prop_map(
            |(decision, reconsume_times, stored_msg_id, decided_by)| {
                Response::Nack(NackResponse { decision, reconsume_times, stored_msg_id, decided_by })
            }
        ),
        (vec(dead_letter, 0..3), any::<u64>())
            .prop_map(|(entries, next_offset)| Response::DlqList(DlqListResponse { entries, next_offset })),
        vec(result, 0..3).prop_map(|results| Response::DlqResend(DlqResendResponse { results })),
    ]
}

/// Any response, errors included.
pub(crate) fn arb_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        arb_topic_config().prop_map(Response::CreateTopic),
        arb_topic_config().prop_map(Response::UpdateTopic),
        Just(Response::DeleteTopic),
        vec(arb_topic_config(), 0..3).prop_map(|topics| Response::ListTopics(ListTopicsResponse { topics })),
        vec(arb_send_result(), 0..3).prop_map(|results| Response::Send(SendResponse { results })),
        arb_pull_response().prop_map(Response::Pull),
        vec(arb_stored_message(), 0..3).prop_map(|messages| Response::QueryMessage(QueryMessageResponse { messages })),
        (arb_string(), any::<u64>()).prop_map(|(topic, deliver_at_ms)| {
            Response::CancelMessage(CancelMessageResponse { topic, deliver_at_ms })
        }),
        any::<[u64; 2]>().prop_map(|[min_offset, max_offset]| {
            Response::QueueOffsets(QueueOffsetsResponse { min_offset, max_offset })
        }),
        any::<u64>().prop_map(|offset| Response::OffsetByTimestamp(OffsetByTimestampResponse { offset })),
        Just(Response::CommitOffset),
        any::<Option<u64>>().prop_map(|offset| Response::FetchOffset(FetchOffsetResponse { offset })),
        arb_broker_status().prop_map(|status| Response::Status(Box::new(status))),
        arb_group_config().prop_map(Response::CreateGroup),
        any::<u64>().prop_map(|version| Response::Subscribe(SubscribeResponse { version })),
        vec(arb_subscription_stats(), 0..3)
            .prop_map(|subscriptions| Response::GroupStats(GroupStatsResponse { subscriptions })),
        arb_plugin_info().prop_map(Response::PluginUpload),
        vec(arb_plugin_info(), 0..3).prop_map(|plugins| Response::PluginList(PluginListResponse { plugins })),
        Just(Response::PluginRemove),
        any::<u32>().prop_map(|enabled| Response::PluginEnable(PluginEnableResponse { enabled })),
        arb_heartbeat_response().prop_map(Response::Heartbeat),
        Just(Response::LeaveGroup),
        (vec(any::<u32>(), 0..4), any::<u32>())
            .prop_map(|(locked, expires_in_ms)| Response::LockQueues(LockQueuesResponse { locked, expires_in_ms })),
        Just(Response::UnlockQueues),
        vec(arb_group_summary(), 0..3).prop_map(|groups| Response::ListGroups(ListGroupsResponse { groups })),
        arb_group_description().prop_map(Response::DescribeGroup),
        vec(arb_queue_lag(), 0..3).prop_map(|queues| Response::GroupLag(GroupLagResponse { queues })),
        arb_reset_offset_response().prop_map(Response::ResetOffset),
        arb_retry_response(),
        arb_error_response().prop_map(Response::Error),
    ]
}
