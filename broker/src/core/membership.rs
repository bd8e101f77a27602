//! Consumer group membership operations: heartbeats (held until the group
//! changes), leaving, queue locks, and the fencing checks pulls and commits make.
//! The state machine is `crate::membership::Coordinator`; this file gives it the
//! broker's topics, subscriptions and clock, and wakes held requests on a change.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_filters::Expression;

use super::{Core, CoreError, require_group};
use crate::membership::{ConsumeMode, Directory, Heartbeat, MemberView, Strategy};
use crate::meta::groups::Groups;
use crate::meta::topics::TopicTable;

/// A member's subscription to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The topic.
    pub topic: String,
    /// What the member selects.
    pub expression: Expression,
    /// A filter plugin and its parameters, if any.
    pub plugin: Option<(String, String)>,
}

/// A member's heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatArgs {
    /// The group.
    pub group: String,
    /// The member's id, unique per process.
    pub member_id: String,
    /// Random per member process start.
    pub session: u64,
    /// Where the member connects from.
    pub host: String,
    /// Clustering or broadcasting.
    pub mode: ConsumeMode,
    /// Whether it consumes orderly.
    pub orderly: bool,
    /// Sets the group's strategy when given (a name: `average`, `round-robin`, …).
    pub strategy: Option<String>,
    /// Replace the group's subscriptions with the member's instead of refusing a conflict.
    pub replace_subscriptions: bool,
    /// Its subscriptions.
    pub subscriptions: Vec<MemberSubscription>,
    /// The queues it still holds, as (topic, queue id).
    pub owned: BTreeSet<(String, u32)>,
    /// The generation it knows; the heartbeat is held while the group's equals it.
    pub known_generation: u64,
    /// Longest hold.
    pub max_wait: Duration,
}

/// Which member a pull or commit comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberRef {
    /// The member's id.
    pub member_id: String,
    /// The group generation it has seen.
    pub generation: u64,
}

/// The broker's topics and group settings, as the coordinator sees them.
pub(super) struct BrokerDirectory<'a> {
    topics: &'a TopicTable,
    groups: &'a Groups,
}

impl Directory for BrokerDirectory<'_> {
    fn read_queues(&self, topic: &str) -> u32 {
        self.topics.get(topic).filter(|t| t.readable).map_or(0, |t| t.read_queues)
    }

    fn strategy(&self, group: &str) -> Strategy {
        self.groups.strategy(group)
    }
}

impl Core {
    pub(super) fn directory(&self) -> BrokerDirectory<'_> {
        BrokerDirectory { topics: &self.topics, groups: &self.groups }
    }

    /// The membership timings members are told.
    pub fn membership_timings(&self) -> crate::membership::Timings {
        self.coordinator.lock().timings()
    }

    /// Signals held heartbeats and pulls that some group changed.
    pub(super) fn membership_changed(&self) {
        self.membership_changes.send_modify(|n| *n += 1);
    }

    /// Joins or keeps a member in its group; answers at once when the group's
    /// generation differs from the one the member knows, otherwise when it changes
    /// or the wait runs out.
    pub async fn heartbeat(self: &Arc<Self>, args: HeartbeatArgs) -> Result<MemberView, CoreError> {
        require_group(&args.group)?;
        if args.member_id.is_empty() {
            return Err(CoreError::Invalid("member id must not be empty".into()));
        }
        // A member consumes its group's retry topic, created on first subscription (one queue).
        let retry_topic = weir_plugins::retry_topic(&args.group);
        if args.subscriptions.iter().any(|sub| sub.topic == retry_topic) && self.topics.get(&retry_topic).is_none() {
            self.blocking(move |core| core.topics.ensure_system(&retry_topic).map(drop)).await?;
        }
        for sub in &args.subscriptions {
            self.existing_topic(&sub.topic)?;
        }
        let heartbeat = Heartbeat {
            member_id: args.member_id.clone(),
            session: args.session,
            host: args.host.clone(),
            mode: args.mode,
            orderly: args.orderly,
            topics: args.subscriptions.iter().map(|s| s.topic.clone()).collect(),
            owned: args.owned.clone(),
        };
        self.coordinator.lock().check(&args.group, &heartbeat, Instant::now())?;
        if let Some(name) = &args.strategy {
            let strategy: Strategy = name.parse().map_err(|err| CoreError::Invalid(format!("{err}")))?;
            if self.groups.strategy(&args.group) != strategy {
                let group = args.group.clone();
                self.blocking(move |core| core.groups.set_strategy(&group, strategy)).await?;
            }
        }
        for sub in &args.subscriptions {
            self.settle_subscription(&args, sub).await?;
        }
        let mut changes = self.membership_changes.subscribe();
        let view = {
            let mut coordinator = self.coordinator.lock();
            let before = coordinator.generation(&args.group);
            let view = coordinator.heartbeat(&args.group, heartbeat, &self.directory(), Instant::now());
            if view.generation != before {
                drop(coordinator);
                self.membership_changed();
            }
            view
        };
        if view.generation != args.known_generation || args.max_wait.is_zero() {
            return Ok(view);
        }
        let wait = args.max_wait.min(self.coordinator.lock().timings().heartbeat_interval);
        let deadline = tokio::time::Instant::now() + wait;
        let mut shutting_down = self.shutting_down();
        loop {
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutting_down.changed() => break,
            }
            if self.coordinator.lock().generation(&args.group) != args.known_generation {
                break;
            }
        }
        // Liveness counts from the heartbeat's arrival, not its answer: a member that died
        // while its heartbeat was held must not look alive for another interval.
        self.coordinator.lock().view(&args.group, &args.member_id, &self.directory())
    }

    /// Registers a joining member's subscription when the group has none or the same;
    /// refuses a different one while other live members hold the group's, unless the
    /// member replaces it deliberately. A member already in the group follows the
    /// group's subscription (which a deliberate replacement may have changed).
    async fn settle_subscription(
        self: &Arc<Self>,
        args: &HeartbeatArgs,
        sub: &MemberSubscription,
    ) -> Result<(), CoreError> {
        if self.coordinator.lock().is_member(&args.group, &args.member_id, args.session) {
            return Ok(());
        }
        let registered = self.groups.subscription(&args.group, &sub.topic);
        let same = registered.as_ref().is_some_and(|r| {
            *r.subscription.expression() == sub.expression
                && r.plugin.as_ref().map(|p| (&p.name, &p.params)) == sub.plugin.as_ref().map(|(n, p)| (n, p))
        });
        if same {
            return Ok(());
        }
        if let Some(registered) = registered
            && !args.replace_subscriptions
            && self.coordinator.lock().others_subscribe(&args.group, &args.member_id, &sub.topic)
        {
            let describe = |expression: &Expression, plugin: Option<&str>| match plugin {
                Some(plugin) => format!("{expression} | plugin {plugin}"),
                None => expression.to_string(),
            };
            let conflict = crate::membership::Conflict {
                member_id: args.member_id.clone(),
                host: args.host.clone(),
                topic: sub.topic.clone(),
                expression: describe(&sub.expression, sub.plugin.as_ref().map(|(n, _)| n.as_str())),
                group_expression: describe(
                    registered.subscription.expression(),
                    registered.plugin.as_ref().map(|p| p.name.as_str()),
                ),
                at: Instant::now(),
            };
            let err = CoreError::SubscriptionConflict {
                group: args.group.clone(),
                member_id: conflict.member_id.clone(),
                topic: conflict.topic.clone(),
                expression: conflict.expression.clone(),
                group_expression: conflict.group_expression.clone(),
            };
            tracing::warn!(group = %args.group, member = %args.member_id, %err, "refused a conflicting subscription");
            self.coordinator.lock().record_conflict(&args.group, conflict);
            return Err(err);
        }
        self.subscribe(args.group.clone(), sub.topic.clone(), sub.expression.clone(), sub.plugin.clone()).await?;
        Ok(())
    }

    /// Removes a member at once; its queues go to the others.
    pub fn leave_group(&self, group: &str, member_id: &str, session: u64) -> Result<(), CoreError> {
        self.coordinator.lock().leave(group, member_id, session, &self.directory(), Instant::now())?;
        self.membership_changed();
        tracing::info!(%group, member = %member_id, "member left");
        Ok(())
    }

    /// Locks the member's queues among `queue_ids` (orderly consumption); returns
    /// those locked and how long the locks last.
    pub fn lock_queues(
        &self,
        group: &str,
        member: &MemberRef,
        topic: &str,
        queue_ids: &[u32],
    ) -> Result<(Vec<u32>, Duration), CoreError> {
        let mut coordinator = self.coordinator.lock();
        let locked = coordinator.lock(group, &member.member_id, topic, queue_ids, Instant::now())?;
        Ok((locked, coordinator.timings().lock_expiry))
    }

    /// Releases the member's locks on `queue_ids`.
    pub fn unlock_queues(
        &self,
        group: &str,
        member: &MemberRef,
        topic: &str,
        queue_ids: &[u32],
    ) -> Result<(), CoreError> {
        self.coordinator.lock().unlock(group, &member.member_id, topic, queue_ids)
    }

    /// Checks that `member` may pull (or, with `committing`, commit) the queue; returns its mode.
    pub(super) fn fence(
        &self,
        group: &str,
        member: &MemberRef,
        topic: &str,
        queue_id: u32,
        committing: bool,
    ) -> Result<ConsumeMode, CoreError> {
        self.coordinator.lock().check_owner(group, &member.member_id, member.generation, topic, queue_id, committing)
    }

    /// A receiver that changes whenever any group's membership or assignment does.
    pub(super) fn membership_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.membership_changes.subscribe()
    }

    /// Removes silent members and completes timed-out revokes until shutdown.
    pub async fn run_membership_expiry(self: Arc<Self>) {
        let timeout = self.coordinator.lock().timings().member_timeout;
        let tick = (timeout / 20).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let mut shutting_down = self.shutting_down();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutting_down.changed() => return,
            }
            let changed = self.coordinator.lock().expire(&self.directory(), Instant::now());
            if !changed.is_empty() {
                self.membership_changed();
            }
        }
    }

    /// Rebalances the groups subscribed to `topic` after its queues changed.
    pub(super) fn rebalance_topic(&self, topic: &str) {
        let changed = self.coordinator.lock().topic_changed(topic, &self.directory(), Instant::now());
        if !changed.is_empty() {
            self.membership_changed();
        }
    }
}
