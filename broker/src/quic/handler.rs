//! One decoded [`Request`] in, one answer out: decode the wire types into the
//! core's, call the [`Core`], encode what it returns. No state lives here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use weir_protocol::{
    BrokerStatus, CancelMessageResponse, DlqListResponse, DlqResendResponse, ErrorCode, ErrorResponse,
    FetchOffsetResponse, GroupConfig, GroupLagResponse, GroupStatsResponse, ListGroupsResponse, ListTopicsResponse,
    LockQueuesResponse, MessageQuery, OffsetByTimestampResponse, PluginEnableResponse, PluginListResponse, PullRequest,
    QueryMessageResponse, QueueOffset, QueueOffsetsResponse, Request, ResetOffsetResponse, Response, SubscribeResponse,
};

use super::convert::{self, error_response};
use super::page;
use crate::core::{Core, CoreError, MemberRef, Nack, PullArgs};

/// What a request is answered with.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "one per request, moved once: a box would only add an allocation")]
pub enum Reply {
    /// A response to encode.
    Response(Response),
    /// A response frame already encoded (a pull page, written from the records).
    Frame(bytes::Bytes),
}

/// Answers one request from `peer`; `connections` is the door's open connection count.
pub async fn handle(core: &Arc<Core>, request: Request, peer: SocketAddr, connections: u32) -> Reply {
    if let Request::Pull(req) = request {
        return match pull(core, req).await {
            Ok(frame) => Reply::Frame(frame),
            Err(err) => Reply::Response(Response::Error(err)),
        };
    }
    let answer = match answer(core, request, peer, connections).await {
        Ok(response) => response,
        Err(err) => Response::Error(error_response(&err)),
    };
    Reply::Response(answer)
}

async fn answer(core: &Arc<Core>, request: Request, peer: SocketAddr, connections: u32) -> Result<Response, CoreError> {
    Ok(match request {
        Request::Pull(_) => return Err(CoreError::Internal("a pull is answered with its page frame".into())),
        Request::CreateTopic(config) => {
            let (name, topic) = convert::topic(config);
            let created = core.create_topic(name.clone(), topic).await?;
            Response::CreateTopic(convert::topic_config(name, created))
        }
        Request::UpdateTopic(config) => {
            let (name, topic) = convert::topic(config);
            let updated = core.update_topic(name.clone(), topic).await?;
            Response::UpdateTopic(convert::topic_config(name, updated))
        }
        Request::DeleteTopic(req) => {
            core.delete_topic(req.topic).await?;
            Response::DeleteTopic
        }
        Request::ListTopics(req) => {
            let topics = core.list_topics(req.include_system);
            let topics = topics.into_iter().map(|(name, topic)| convert::topic_config(name, topic)).collect();
            Response::ListTopics(ListTopicsResponse { topics })
        }
        Request::Send(req) => {
            let messages = req.messages.into_iter().map(convert::new_message).collect();
            Response::Send(convert::send_response(core.send(messages, peer).await?))
        }
        Request::QueryMessage(query) => {
            let records = match query {
                MessageQuery::ById { msg_id } => vec![core.message_by_id(&msg_id)?],
                MessageQuery::ByKey { topic, key, max_results } => core.messages_by_key(&topic, &key, max_results)?,
            };
            let messages = records.iter().map(|record| page::stored_message(core.store_id(), record)).collect();
            Response::QueryMessage(QueryMessageResponse { messages })
        }
        Request::CancelMessage(req) => {
            let cancelled = core.cancel_delayed(req.msg_id).await?;
            Response::CancelMessage(CancelMessageResponse {
                topic: cancelled.topic,
                deliver_at_ms: cancelled.deliver_at_ms,
            })
        }
        Request::QueueOffsets(req) => {
            let (min_offset, max_offset) = core.queue_offsets(&req.topic, req.queue_id)?;
            Response::QueueOffsets(QueueOffsetsResponse { min_offset, max_offset })
        }
        Request::OffsetByTimestamp(req) => {
            let offset = core.offset_at_time(&req.topic, req.queue_id, req.timestamp_ms)?;
            Response::OffsetByTimestamp(OffsetByTimestampResponse { offset })
        }
        Request::CommitOffset(req) => {
            let member = convert::member_ref(req.member);
            core.commit_offset(&req.consumer_group, &req.topic, req.queue_id, req.offset, member.as_ref()).await?;
            Response::CommitOffset
        }
        Request::FetchOffset(req) => {
            let member = convert::member_ref(req.member);
            let offset = core.fetch_offset(&req.consumer_group, &req.topic, req.queue_id, member.as_ref());
            Response::FetchOffset(FetchOffsetResponse { offset })
        }
        Request::Status => Response::Status(Box::new(status(core, connections))),
        Request::CreateGroup(group) => {
            let (shadow, strategy) =
                core.create_group(group.name.clone(), group.shadow, group.strategy.as_deref()).await?;
            Response::CreateGroup(GroupConfig {
                name: group.name,
                shadow,
                strategy: Some(strategy.as_str().to_owned()),
            })
        }
        Request::Heartbeat(req) => {
            let view = core.heartbeat(convert::heartbeat(req, peer)?).await?;
            Response::Heartbeat(convert::heartbeat_response(view, core.membership_timings()))
        }
        Request::LeaveGroup(req) => {
            core.leave_group(&req.consumer_group, &req.member_id, req.session)?;
            Response::LeaveGroup
        }
        Request::LockQueues(req) => {
            let member = MemberRef { member_id: req.member.member_id, generation: req.member.generation };
            let (locked, expiry) = core.lock_queues(&req.consumer_group, &member, &req.topic, &req.queue_ids)?;
            let expires_in_ms = u32::try_from(expiry.as_millis()).unwrap_or(u32::MAX);
            Response::LockQueues(LockQueuesResponse { locked, expires_in_ms })
        }
        Request::UnlockQueues(req) => {
            let member = MemberRef { member_id: req.member.member_id, generation: req.member.generation };
            core.unlock_queues(&req.consumer_group, &member, &req.topic, &req.queue_ids)?;
            Response::UnlockQueues
        }
        Request::ListGroups => Response::ListGroups(ListGroupsResponse {
            groups: core.list_groups().iter().map(convert::group_summary).collect(),
        }),
        Request::DescribeGroup(req) => {
            Response::DescribeGroup(convert::group_description(core.describe_group(&req.consumer_group)?))
        }
        Request::GroupLag(req) => {
            let lags = core.group_lag(&req.consumer_group, req.topic.as_deref())?;
            Response::GroupLag(GroupLagResponse { queues: lags.into_iter().map(convert::queue_lag).collect() })
        }
        Request::ResetOffset(req) => {
            let to = convert::offset_target(req.to);
            let (generation, offsets) = core.reset_offsets(&req.consumer_group, &req.topic, to).await?;
            let queues = offsets.into_iter().map(|(queue_id, offset)| QueueOffset { queue_id, offset }).collect();
            Response::ResetOffset(ResetOffsetResponse { generation, queues })
        }
        Request::Subscribe(req) => {
            let expression = convert::expression(req.filter)?;
            let plugin = req.plugin.map(|name| (name, req.plugin_params));
            let version = core.subscribe(req.consumer_group, req.topic, expression, plugin).await?;
            Response::Subscribe(SubscribeResponse { version })
        }
        Request::GroupStats(req) => {
            let subscriptions = core.subscriptions(Some(&req.consumer_group), req.topic.as_deref());
            let subscriptions = subscriptions.into_iter().map(convert::subscription_stats).collect();
            Response::GroupStats(GroupStatsResponse { subscriptions })
        }
        Request::PluginUpload(req) => {
            let kind = match req.kind.as_deref() {
                None => None,
                Some(kind) => Some(kind.parse().map_err(|err| CoreError::Invalid(format!("{err}")))?),
            };
            let info = core.upload_plugin(req.wasm, req.name, kind, req.version).await?;
            let policy = core.policy_use(&info.name);
            Response::PluginUpload(convert::plugin_info(info, policy))
        }
        Request::PluginList => Response::PluginList(PluginListResponse {
            plugins: core
                .plugins()
                .into_iter()
                .map(|info| {
                    let policy = core.policy_use(&info.name);
                    convert::plugin_info(info, policy)
                })
                .collect(),
        }),
        Request::PluginRemove(req) => {
            core.remove_plugin(req.name, req.force).await?;
            Response::PluginRemove
        }
        Request::PluginEnable(req) => {
            let enabled = core.enable_plugin(req.name).await?;
            Response::PluginEnable(PluginEnableResponse { enabled: u32::try_from(enabled).unwrap_or(u32::MAX) })
        }
        Request::SetGroupPolicy(req) => {
            let plugin = convert::setting(req.plugin, |p| (p.plugin, p.params));
            let limit = convert::setting(req.max_reconsume_times, |n| n);
            let info = core.set_group_policy(req.consumer_group, plugin, limit).await?;
            Response::SetGroupPolicy(convert::retry_policy_info(info))
        }
        Request::Nack(req) => {
            let nack = Nack {
                group: req.consumer_group,
                msg_id: req.msg_id,
                reason: req.reason,
                in_place_attempts: req.in_place_attempts,
            };
            Response::Nack(convert::nack_response(core.nack(nack).await?))
        }
        Request::DlqList(req) => {
            let page = core.dead_letters(req.consumer_group, req.msg_id, req.from_offset, req.max_messages).await?;
            let store_id = core.store_id();
            Response::DlqList(DlqListResponse {
                entries: page.entries.iter().map(|entry| convert::dead_letter(store_id, entry)).collect(),
                next_offset: page.next_offset,
            })
        }
        Request::DlqResend(req) => {
            let results = core.resend_dead_letters(req.consumer_group, req.msg_ids).await?;
            Response::DlqResend(DlqResendResponse {
                results: results.into_iter().map(convert::resend_result).collect(),
            })
        }
    })
}

/// A pull's response frame, encoded straight from the page's records.
async fn pull(core: &Arc<Core>, req: PullRequest) -> Result<bytes::Bytes, ErrorResponse> {
    let max = req.max_messages.clamp(1, core.config().max_pull_messages) as usize;
    let budget = (weir_protocol::DEFAULT_MAX_PAYLOAD_LEN as usize - 64).saturating_sub(max * page::WIRE_OVERHEAD);
    let args = PullArgs {
        group: req.consumer_group,
        topic: req.topic,
        queue_id: req.queue_id,
        offset: req.offset,
        max_messages: req.max_messages,
        max_bytes: budget,
        max_wait: Duration::from_millis(req.max_wait_ms.into()),
        filter: convert::pull_filter(req.filter),
        member: convert::member_ref(req.member),
    };
    let page = core.pull(args).await.map_err(|err| error_response(&err))?;
    page::encode(page, core.store_id())
        .map_err(|err| ErrorResponse::new(ErrorCode::Internal, format!("response cannot be encoded: {err}")))
}

fn status(core: &Core, connections: u32) -> BrokerStatus {
    let status = core.status();
    let mut wire = BrokerStatus::default();
    wire.version = env!("CARGO_PKG_VERSION").to_owned();
    wire.uptime_ms = status.uptime.as_millis() as u64;
    wire.data_dir = core.config().data_dir.display().to_string();
    wire.flush_mode = convert::flush_mode(status.flush);
    wire.topic_count = u32::try_from(status.topic_count).unwrap_or(u32::MAX);
    wire.commitlog_size_bytes = status.store.commitlog_bytes;
    wire.commitlog_max_offset = status.store.max_offset;
    wire.flushes = status.store.flushes;
    wire.connections = connections;
    wire.subscriptions = status.subscriptions.into_iter().map(convert::subscription_stats).collect();
    wire.store = convert::store_status(&status.store);
    wire.timers = convert::timer_status(&status.timers);
    wire
}
