//! [`Client`]: the shared handle on a broker connection, and the admin calls.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use weir_protocol::{
    BrokerStatus, CancelMessageRequest, CancelMessageResponse, Change, CommitOffsetRequest, DeleteTopicRequest,
    DescribeGroupRequest, DlqListRequest, DlqListResponse, DlqResendRequest, DlqResendResponse, ErrorCode,
    FetchOffsetRequest, GroupConfig, GroupDescription, GroupLagRequest, GroupStatsRequest, GroupSummary,
    ListTopicsRequest, MessageQuery, NackRequest, NackResponse, OffsetByTimestampRequest, OffsetTarget,
    PluginEnableRequest, PluginInfo, PluginRemoveRequest, PluginUploadRequest, PolicyPlugin, PullRequest, PullResponse,
    QueueLag, QueueOffsetsRequest, Request, ResetOffsetRequest, ResetOffsetResponse, Response, RetryPolicyInfo,
    SendResult, SetGroupPolicyRequest, StoredMessage, SubscribeRequest, SubscriptionStats, TopicConfig,
};

use crate::config::ClientConfig;
use crate::connection::{Connection, EncodedRequest};
use crate::error::Error;
use crate::subscription::Subscription;

/// A connection to one broker, shared by producers and consumers.
///
/// Cloning is cheap: clones share the QUIC connection, on which every request gets its
/// own stream. A lost connection is redialed by the next request.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connection: Connection,
    config: ClientConfig,
}

impl Client {
    /// Connects to the broker in `config`, trusting the configured certificates.
    ///
    /// Fails when the CA cannot be loaded, the address cannot be resolved, or no broker
    /// completes the QUIC handshake within the connect timeout.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        let connection = Connection::open(&config).await?;
        Ok(Client { inner: Arc::new(Inner { connection, config }) })
    }

    /// The configuration this client was connected with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Closes the connection and waits until the broker has been told. Requests made
    /// afterwards dial a new connection.
    pub async fn close(&self) {
        self.inner.connection.close().await;
    }

    /// Creates a topic; returns it as the broker stored it.
    pub async fn create_topic(&self, topic: TopicConfig) -> Result<TopicConfig, Error> {
        match self.call(&Request::CreateTopic(topic)).await? {
            Response::CreateTopic(topic) => Ok(topic),
            other => Err(unexpected(&other)),
        }
    }

    /// Replaces an existing topic's queue counts and permissions; returns the new
    /// settings.
    pub async fn update_topic(&self, topic: TopicConfig) -> Result<TopicConfig, Error> {
        match self.call(&Request::UpdateTopic(topic)).await? {
            Response::UpdateTopic(topic) => Ok(topic),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), Error> {
        match self.call(&Request::DeleteTopic(DeleteTopicRequest { topic: topic.to_owned() })).await? {
            Response::DeleteTopic => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The broker's topics; with `include_system`, also the retry, dead-letter and
    /// other system topics.
    pub async fn list_topics(&self, include_system: bool) -> Result<Vec<TopicConfig>, Error> {
        match self.call(&Request::ListTopics(ListTopicsRequest { include_system })).await? {
            Response::ListTopics(list) => Ok(list.topics),
            other => Err(unexpected(&other)),
        }
    }

    /// One topic's settings; [`ErrorCode::UnknownTopic`] when the broker has no such
    /// topic.
    pub async fn topic(&self, topic: &str) -> Result<TopicConfig, Error> {
        self.list_topics(true).await?.into_iter().find(|config| config.name == topic).ok_or_else(|| Error::Broker {
            code: ErrorCode::UnknownTopic,
            message: format!("topic `{topic}` is not in the broker's topic list"),
        })
    }

    /// The offsets of the messages a queue holds: `min..max`, where `max` is the offset
    /// the next message will get.
    pub async fn queue_offsets(&self, topic: &str, queue_id: u32) -> Result<Range<u64>, Error> {
        let request = QueueOffsetsRequest { topic: topic.to_owned(), queue_id };
        match self.call(&Request::QueueOffsets(request)).await? {
            Response::QueueOffsets(offsets) => Ok(offsets.min_offset..offsets.max_offset),
            other => Err(unexpected(&other)),
        }
    }

    /// The first queue offset whose message was stored at or after `timestamp_ms` (Unix
    /// milliseconds); the queue's max offset when every message is older.
    pub async fn offset_by_timestamp(&self, topic: &str, queue_id: u32, timestamp_ms: u64) -> Result<u64, Error> {
        let request = OffsetByTimestampRequest { topic: topic.to_owned(), queue_id, timestamp_ms };
        match self.call(&Request::OffsetByTimestamp(request)).await? {
            Response::OffsetByTimestamp(response) => Ok(response.offset),
            other => Err(unexpected(&other)),
        }
    }

    /// The message with id `msg_id` (as returned by a send or pull);
    /// [`ErrorCode::NotFound`] when there is none.
    pub async fn message_by_id(&self, msg_id: &str) -> Result<StoredMessage, Error> {
        let messages = self.query(MessageQuery::ById { msg_id: msg_id.to_owned() }).await?;
        messages.into_iter().next().ok_or_else(|| Error::Broker {
            code: ErrorCode::NotFound,
            message: format!("the broker returned no message for id `{msg_id}`"),
        })
    }

    /// Messages of `topic` carrying `key`, newest first, at most `max_results`.
    pub async fn messages_by_key(&self, topic: &str, key: &str, max_results: u32) -> Result<Vec<StoredMessage>, Error> {
        self.query(MessageQuery::ByKey { topic: topic.to_owned(), key: key.to_owned(), max_results }).await
    }

    /// Cancels a pending delayed message by the id its send returned: it is never
    /// delivered. Answers the topic it was for and when it was due;
    /// [`ErrorCode::NotFound`] when the id is not a pending delayed message's (unknown,
    /// not delayed, or already delivered).
    pub async fn cancel_message(&self, msg_id: &str) -> Result<CancelMessageResponse, Error> {
        match self.call(&Request::CancelMessage(CancelMessageRequest { msg_id: msg_id.to_owned() })).await? {
            Response::CancelMessage(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    async fn query(&self, query: MessageQuery) -> Result<Vec<StoredMessage>, Error> {
        match self.call(&Request::QueryMessage(query)).await? {
            Response::QueryMessage(response) => Ok(response.messages),
            other => Err(unexpected(&other)),
        }
    }

    /// Records that `group` has processed `topic`'s queue `queue_id` up to, not
    /// including, `offset`.
    pub async fn commit_offset(&self, group: &str, topic: &str, queue_id: u32, offset: u64) -> Result<(), Error> {
        let request = CommitOffsetRequest {
            consumer_group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id,
            offset,
            member: None,
        };
        match self.call(&Request::CommitOffset(request)).await? {
            Response::CommitOffset => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The offset `group` last committed for the queue, `None` if it never committed one.
    pub async fn fetch_offset(&self, group: &str, topic: &str, queue_id: u32) -> Result<Option<u64>, Error> {
        let request =
            FetchOffsetRequest { consumer_group: group.to_owned(), topic: topic.to_owned(), queue_id, member: None };
        match self.call(&Request::FetchOffset(request)).await? {
            Response::FetchOffset(response) => Ok(response.offset),
            other => Err(unexpected(&other)),
        }
    }

    /// Declares consumer group `group` a shadow group (`true`: it receives only shadow
    /// traffic) or a production group (`false`, the default of every group), keeping its
    /// assignment strategy.
    pub async fn create_group(&self, group: &str, shadow: bool) -> Result<GroupConfig, Error> {
        self.declare_group(GroupConfig { name: group.to_owned(), shadow, strategy: None }).await
    }

    /// Declares a consumer group with every setting CreateGroup carries: its role
    /// (`shadow`) and, when `strategy` is `Some`, its assignment strategy (`average`,
    /// `round-robin`, `consistent-hash`, `sticky`; live members are rebalanced). Returns
    /// the group as stored, with the strategy now in force.
    ///
    /// The role is always set (a declaration has no "keep the role"), so changing only
    /// the strategy of a shadow group means passing `shadow: true`. A strategy the broker
    /// does not know is refused with [`ErrorCode::BadRequest`].
    pub async fn declare_group(&self, config: GroupConfig) -> Result<GroupConfig, Error> {
        match self.call(&Request::CreateGroup(config)).await? {
            Response::CreateGroup(group) => Ok(group),
            other => Err(unexpected(&other)),
        }
    }

    /// Every consumer group the broker knows (declared, subscribed or with live
    /// members), by name, with its generation, strategy, mode and counts.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>, Error> {
        match self.call(&Request::ListGroups).await? {
            Response::ListGroups(response) => Ok(response.groups),
            other => Err(unexpected(&other)),
        }
    }

    /// One consumer group in detail: its live members and their queues, its
    /// subscriptions, and the members recently refused for a differing subscription.
    /// [`ErrorCode::NotFound`] when the broker knows no such group.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, Error> {
        let request = DescribeGroupRequest { consumer_group: group.to_owned() };
        match self.call(&Request::DescribeGroup(request)).await? {
            Response::DescribeGroup(description) => Ok(description),
            other => Err(unexpected(&other)),
        }
    }

    /// How far `group` is behind, per queue of `topic` or (`None`) of every topic it
    /// subscribes to, by topic and queue id; in a broadcasting group one entry per
    /// member and queue. A group without subscriptions has no entries unless `topic`
    /// is given.
    pub async fn group_lag(&self, group: &str, topic: Option<&str>) -> Result<Vec<QueueLag>, Error> {
        let request = GroupLagRequest { consumer_group: group.to_owned(), topic: topic.map(str::to_owned) };
        match self.call(&Request::GroupLag(request)).await? {
            Response::GroupLag(response) => Ok(response.queues),
            other => Err(unexpected(&other)),
        }
    }

    /// Moves `group`'s committed offsets of every queue of `topic` (every member's, in a
    /// broadcasting group) to `to`, and fences the members holding those queues until
    /// they heartbeat and fetch the new offsets. Returns the group's new generation and
    /// each queue's offset. [`ErrorCode::UnknownTopic`] when there is no such topic.
    pub async fn reset_offset(&self, group: &str, topic: &str, to: OffsetTarget) -> Result<ResetOffsetResponse, Error> {
        let request = ResetOffsetRequest { consumer_group: group.to_owned(), topic: topic.to_owned(), to };
        match self.call(&Request::ResetOffset(request)).await? {
            Response::ResetOffset(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Registers `subscription` as `group`'s subscription to `topic` (declaring the group
    /// shadow first if the subscription says so); returns the subscription's version. A bad
    /// expression fails with [`ErrorCode::InvalidFilter`](crate::ErrorCode::InvalidFilter).
    pub async fn subscribe(&self, group: &str, topic: &str, subscription: &Subscription) -> Result<u64, Error> {
        if subscription.is_shadow() {
            self.create_group(group, true).await?;
        }
        let request = SubscribeRequest {
            consumer_group: group.to_owned(),
            topic: topic.to_owned(),
            filter: subscription.filter().clone(),
            plugin: subscription.plugin_ref().map(|(name, _)| name.to_owned()),
            plugin_params: subscription.plugin_ref().map(|(_, params)| params.to_owned()).unwrap_or_default(),
        };
        match self.call(&Request::Subscribe(request)).await? {
            Response::Subscribe(response) => Ok(response.version),
            other => Err(unexpected(&other)),
        }
    }

    /// Reports that `group` failed to consume message `msg_id` (its id as pulled: a retry
    /// copy's own id), with a free-text `reason`. Answered once the broker has acted: the
    /// retry or dead-letter copy is stored (durably, under sync flush), so the delivery
    /// may then be committed past. An orderly consumer, which redelivers in place, passes
    /// the redeliveries it made so far as `in_place_attempts`: the broker then only
    /// decides (and stores a dead-letter copy when that is the decision).
    /// [`ErrorCode::NotFound`] when there is no such message; [`ErrorCode::BadRequest`]
    /// when it is of a topic the group does not consume.
    pub async fn nack(
        &self,
        group: &str,
        msg_id: &str,
        reason: &str,
        in_place_attempts: Option<u32>,
    ) -> Result<NackResponse, Error> {
        let request = NackRequest {
            consumer_group: group.to_owned(),
            msg_id: msg_id.to_owned(),
            reason: reason.to_owned(),
            in_place_attempts,
        };
        match self.call(&Request::Nack(request)).await? {
            Response::Nack(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Up to `max` of `group`'s dead letters (the messages in `%DLQ%<group>`), oldest
    /// first from dead-letter queue offset `from_offset`, or only the one with id
    /// `msg_id` ([`ErrorCode::NotFound`] when it is not one). The response's
    /// `next_offset` is where the next page starts.
    pub async fn dlq_list(
        &self,
        group: &str,
        msg_id: Option<&str>,
        from_offset: u64,
        max: u32,
    ) -> Result<DlqListResponse, Error> {
        let request = DlqListRequest {
            consumer_group: group.to_owned(),
            msg_id: msg_id.map(str::to_owned),
            from_offset,
            max_messages: max,
        };
        match self.call(&Request::DlqList(request)).await? {
            Response::DlqList(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `group`'s dead letters `msg_ids` (their ids in the dead-letter topic) back
    /// to their original topics with their redelivery count reset; one result per id, in
    /// order. A dead letter is resent once: asking again answers `AlreadyResent`.
    pub async fn dlq_resend(&self, group: &str, msg_ids: Vec<String>) -> Result<DlqResendResponse, Error> {
        let request = DlqResendRequest { consumer_group: group.to_owned(), msg_ids };
        match self.call(&Request::DlqResend(request)).await? {
            Response::DlqResend(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Changes `group`'s retry policy: its dlq-policy plugin and its own limit of
    /// redeliveries before the dead-letter topic ([`Change::Clear`] goes back to the
    /// broker's `max_reconsume_times`). Returns the policy now in force and what the
    /// group's failures became. [`ErrorCode::NotFound`] for an unknown plugin,
    /// [`ErrorCode::InvalidPlugin`] for one that is not a dlq-policy plugin.
    pub async fn set_group_policy(
        &self,
        group: &str,
        plugin: Change<PolicyPlugin>,
        max_reconsume_times: Change<u32>,
    ) -> Result<RetryPolicyInfo, Error> {
        let request = SetGroupPolicyRequest { consumer_group: group.to_owned(), plugin, max_reconsume_times };
        match self.call(&Request::SetGroupPolicy(request)).await? {
            Response::SetGroupPolicy(info) => Ok(info),
            other => Err(unexpected(&other)),
        }
    }

    /// The filter statistics of `group`'s subscriptions, of one topic or all.
    pub async fn group_stats(&self, group: &str, topic: Option<&str>) -> Result<Vec<SubscriptionStats>, Error> {
        let request = GroupStatsRequest { consumer_group: group.to_owned(), topic: topic.map(str::to_owned) };
        match self.call(&Request::GroupStats(request)).await? {
            Response::GroupStats(response) => Ok(response.subscriptions),
            other => Err(unexpected(&other)),
        }
    }

    /// Uploads a WebAssembly plugin module; name, kind (`filter` or `dlq-policy`) and
    /// version default to its manifest. An existing name is replaced live.
    pub async fn upload_plugin(
        &self,
        wasm: Vec<u8>,
        name: Option<&str>,
        kind: Option<&str>,
        version: Option<&str>,
    ) -> Result<PluginInfo, Error> {
        let request = PluginUploadRequest {
            name: name.map(str::to_owned),
            kind: kind.map(str::to_owned),
            version: version.map(str::to_owned),
            wasm: wasm.into(),
        };
        match self.call(&Request::PluginUpload(request)).await? {
            Response::PluginUpload(info) => Ok(info),
            other => Err(unexpected(&other)),
        }
    }

    /// Every plugin of the broker, with its state and call counters.
    pub async fn list_plugins(&self) -> Result<Vec<PluginInfo>, Error> {
        match self.call(&Request::PluginList).await? {
            Response::PluginList(response) => Ok(response.plugins),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes a plugin; refused while subscriptions use it unless `force`.
    pub async fn remove_plugin(&self, name: &str, force: bool) -> Result<(), Error> {
        match self.call(&Request::PluginRemove(PluginRemoveRequest { name: name.to_owned(), force })).await? {
            Response::PluginRemove => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Re-enables a plugin disabled after repeated failures; returns how many subscriptions.
    pub async fn enable_plugin(&self, name: &str) -> Result<u32, Error> {
        match self.call(&Request::PluginEnable(PluginEnableRequest { name: name.to_owned() })).await? {
            Response::PluginEnable(response) => Ok(response.enabled),
            other => Err(unexpected(&other)),
        }
    }

    /// The broker's status: version, uptime, data directory, flush mode, CommitLog size.
    pub async fn status(&self) -> Result<BrokerStatus, Error> {
        match self.call(&Request::Status).await? {
            Response::Status(status) => Ok(*status),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends an encoded `Send` request; one result per message, in order.
    pub(crate) async fn send(&self, request: &EncodedRequest) -> Result<Vec<SendResult>, Error> {
        match self.inner.connection.request(request, self.inner.config.request_timeout).await? {
            Response::Send(response) => Ok(response.results),
            other => Err(unexpected(&other)),
        }
    }

    /// Pulls, allowing the broker to hold the request for its long-polling wait on top of
    /// the request timeout.
    pub(crate) async fn pull(&self, request: PullRequest) -> Result<PullResponse, Error> {
        let timeout = self.inner.config.request_timeout + Duration::from_millis(request.max_wait_ms.into());
        let request = EncodedRequest::new(&Request::Pull(request))?;
        match self.inner.connection.request(&request, timeout).await? {
            Response::Pull(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends `request` and waits for its response within the request timeout.
    pub(crate) async fn call(&self, request: &Request) -> Result<Response, Error> {
        self.call_held(request, Duration::ZERO).await
    }

    /// [`call`](Self::call) for a request the broker may hold up to `hold` (a long poll).
    pub(crate) async fn call_held(&self, request: &Request, hold: Duration) -> Result<Response, Error> {
        let request = EncodedRequest::new(request)?;
        self.inner.connection.request(&request, self.inner.config.request_timeout + hold).await
    }
}

/// A successful response of another kind than the request's (error frames never get
/// here: the connection turns them into [`Error::Broker`]).
pub(crate) fn unexpected(response: &Response) -> Error {
    Error::UnexpectedResponse { response: response.kind() }
}
