//! Consumer-group membership: members join and stay with heartbeats, the broker assigns
//! them queues under a generation number, orderly members lock their queues, and
//! operators list, describe, measure and reset groups.

use crate::error::{DecodeError, EncodeError};
use crate::pull::FilterExpression;
use crate::retry::RetryPolicyInfo;
use crate::wire::{Reader, Wire, Writer};

/// How a group's members share its messages.
///
/// Format: `u8`: 0 clustering, 1 broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConsumeMode {
    /// Each queue is assigned to one member; the group keeps one offset per queue.
    #[default]
    Clustering = 0,
    /// Every member reads every queue; offsets are kept per member.
    Broadcasting = 1,
}

impl ConsumeMode {
    /// The mode's name in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumeMode::Clustering => "clustering",
            ConsumeMode::Broadcasting => "broadcasting",
        }
    }

    /// Writes the `u8`.
    fn encode(self, w: &mut Writer<'_>) {
        w.u8(self as u8);
    }

    /// Reads the `u8`; other values are invalid in `field`.
    fn decode(r: &mut Reader, field: &'static str) -> Result<Self, DecodeError> {
        match r.u8(field)? {
            0 => Ok(ConsumeMode::Clustering),
            1 => Ok(ConsumeMode::Broadcasting),
            value => Err(DecodeError::InvalidValue { field, value: value.into() }),
        }
    }
}

/// Which member a request comes from, and the group generation it has seen. The broker
/// checks it against its assignments (`NOT_ASSIGNED`, `UNKNOWN_MEMBER`).
///
/// Format: string member_id, `u64` generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// The member's id in its group.
    pub member_id: String,
    /// The group generation of the member's latest assignment.
    pub generation: u64,
}

impl Wire for MemberRef {
    const MIN_LEN: usize = 2 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("member.member_id", &self.member_id)?;
        w.u64(self.generation);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(MemberRef { member_id: r.str("member.member_id")?, generation: r.u64("member.generation")? })
    }
}

/// A member's subscription to one topic, as [`SubscribeRequest`](crate::SubscribeRequest)
/// registers it.
///
/// Format: string topic, [`FilterExpression`] (not `Subscribed`), option\<string\> plugin,
/// string plugin_params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The topic.
    pub topic: String,
    /// What the member selects.
    pub filter: FilterExpression,
    /// A filter plugin run on what `filter` lets through.
    pub plugin: Option<String>,
    /// The plugin's parameters (passed to its init; empty for none).
    pub plugin_params: String,
}

impl Wire for MemberSubscription {
    const MIN_LEN: usize = 2 + FilterExpression::MIN_LEN + 1 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("member_subscription.topic", &self.topic)?;
        self.filter.encode(w)?;
        w.opt_str("member_subscription.plugin", self.plugin.as_deref())?;
        w.str("member_subscription.plugin_params", &self.plugin_params)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(MemberSubscription {
            topic: r.str("member_subscription.topic")?,
            filter: FilterExpression::decode(r)?,
            plugin: r.opt_str("member_subscription.plugin")?,
            plugin_params: r.str("member_subscription.plugin_params")?,
        })
    }
}

/// One queue assigned to a member, and the generation since which it holds it (or since
/// its offset was reset).
///
/// Format: `u32` queue_id, `u64` since_generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignedQueue {
    /// The queue.
    pub queue_id: u32,
    /// The generation the member got the queue in, or the queue's offset was last reset
    /// in; requests with an older generation for this queue are `NOT_ASSIGNED`.
    pub since_generation: u64,
}

impl Wire for AssignedQueue {
    const MIN_LEN: usize = 4 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.queue_id);
        w.u64(self.since_generation);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(AssignedQueue {
            queue_id: r.u32("assigned_queue.queue_id")?,
            since_generation: r.u64("assigned_queue.since_generation")?,
        })
    }
}

/// A member's queues of one topic.
///
/// Format: string topic, list\<[`AssignedQueue`]\> queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicAssignment {
    /// The topic.
    pub topic: String,
    /// The queues, by queue id.
    pub queues: Vec<AssignedQueue>,
}

impl Wire for TopicAssignment {
    const MIN_LEN: usize = 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("topic_assignment.topic", &self.topic)?;
        w.list("topic_assignment.queues", &self.queues)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(TopicAssignment { topic: r.str("topic_assignment.topic")?, queues: r.list("topic_assignment.queues")? })
    }
}

/// Join or stay in a group; held while the generation equals `known_generation`.
/// Answered with the member's [`HeartbeatResponse`].
///
/// Format: string consumer_group, string member_id, `u64` session, `u8` [`ConsumeMode`]
/// mode, bool orderly, option\<string\> strategy, bool replace_subscriptions,
/// list\<[`MemberSubscription`]\> subscriptions, list\<[`TopicAssignment`]\> owned, `u64`
/// known_generation, `u32` max_wait_ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The member's id, chosen by the member and stable across its heartbeats.
    pub member_id: String,
    /// Random per member process start: another session with a live member's id is
    /// refused (`MEMBER_ID_IN_USE`).
    pub session: u64,
    /// How the member consumes.
    pub mode: ConsumeMode,
    /// The member consumes its queues in order, locking them ([`LockQueuesRequest`]).
    pub orderly: bool,
    /// Sets the group's strategy when given.
    pub strategy: Option<String>,
    /// Replaces the group's subscriptions with this member's (deliberately), instead of
    /// refusing a conflict.
    pub replace_subscriptions: bool,
    /// The member's subscriptions, one per topic.
    pub subscriptions: Vec<MemberSubscription>,
    /// Queues the member still holds (pulls or consumes): a queue moving away from it is
    /// handed to its new owner once the member no longer lists it.
    pub owned: Vec<TopicAssignment>,
    /// The generation the member knows (0: none). The broker answers at once when the
    /// group's generation differs, otherwise holds the request up to `max_wait_ms`.
    pub known_generation: u64,
    /// Longest time to hold the request while the generation is unchanged; 0 answers at once.
    pub max_wait_ms: u32,
}

impl Wire for HeartbeatRequest {
    const MIN_LEN: usize = 2 + 2 + 8 + 1 + 1 + 1 + 1 + 4 + 4 + 8 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("heartbeat.consumer_group", &self.consumer_group)?;
        w.str("heartbeat.member_id", &self.member_id)?;
        w.u64(self.session);
        self.mode.encode(w);
        w.bool(self.orderly);
        w.opt_str("heartbeat.strategy", self.strategy.as_deref())?;
        w.bool(self.replace_subscriptions);
        w.list("heartbeat.subscriptions", &self.subscriptions)?;
        w.list("heartbeat.owned", &self.owned)?;
        w.u64(self.known_generation);
        w.u32(self.max_wait_ms);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(HeartbeatRequest {
            consumer_group: r.str("heartbeat.consumer_group")?,
            member_id: r.str("heartbeat.member_id")?,
            session: r.u64("heartbeat.session")?,
            mode: ConsumeMode::decode(r, "heartbeat.mode")?,
            orderly: r.bool("heartbeat.orderly")?,
            strategy: r.opt_str("heartbeat.strategy")?,
            replace_subscriptions: r.bool("heartbeat.replace_subscriptions")?,
            subscriptions: r.list("heartbeat.subscriptions")?,
            owned: r.list("heartbeat.owned")?,
            known_generation: r.u64("heartbeat.known_generation")?,
            max_wait_ms: r.u32("heartbeat.max_wait_ms")?,
        })
    }
}

/// The member's view of the group after a heartbeat.
///
/// Format: `u64` generation, `u32` heartbeat_interval_ms, `u32` member_timeout_ms,
/// list\<[`TopicAssignment`]\> assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The group's current generation; bumped on every change of members, subscriptions
    /// or assignments.
    pub generation: u64,
    /// How often the member must heartbeat.
    pub heartbeat_interval_ms: u32,
    /// How long after its last heartbeat a silent member is removed.
    pub member_timeout_ms: u32,
    /// The member's queues in this generation, by topic.
    pub assignments: Vec<TopicAssignment>,
}

impl Wire for HeartbeatResponse {
    const MIN_LEN: usize = 8 + 4 + 4 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.generation);
        w.u32(self.heartbeat_interval_ms);
        w.u32(self.member_timeout_ms);
        w.list("heartbeat.assignments", &self.assignments)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(HeartbeatResponse {
            generation: r.u64("heartbeat.generation")?,
            heartbeat_interval_ms: r.u32("heartbeat.heartbeat_interval_ms")?,
            member_timeout_ms: r.u32("heartbeat.member_timeout_ms")?,
            assignments: r.list("heartbeat.assignments")?,
        })
    }
}

/// Leave a group at once, rather than expire: its queues go to the other members. The
/// broker answers with an empty response.
///
/// Format: string consumer_group, string member_id, `u64` session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The member leaving.
    pub member_id: String,
    /// The session it joined with.
    pub session: u64,
}

impl Wire for LeaveGroupRequest {
    const MIN_LEN: usize = 2 + 2 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("leave_group.consumer_group", &self.consumer_group)?;
        w.str("leave_group.member_id", &self.member_id)?;
        w.u64(self.session);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(LeaveGroupRequest {
            consumer_group: r.str("leave_group.consumer_group")?,
            member_id: r.str("leave_group.member_id")?,
            session: r.u64("leave_group.session")?,
        })
    }
}

/// Orderly consumption: lock queues for a member (broker-side locks with expiry).
/// Answered with the queues locked.
///
/// Format: string consumer_group, [`MemberRef`] member, string topic, list\<`u32`\>
/// queue_ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockQueuesRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The member locking.
    pub member: MemberRef,
    /// The topic.
    pub topic: String,
    /// The queues to lock (or whose locks to renew).
    pub queue_ids: Vec<u32>,
}

impl Wire for LockQueuesRequest {
    const MIN_LEN: usize = 2 + MemberRef::MIN_LEN + 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("lock_queues.consumer_group", &self.consumer_group)?;
        self.member.encode(w)?;
        w.str("lock_queues.topic", &self.topic)?;
        w.u32_list("lock_queues.queue_ids", &self.queue_ids)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(LockQueuesRequest {
            consumer_group: r.str("lock_queues.consumer_group")?,
            member: MemberRef::decode(r)?,
            topic: r.str("lock_queues.topic")?,
            queue_ids: r.u32_list("lock_queues.queue_ids")?,
        })
    }
}

/// The queues a [`LockQueuesRequest`] locked, and when the locks expire unless renewed.
///
/// Format: list\<`u32`\> locked, `u32` expires_in_ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockQueuesResponse {
    /// The requested queues the member now locks (newly or renewed), in request order.
    pub locked: Vec<u32>,
    /// Time until the locks expire unless renewed.
    pub expires_in_ms: u32,
}

impl Wire for LockQueuesResponse {
    const MIN_LEN: usize = 4 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32_list("lock_queues.locked", &self.locked)?;
        w.u32(self.expires_in_ms);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(LockQueuesResponse {
            locked: r.u32_list("lock_queues.locked")?,
            expires_in_ms: r.u32("lock_queues.expires_in_ms")?,
        })
    }
}

/// Release a member's queue locks, so the queues' next owner can lock them. The broker
/// answers with an empty response.
///
/// Format: string consumer_group, [`MemberRef`] member, string topic, list\<`u32`\>
/// queue_ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockQueuesRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The member unlocking.
    pub member: MemberRef,
    /// The topic.
    pub topic: String,
    /// The queues to unlock.
    pub queue_ids: Vec<u32>,
}

impl Wire for UnlockQueuesRequest {
    const MIN_LEN: usize = 2 + MemberRef::MIN_LEN + 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("unlock_queues.consumer_group", &self.consumer_group)?;
        self.member.encode(w)?;
        w.str("unlock_queues.topic", &self.topic)?;
        w.u32_list("unlock_queues.queue_ids", &self.queue_ids)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(UnlockQueuesRequest {
            consumer_group: r.str("unlock_queues.consumer_group")?,
            member: MemberRef::decode(r)?,
            topic: r.str("unlock_queues.topic")?,
            queue_ids: r.u32_list("unlock_queues.queue_ids")?,
        })
    }
}

/// One group in a [`ListGroupsResponse`].
///
/// Format: string name, `u64` generation, string strategy, `u8` [`ConsumeMode`] mode,
/// `u32` members, `u32` subscriptions, bool shadow, `u32` conflicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group's name.
    pub name: String,
    /// Its current generation.
    pub generation: u64,
    /// Its assignment strategy.
    pub strategy: String,
    /// Its consume mode.
    pub mode: ConsumeMode,
    /// Live members.
    pub members: u32,
    /// Subscribed topics.
    pub subscriptions: u32,
    /// It is a shadow group.
    pub shadow: bool,
    /// Recorded subscription conflicts ([`SubscriptionConflict`]).
    pub conflicts: u32,
}

impl Wire for GroupSummary {
    const MIN_LEN: usize = 2 + 8 + 2 + 1 + 4 + 4 + 1 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("group_summary.name", &self.name)?;
        w.u64(self.generation);
        w.str("group_summary.strategy", &self.strategy)?;
        self.mode.encode(w);
        w.u32(self.members);
        w.u32(self.subscriptions);
        w.bool(self.shadow);
        w.u32(self.conflicts);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(GroupSummary {
            name: r.str("group_summary.name")?,
            generation: r.u64("group_summary.generation")?,
            strategy: r.str("group_summary.strategy")?,
            mode: ConsumeMode::decode(r, "group_summary.mode")?,
            members: r.u32("group_summary.members")?,
            subscriptions: r.u32("group_summary.subscriptions")?,
            shadow: r.bool("group_summary.shadow")?,
            conflicts: r.u32("group_summary.conflicts")?,
        })
    }
}

/// Every consumer group of the broker (the ListGroups request has an empty payload).
///
/// Format: list\<[`GroupSummary`]\>.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListGroupsResponse {
    /// The groups, by name.
    pub groups: Vec<GroupSummary>,
}

impl Wire for ListGroupsResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("list_groups.groups", &self.groups)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ListGroupsResponse { groups: r.list("list_groups.groups")? })
    }
}

/// Ask for a group's members, subscriptions and conflicts. Answered with its
/// [`GroupDescription`].
///
/// Format: string consumer_group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeGroupRequest {
    /// The consumer group.
    pub consumer_group: String,
}

impl Wire for DescribeGroupRequest {
    const MIN_LEN: usize = 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("describe_group.consumer_group", &self.consumer_group)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DescribeGroupRequest { consumer_group: r.str("describe_group.consumer_group")? })
    }
}

/// One live member of a group.
///
/// Format: string member_id, string host, `u8` [`ConsumeMode`] mode, bool orderly,
/// list\<[`TopicAssignment`]\> assignments, `u64` last_heartbeat_ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's id.
    pub member_id: String,
    /// Its address as the broker saw it, e.g. `127.0.0.1:50412`.
    pub host: String,
    /// How it consumes.
    pub mode: ConsumeMode,
    /// It consumes in order.
    pub orderly: bool,
    /// Its queues in the current generation, by topic.
    pub assignments: Vec<TopicAssignment>,
    /// Milliseconds since its last heartbeat.
    pub last_heartbeat_ms: u64,
}

impl Wire for MemberInfo {
    const MIN_LEN: usize = 2 + 2 + 1 + 1 + 4 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("member_info.member_id", &self.member_id)?;
        w.str("member_info.host", &self.host)?;
        self.mode.encode(w);
        w.bool(self.orderly);
        w.list("member_info.assignments", &self.assignments)?;
        w.u64(self.last_heartbeat_ms);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(MemberInfo {
            member_id: r.str("member_info.member_id")?,
            host: r.str("member_info.host")?,
            mode: ConsumeMode::decode(r, "member_info.mode")?,
            orderly: r.bool("member_info.orderly")?,
            assignments: r.list("member_info.assignments")?,
            last_heartbeat_ms: r.u64("member_info.last_heartbeat_ms")?,
        })
    }
}

/// A group's subscription to one topic.
///
/// Format: string topic, string expression (for people, e.g. `sql region = 'SH'`),
/// option\<string\> plugin, `u64` version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSubscription {
    /// The topic.
    pub topic: String,
    /// The subscription, human-readable.
    pub expression: String,
    /// The filter plugin it runs, if any.
    pub plugin: Option<String>,
    /// The subscription's version (as [`SubscribeResponse`](crate::SubscribeResponse)).
    pub version: u64,
}

impl Wire for GroupSubscription {
    const MIN_LEN: usize = 2 + 2 + 1 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("group_subscription.topic", &self.topic)?;
        w.str("group_subscription.expression", &self.expression)?;
        w.opt_str("group_subscription.plugin", self.plugin.as_deref())?;
        w.u64(self.version);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(GroupSubscription {
            topic: r.str("group_subscription.topic")?,
            expression: r.str("group_subscription.expression")?,
            plugin: r.opt_str("group_subscription.plugin")?,
            version: r.u64("group_subscription.version")?,
        })
    }
}

/// A member refused because its subscription differs from the group's.
///
/// Format: string member_id, string host, string topic, string expression, string
/// group_expression, `u64` refused_ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConflict {
    /// The refused member's id.
    pub member_id: String,
    /// Its address as the broker saw it.
    pub host: String,
    /// The topic of the conflict.
    pub topic: String,
    /// The member's expression, human-readable.
    pub expression: String,
    /// The group's expression, human-readable.
    pub group_expression: String,
    /// Milliseconds since the member was refused.
    pub refused_ms: u64,
}

impl Wire for SubscriptionConflict {
    const MIN_LEN: usize = 2 + 2 + 2 + 2 + 2 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("subscription_conflict.member_id", &self.member_id)?;
        w.str("subscription_conflict.host", &self.host)?;
        w.str("subscription_conflict.topic", &self.topic)?;
        w.str("subscription_conflict.expression", &self.expression)?;
        w.str("subscription_conflict.group_expression", &self.group_expression)?;
        w.u64(self.refused_ms);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(SubscriptionConflict {
            member_id: r.str("subscription_conflict.member_id")?,
            host: r.str("subscription_conflict.host")?,
            topic: r.str("subscription_conflict.topic")?,
            expression: r.str("subscription_conflict.expression")?,
            group_expression: r.str("subscription_conflict.group_expression")?,
            refused_ms: r.u64("subscription_conflict.refused_ms")?,
        })
    }
}

/// A group as DescribeGroup shows it.
///
/// Format: string name, `u64` generation, string strategy, `u8` [`ConsumeMode`] mode, bool
/// shadow, list\<[`MemberInfo`]\> members, list\<[`GroupSubscription`]\> subscriptions,
/// list\<[`SubscriptionConflict`]\> conflicts, [`RetryPolicyInfo`] retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group's name.
    pub name: String,
    /// Its current generation.
    pub generation: u64,
    /// Its assignment strategy.
    pub strategy: String,
    /// Its consume mode.
    pub mode: ConsumeMode,
    /// It is a shadow group.
    pub shadow: bool,
    /// Its live members.
    pub members: Vec<MemberInfo>,
    /// Its subscriptions, one per topic.
    pub subscriptions: Vec<GroupSubscription>,
    /// Members recently refused for a differing subscription.
    pub conflicts: Vec<SubscriptionConflict>,
    /// Its retry policy and what its failures became.
    pub retry: RetryPolicyInfo,
}

impl Wire for GroupDescription {
    const MIN_LEN: usize = 2 + 8 + 2 + 1 + 1 + 4 + 4 + 4 + RetryPolicyInfo::MIN_LEN;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("describe_group.name", &self.name)?;
        w.u64(self.generation);
        w.str("describe_group.strategy", &self.strategy)?;
        self.mode.encode(w);
        w.bool(self.shadow);
        w.list("describe_group.members", &self.members)?;
        w.list("describe_group.subscriptions", &self.subscriptions)?;
        w.list("describe_group.conflicts", &self.conflicts)?;
        self.retry.encode(w)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(GroupDescription {
            name: r.str("describe_group.name")?,
            generation: r.u64("describe_group.generation")?,
            strategy: r.str("describe_group.strategy")?,
            mode: ConsumeMode::decode(r, "describe_group.mode")?,
            shadow: r.bool("describe_group.shadow")?,
            members: r.list("describe_group.members")?,
            subscriptions: r.list("describe_group.subscriptions")?,
            conflicts: r.list("describe_group.conflicts")?,
            retry: RetryPolicyInfo::decode(r)?,
        })
    }
}

/// Ask how far a group lags behind its queues, for one topic or all it subscribes to.
///
/// Format: string consumer_group, option\<string\> topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLagRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// Only this topic.
    pub topic: Option<String>,
}

impl Wire for GroupLagRequest {
    const MIN_LEN: usize = 2 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("group_lag.consumer_group", &self.consumer_group)?;
        w.opt_str("group_lag.topic", self.topic.as_deref())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(GroupLagRequest { consumer_group: r.str("group_lag.consumer_group")?, topic: r.opt_str("group_lag.topic")? })
    }
}

/// One queue's lag for a group.
///
/// Format: string topic, `u32` queue_id, `u64` broker_offset, option\<`u64`\>
/// committed_offset, `u64` lag, option\<string\> owner, option\<`u64`\> last_commit_ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLag {
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
    /// The queue's max offset (the offset its next message will get).
    pub broker_offset: u64,
    /// The group's committed offset; `None` when it never committed one.
    pub committed_offset: Option<u64>,
    /// Messages stored but not yet consumed.
    pub lag: u64,
    /// The member assigned the queue; `None` when no member holds it.
    pub owner: Option<String>,
    /// Unix ms of the last commit; `None` when there was none.
    pub last_commit_ms: Option<u64>,
}

impl Wire for QueueLag {
    const MIN_LEN: usize = 2 + 4 + 8 + 1 + 8 + 1 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("queue_lag.topic", &self.topic)?;
        w.u32(self.queue_id);
        w.u64(self.broker_offset);
        w.opt_u64(self.committed_offset);
        w.u64(self.lag);
        w.opt_str("queue_lag.owner", self.owner.as_deref())?;
        w.opt_u64(self.last_commit_ms);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(QueueLag {
            topic: r.str("queue_lag.topic")?,
            queue_id: r.u32("queue_lag.queue_id")?,
            broker_offset: r.u64("queue_lag.broker_offset")?,
            committed_offset: r.opt_u64("queue_lag.committed_offset")?,
            lag: r.u64("queue_lag.lag")?,
            owner: r.opt_str("queue_lag.owner")?,
            last_commit_ms: r.opt_u64("queue_lag.last_commit_ms")?,
        })
    }
}

/// A group's lag, per queue.
///
/// Format: list\<[`QueueLag`]\>.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupLagResponse {
    /// One entry per queue (per member and queue in a broadcasting group), by topic and
    /// queue id.
    pub queues: Vec<QueueLag>,
}

impl Wire for GroupLagResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("group_lag.queues", &self.queues)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(GroupLagResponse { queues: r.list("group_lag.queues")? })
    }
}

/// Where a reset moves a group's offsets.
///
/// Format: `u8` tag; `0` earliest; `1` latest; `2` timestamp, then `u64` Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetTarget {
    /// Each queue's smallest stored offset: consume everything still stored.
    Earliest,
    /// Each queue's max offset: skip everything stored.
    Latest,
    /// Each queue's first offset stored at or after this Unix time in milliseconds (as
    /// [`OffsetByTimestampRequest`](crate::OffsetByTimestampRequest)).
    Timestamp(u64),
}

impl Wire for OffsetTarget {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match *self {
            OffsetTarget::Earliest => w.u8(0),
            OffsetTarget::Latest => w.u8(1),
            OffsetTarget::Timestamp(at) => {
                w.u8(2);
                w.u64(at);
            }
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8("reset_offset.to")? {
            0 => Ok(OffsetTarget::Earliest),
            1 => Ok(OffsetTarget::Latest),
            2 => Ok(OffsetTarget::Timestamp(r.u64("reset_offset.to.timestamp_ms")?)),
            tag => Err(DecodeError::InvalidValue { field: "reset_offset.to", value: tag.into() }),
        }
    }
}

/// Move a group's committed offsets for every queue of a topic. Answered with the new
/// generation and the offsets set.
///
/// Format: string consumer_group, string topic, [`OffsetTarget`] to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOffsetRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// Where to move the offsets.
    pub to: OffsetTarget,
}

impl Wire for ResetOffsetRequest {
    const MIN_LEN: usize = 2 + 2 + OffsetTarget::MIN_LEN;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("reset_offset.consumer_group", &self.consumer_group)?;
        w.str("reset_offset.topic", &self.topic)?;
        self.to.encode(w)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ResetOffsetRequest {
            consumer_group: r.str("reset_offset.consumer_group")?,
            topic: r.str("reset_offset.topic")?,
            to: OffsetTarget::decode(r)?,
        })
    }
}

/// A queue's offset after a reset.
///
/// Format: `u32` queue_id, `u64` offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOffset {
    /// The queue.
    pub queue_id: u32,
    /// The group's committed offset now.
    pub offset: u64,
}

impl Wire for QueueOffset {
    const MIN_LEN: usize = 4 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.queue_id);
        w.u64(self.offset);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(QueueOffset { queue_id: r.u32("queue_offset.queue_id")?, offset: r.u64("queue_offset.offset")? })
    }
}

/// What a [`ResetOffsetRequest`] did.
///
/// Format: `u64` generation, list\<[`QueueOffset`]\> queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOffsetResponse {
    /// The group's generation after the reset (bumped by it).
    pub generation: u64,
    /// The offsets set, by queue id.
    pub queues: Vec<QueueOffset>,
}

impl Wire for ResetOffsetResponse {
    const MIN_LEN: usize = 8 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.generation);
        w.list("reset_offset.queues", &self.queues)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ResetOffsetResponse {
            generation: r.u64("reset_offset.generation")?,
            queues: r.list("reset_offset.queues")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{
        arb_group_description, arb_group_summary, arb_heartbeat_request, arb_heartbeat_response, arb_member_ref,
        arb_offset_target, arb_queue_lag, arb_reset_offset_response, check_request, check_response, encoded_len, frame,
    };
    use crate::{FrameKind, Request, RequestKind, Response};

    fn member() -> MemberRef {
        MemberRef { member_id: String::new(), generation: 0 }
    }

    fn heartbeat() -> HeartbeatRequest {
        HeartbeatRequest {
            consumer_group: String::new(),
            member_id: String::new(),
            session: 0,
            mode: ConsumeMode::Clustering,
            orderly: false,
            strategy: None,
            replace_subscriptions: false,
            subscriptions: Vec::new(),
            owned: Vec::new(),
            known_generation: 0,
            max_wait_ms: 0,
        }
    }

    #[test]
    fn min_lens_are_the_smallest_encodings() {
        assert_eq!(encoded_len(&member()), MemberRef::MIN_LEN);
        let subscription = MemberSubscription {
            topic: String::new(),
            filter: FilterExpression::All,
            plugin: None,
            plugin_params: String::new(),
        };
        assert_eq!(encoded_len(&subscription), MemberSubscription::MIN_LEN);
        let queue = AssignedQueue { queue_id: 0, since_generation: 0 };
        assert_eq!(encoded_len(&queue), AssignedQueue::MIN_LEN);
        let assignment = TopicAssignment { topic: String::new(), queues: Vec::new() };
        assert_eq!(encoded_len(&assignment), TopicAssignment::MIN_LEN);
        assert_eq!(encoded_len(&heartbeat()), HeartbeatRequest::MIN_LEN);
        let response = HeartbeatResponse {
            generation: 0,
            heartbeat_interval_ms: 0,
            member_timeout_ms: 0,
            assignments: Vec::new(),
        };
        assert_eq!(encoded_len(&response), HeartbeatResponse::MIN_LEN);
        let leave = LeaveGroupRequest { consumer_group: String::new(), member_id: String::new(), session: 0 };
        assert_eq!(encoded_len(&leave), LeaveGroupRequest::MIN_LEN);
        let lock = LockQueuesRequest {
            consumer_group: String::new(),
            member: member(),
            topic: String::new(),
            queue_ids: vec![],
        };
        assert_eq!(encoded_len(&lock), LockQueuesRequest::MIN_LEN);
        let locked = LockQueuesResponse { locked: Vec::new(), expires_in_ms: 0 };
        assert_eq!(encoded_len(&locked), LockQueuesResponse::MIN_LEN);
        let unlock = UnlockQueuesRequest {
            consumer_group: String::new(),
            member: member(),
            topic: String::new(),
            queue_ids: Vec::new(),
        };
        assert_eq!(encoded_len(&unlock), UnlockQueuesRequest::MIN_LEN);
        let summary = GroupSummary {
            name: String::new(),
            generation: 0,
            strategy: String::new(),
            mode: ConsumeMode::Clustering,
            members: 0,
            subscriptions: 0,
            shadow: false,
            conflicts: 0,
        };
        assert_eq!(encoded_len(&summary), GroupSummary::MIN_LEN);
        assert_eq!(encoded_len(&ListGroupsResponse::default()), ListGroupsResponse::MIN_LEN);
        let describe = DescribeGroupRequest { consumer_group: String::new() };
        assert_eq!(encoded_len(&describe), DescribeGroupRequest::MIN_LEN);
        let info = MemberInfo {
            member_id: String::new(),
            host: String::new(),
            mode: ConsumeMode::Clustering,
            orderly: false,
            assignments: Vec::new(),
            last_heartbeat_ms: 0,
        };
        assert_eq!(encoded_len(&info), MemberInfo::MIN_LEN);
        let subscription =
            GroupSubscription { topic: String::new(), expression: String::new(), plugin: None, version: 0 };
        assert_eq!(encoded_len(&subscription), GroupSubscription::MIN_LEN);
        let conflict = SubscriptionConflict {
            member_id: String::new(),
            host: String::new(),
            topic: String::new(),
            expression: String::new(),
            group_expression: String::new(),
            refused_ms: 0,
        };
        assert_eq!(encoded_len(&conflict), SubscriptionConflict::MIN_LEN);
        let description = GroupDescription {
            name: String::new(),
            generation: 0,
            strategy: String::new(),
            mode: ConsumeMode::Clustering,
            shadow: false,
            members: Vec::new(),
            subscriptions: Vec::new(),
            conflicts: Vec::new(),
            retry: RetryPolicyInfo::default(),
        };
        assert_eq!(encoded_len(&description), GroupDescription::MIN_LEN);
        let lag = GroupLagRequest { consumer_group: String::new(), topic: None };
        assert_eq!(encoded_len(&lag), GroupLagRequest::MIN_LEN);
        let queue_lag = QueueLag {
            topic: String::new(),
            queue_id: 0,
            broker_offset: 0,
            committed_offset: None,
            lag: 0,
            owner: None,
            last_commit_ms: None,
        };
        assert_eq!(encoded_len(&queue_lag), QueueLag::MIN_LEN);
        assert_eq!(encoded_len(&GroupLagResponse::default()), GroupLagResponse::MIN_LEN);
        assert_eq!(encoded_len(&OffsetTarget::Earliest), OffsetTarget::MIN_LEN);
        let reset =
            ResetOffsetRequest { consumer_group: String::new(), topic: String::new(), to: OffsetTarget::Latest };
        assert_eq!(encoded_len(&reset), ResetOffsetRequest::MIN_LEN);
        assert_eq!(encoded_len(&QueueOffset { queue_id: 0, offset: 0 }), QueueOffset::MIN_LEN);
        let reset = ResetOffsetResponse { generation: 0, queues: Vec::new() };
        assert_eq!(encoded_len(&reset), ResetOffsetResponse::MIN_LEN);
    }

    #[test]
    fn golden_heartbeat_frame() {
        let request = Request::Heartbeat(HeartbeatRequest {
            consumer_group: "g".to_owned(),
            member_id: "m".to_owned(),
            session: 0x0102,
            mode: ConsumeMode::Broadcasting,
            orderly: true,
            strategy: Some("avg".to_owned()),
            replace_subscriptions: false,
            subscriptions: vec![MemberSubscription {
                topic: "t".to_owned(),
                filter: FilterExpression::Tag("A".to_owned()),
                plugin: None,
                plugin_params: String::new(),
            }],
            owned: vec![TopicAssignment {
                topic: "t".to_owned(),
                queues: vec![AssignedQueue { queue_id: 1, since_generation: 2 }],
            }],
            known_generation: 3,
            max_wait_ms: 5000,
        });
        let golden: &[u8] = &[
            b'W', b'E', b'I', b'R', 1, 0, // magic, version, flags
            0x01, 0x0a, // kind: Heartbeat
            72, 0, 0, 0, // payload length
            1, 0, b'g', // consumer_group
            1, 0, b'm', // member_id
            0x02, 0x01, 0, 0, 0, 0, 0, 0, // session
            1, // mode: broadcasting
            1, // orderly
            1, 3, 0, b'a', b'v', b'g', // strategy: present, "avg"
            0,    // replace_subscriptions
            1, 0, 0, 0, // subscriptions: 1
            1, 0, b't', // topic
            1, 1, 0, b'A', // filter: tag "A"
            0,    // plugin: absent
            0, 0, // plugin_params ""
            1, 0, 0, 0, // owned: 1
            1, 0, b't', // topic
            1, 0, 0, 0, // queues: 1
            1, 0, 0, 0, // queue_id
            2, 0, 0, 0, 0, 0, 0, 0, // since_generation
            3, 0, 0, 0, 0, 0, 0, 0, // known_generation
            0x88, 0x13, 0, 0, // max_wait_ms: 5000
        ];
        check_request(&request, Some(golden)).unwrap();
    }

    #[test]
    fn golden_empty_requests_and_responses() {
        let list_groups: &[u8] = &[b'W', b'E', b'I', b'R', 1, 0, 0x05, 0x0a, 0, 0, 0, 0];
        check_request(&Request::ListGroups, Some(list_groups)).unwrap();
        let left: &[u8] = &[b'W', b'E', b'I', b'R', 1, 0, 0x02, 0x8a, 0, 0, 0, 0];
        check_response(&Response::LeaveGroup, Some(left)).unwrap();
        let unlocked: &[u8] = &[b'W', b'E', b'I', b'R', 1, 0, 0x04, 0x8a, 0, 0, 0, 0];
        check_response(&Response::UnlockQueues, Some(unlocked)).unwrap();
    }

    #[test]
    fn consume_modes() {
        assert_eq!(ConsumeMode::Clustering as u8, 0);
        assert_eq!(ConsumeMode::Broadcasting as u8, 1);
        assert_eq!(ConsumeMode::default(), ConsumeMode::Clustering);
        assert_eq!(ConsumeMode::Broadcasting.as_str(), "broadcasting");
        let mut payload = encode_payload(&heartbeat());
        let mode = 2 + 2 + 8;
        payload[mode] = 2;
        assert_eq!(
            Request::decode(frame(FrameKind::Request(RequestKind::Heartbeat), &payload)),
            Err(DecodeError::InvalidValue { field: "heartbeat.mode", value: 2 })
        );
        let mut summary = vec![0, 0]; // name
        summary.extend_from_slice(&[0; 8]); // generation
        summary.extend_from_slice(&[0, 0]); // strategy
        summary.push(7); // mode
        summary.extend_from_slice(&[0; 13]);
        let mut payload = vec![1, 0, 0, 0];
        payload.extend_from_slice(&summary);
        assert_eq!(
            Response::decode(frame(FrameKind::Response(RequestKind::ListGroups), &payload)),
            Err(DecodeError::InvalidValue { field: "group_summary.mode", value: 7 })
        );
    }

    #[test]
    fn offset_targets() {
        let reset = |tag: &[u8]| {
            let mut payload = vec![1, 0, b'g', 1, 0, b't'];
            payload.extend_from_slice(tag);
            Request::decode(frame(FrameKind::Request(RequestKind::ResetOffset), &payload))
        };
        let request = |to| {
            Ok(Request::ResetOffset(ResetOffsetRequest { consumer_group: "g".to_owned(), topic: "t".to_owned(), to }))
        };
        assert_eq!(reset(&[0]), request(OffsetTarget::Earliest));
        assert_eq!(reset(&[1]), request(OffsetTarget::Latest));
        assert_eq!(reset(&[2, 0x10, 0, 0, 0, 0, 0, 0, 0]), request(OffsetTarget::Timestamp(16)));
        assert_eq!(reset(&[2, 0x10]), Err(DecodeError::Truncated { field: "reset_offset.to.timestamp_ms" }));
        assert_eq!(reset(&[3]), Err(DecodeError::InvalidValue { field: "reset_offset.to", value: 3 }));
    }

    fn encode_payload<T: Wire>(value: &T) -> Vec<u8> {
        let mut dst = bytes::BytesMut::new();
        value.encode(&mut Writer::new(&mut dst)).unwrap();
        dst.to_vec()
    }

    proptest! {
        #[test]
        fn membership_requests_round_trip(
            heartbeat in arb_heartbeat_request(),
            member in arb_member_ref(),
            (consumer_group, topic) in ("\\PC{0,8}", "\\PC{0,8}"),
            queue_ids in vec(any::<u32>(), 0..5),
            session in any::<u64>(),
            to in arb_offset_target(),
        ) {
            check_request(&Request::Heartbeat(heartbeat), None)?;
            let leave = LeaveGroupRequest {
                consumer_group: consumer_group.clone(),
                member_id: member.member_id.clone(),
                session,
            };
            check_request(&Request::LeaveGroup(leave), None)?;
            let lock = LockQueuesRequest {
                consumer_group: consumer_group.clone(),
                member: member.clone(),
                topic: topic.clone(),
                queue_ids: queue_ids.clone(),
            };
            check_request(&Request::LockQueues(lock), None)?;
            let unlock =
                UnlockQueuesRequest { consumer_group: consumer_group.clone(), member, topic: topic.clone(), queue_ids };
            check_request(&Request::UnlockQueues(unlock), None)?;
            check_request(&Request::ListGroups, None)?;
            let describe = DescribeGroupRequest { consumer_group: consumer_group.clone() };
            check_request(&Request::DescribeGroup(describe), None)?;
            let lag = GroupLagRequest { consumer_group: consumer_group.clone(), topic: Some(topic.clone()) };
            check_request(&Request::GroupLag(lag), None)?;
            check_request(&Request::ResetOffset(ResetOffsetRequest { consumer_group, topic, to }), None)?;
        }

        #[test]
        fn membership_responses_round_trip(
            heartbeat in arb_heartbeat_response(),
            (locked, expires_in_ms) in (vec(any::<u32>(), 0..5), any::<u32>()),
            groups in vec(arb_group_summary(), 0..3),
            description in arb_group_description(),
            queues in vec(arb_queue_lag(), 0..3),
            reset in arb_reset_offset_response(),
        ) {
            check_response(&Response::Heartbeat(heartbeat), None)?;
            check_response(&Response::LeaveGroup, None)?;
            check_response(&Response::LockQueues(LockQueuesResponse { locked, expires_in_ms }), None)?;
            check_response(&Response::UnlockQueues, None)?;
            check_response(&Response::ListGroups(ListGroupsResponse { groups }), None)?;
            check_response(&Response::DescribeGroup(description), None)?;
            check_response(&Response::GroupLag(GroupLagResponse { queues }), None)?;
            check_response(&Response::ResetOffset(reset), None)?;
        }
    }
}
