//! A push consumer as a member of its consumer group: it heartbeats (the broker holds
//! each heartbeat until the group changes, so a change is learned at once), and applies
//! each new assignment.
//!
//! Applying an assignment: a queue the member lost is stopped, its cached messages are
//! dropped, listener calls in progress get a moment to finish, and the lowest
//! unfinished offset is committed; only then does the next heartbeat stop listing it as
//! held, which is what lets the broker hand it to its new owner. A queue the member
//! gained starts from the group's committed offset (its own, when broadcasting), or
//! from the start position, which is committed at once so every later owner starts
//! there too. A queue whose `since` generation changed (its offsets were reset) is
//! restarted the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_protocol::{AssignedQueue, ErrorCode, HeartbeatRequest, HeartbeatResponse, TopicAssignment};

use super::queue::{QueueState, lost_queue, pull_queue};
use super::{Context, Delivery, StartPosition};
use crate::error::Error;

/// Pause after a failed heartbeat before the next.
const HEARTBEAT_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// Longest a lost queue's listener calls are waited for before its offset is committed.
const RELEASE_WAIT: Duration = Duration::from_secs(3);

/// A queue the member consumes, and its puller.
#[derive(Debug)]
struct Active {
    state: Arc<QueueState>,
    puller: JoinHandle<()>,
}

/// The member's side of the group protocol.
#[derive(Debug)]
pub(super) struct Member {
    context: Arc<Context>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    queues: Mutex<BTreeMap<u32, Active>>,
    /// The generation last learned.
    generation: AtomicU64,
    /// The heartbeat interval the broker asks for, in ms.
    interval_ms: AtomicU64,
}

impl Member {
    pub(super) fn new(context: Arc<Context>, deliveries: mpsc::UnboundedSender<Delivery>) -> Self {
        Member {
            context,
            deliveries,
            queues: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            interval_ms: AtomicU64::new(5_000),
        }
    }

    /// Joins the group and starts the queues it assigns, from `start` where the group
    /// has no offset (and from `start` anyway when it is not a committed-first one).
    pub(super) async fn join(&self) -> Result<(), Error> {
        let response = self.context.client.heartbeat(self.request(0, Duration::ZERO)).await?;
        self.apply(&response, true).await
    }

    /// Heartbeats until `stop`, applying every new assignment.
    pub(super) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let known = self.generation.load(Ordering::Acquire);
            let wait = Duration::from_millis(self.interval_ms.load(Ordering::Relaxed));
            let heartbeat = self.context.client.heartbeat(self.request(known, wait));
            let answered = tokio::select! {
                answered = heartbeat => answered,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let result = match answered {
                Ok(response) => self.apply(&response, false).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(()) => {}
                // Expired (a long pause, a broker restart): join again at once.
                Err(error) if error.code() == Some(ErrorCode::UnknownMember) => {
                    tracing::info!(group = %self.context.group, "no longer a member; joining again");
                    self.generation.store(0, Ordering::Release);
                }
                Err(error) => {
                    tracing::warn!(%error, group = %self.context.group, "heartbeat failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(HEARTBEAT_ERROR_BACKOFF) => {}
                        _ = stop.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
    }

    fn queues(&self) -> MutexGuard<'_, BTreeMap<u32, Active>> {
        self.queues.lock().expect("member queues lock")
    }

    /// A heartbeat listing the queues the member still holds.
    fn request(&self, known_generation: u64, wait: Duration) -> HeartbeatRequest {
        let context = &self.context;
        let queues: Vec<AssignedQueue> = self
            .queues()
            .values()
            .map(|a| AssignedQueue { queue_id: a.state.queue_id, since_generation: a.state.since })
            .collect();
        HeartbeatRequest {
            consumer_group: context.group.clone(),
            member_id: context.member_id.clone(),
            session: context.session,
            mode: context.mode,
            orderly: context.orderly,
            strategy: context.strategy.clone(),
            replace_subscriptions: context.replace_subscription,
            subscriptions: vec![context.member_subscription()],
            owned: vec![TopicAssignment { topic: context.topic.clone(), queues }],
            known_generation,
            max_wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// Stops what the member lost and starts what it gained.
    async fn apply(&self, response: &HeartbeatResponse, first: bool) -> Result<(), Error> {
        self.interval_ms.store(response.heartbeat_interval_ms.max(1).into(), Ordering::Relaxed);
        let assigned: BTreeMap<u32, u64> = response
            .assignments
            .iter()
            .filter(|t| t.topic == self.context.topic)
            .flat_map(|t| t.queues.iter().map(|q| (q.queue_id, q.since_generation)))
            .collect();
        // Lost, reset (a new `since`) or stopped by the broker: release.
        let released: Vec<Active> = {
            let mut queues = self.queues();
            let gone: Vec<u32> = queues
                .iter()
                .filter(|(id, a)| assigned.get(id) != Some(&a.state.since) || a.state.is_fenced())
                .map(|(id, _)| *id)
                .collect();
            gone.into_iter().filter_map(|id| queues.remove(&id)).collect()
        };
        let wait = RELEASE_WAIT.min(Duration::from_millis(response.heartbeat_interval_ms.into()));
        for active in released {
            self.release(active, wait).await;
        }
        let held: BTreeSet<u32> = self.queues().keys().copied().collect();
        for (&queue_id, &since) in assigned.iter().filter(|(id, _)| !held.contains(id)) {
            match self.acquire(queue_id, since, first).await {
                Ok(active) => {
                    self.queues().insert(queue_id, active);
                }
                Err(error) if lost_queue(error.code()) => {
                    tracing::debug!(queue_id, %error, "queue taken again before it started");
                }
                Err(error) => return Err(error),
            }
        }
        self.generation.store(response.generation, Ordering::Release);
        tracing::debug!(
            group = %self.context.group,
            generation = response.generation,
            queues = ?assigned.keys().collect::<Vec<_>>(),
            "assignment applied"
        );
        Ok(())
    }

    /// Starts consuming a queue held since `since`.
    async fn acquire(&self, queue_id: u32, since: u64, first: bool) -> Result<Active, Error> {
        let context = &self.context;
        let (client, member) = (&context.client, context.member_ref(since));
        let committed = client.fetch_offset_as(&context.group, &context.topic, queue_id, &member).await?;
        let start = if first { context.start } else { StartPosition::CommittedOrLatest };
        let (offset, committed) = match (committed, start) {
            (Some(offset), StartPosition::CommittedOrEarliest | StartPosition::CommittedOrLatest) => {
                (offset, Some(offset))
            }
            (_, start) => {
                let offset = match start {
                    StartPosition::CommittedOrEarliest | StartPosition::Earliest => {
                        client.queue_offsets(&context.topic, queue_id).await?.start
                    }
                    StartPosition::CommittedOrLatest | StartPosition::Latest => {
                        client.queue_offsets(&context.topic, queue_id).await?.end
                    }
                    StartPosition::Timestamp(ms) => client.offset_by_timestamp(&context.topic, queue_id, ms).await?,
                };
                // Durable at once: a later owner starts here too, so nothing in between is skipped.
                client.commit_offset_as(&context.group, &context.topic, queue_id, offset, &member).await?;
                (offset, Some(offset))
            }
        };
        let state = Arc::new(QueueState::new(queue_id, since, offset, committed));
        let puller = tokio::spawn(pull_queue(context.clone(), state.clone(), self.deliveries.clone()));
        tracing::debug!(queue_id, offset, since, "queue started");
        Ok(Active { state, puller })
    }

    /// Stops a queue, lets its listener calls finish for up to `wait`, commits its
    /// lowest unfinished offset and, in orderly mode, unlocks it.
    async fn release(&self, active: Active, wait: Duration) {
        let queue = active.state;
        queue.stop();
        let _ = active.puller.await;
        queue.wait_idle(wait).await;
        self.commit(&queue).await;
        if self.context.orderly {
            let context = &self.context;
            let member = context.member_ref(queue.since);
            let unlocked = context.client.unlock_queues(&context.group, &member, &context.topic, vec![queue.queue_id]);
            if let Err(error) = unlocked.await {
                tracing::debug!(%error, queue_id = queue.queue_id, "unlock failed; the lock expires by itself");
            }
        }
        tracing::debug!(queue_id = queue.queue_id, "queue released");
    }

    /// Commits a queue's lowest unfinished offset if it moved; a fenced commit is dropped.
    async fn commit(&self, queue: &QueueState) {
        let Some(offset) = queue.to_commit() else { return };
        let context = &self.context;
        let member = context.member_ref(queue.since);
        match context.client.commit_offset_as(&context.group, &context.topic, queue.queue_id, offset, &member).await {
            Ok(()) => queue.committed(offset),
            Err(error) if lost_queue(error.code()) => {
                tracing::debug!(queue_id = queue.queue_id, %error, "commit fenced: the queue has a new owner")
            }
            Err(error) => tracing::warn!(queue_id = queue.queue_id, %error, "commit failed; retried later"),
        }
    }

    /// Commits every queue's lowest unfinished offset where it moved.
    pub(super) async fn commit_all(&self) {
        let queues: Vec<Arc<QueueState>> = self.queues().values().map(|a| a.state.clone()).collect();
        for queue in queues {
            self.commit(&queue).await;
        }
    }

    /// Renews the locks of every queue (orderly mode); a queue whose lock is lost stops.
    pub(super) async fn renew_locks(&self) {
        let context = &self.context;
        let queues: Vec<Arc<QueueState>> = self.queues().values().map(|a| a.state.clone()).collect();
        for queue in queues.iter().filter(|q| !q.is_stopped()) {
            let member = context.member_ref(queue.since);
            match context.client.lock_queues(&context.group, &member, &context.topic, vec![queue.queue_id]).await {
                Ok((locked, expiry)) if locked.contains(&queue.queue_id) => {
                    context.lock_expiry_ms.store(expiry.as_millis() as u64, Ordering::Relaxed);
                }
                Ok(_) => {
                    tracing::warn!(queue_id = queue.queue_id, "lost the queue's lock; stopping it");
                    queue.fence();
                }
                Err(error) if lost_queue(error.code()) => queue.fence(),
                Err(error) => tracing::warn!(%error, queue_id = queue.queue_id, "renewing the lock failed"),
            }
        }
    }

    /// Stops every queue, commits, and leaves the group so the others take its queues at once.
    pub(super) async fn leave(&self) -> Result<(), Error> {
        let released: Vec<Active> = std::mem::take(&mut *self.queues()).into_values().collect();
        for active in released {
            self.release(active, RELEASE_WAIT).await;
        }
        let context = &self.context;
        context.client.leave_group(&context.group, &context.member_id, context.session).await
    }

    /// Messages pulled and not yet consumed, over all queues.
    pub(super) fn cached_messages(&self) -> usize {
        self.queues().values().map(|a| a.state.process().cached_messages()).sum()
    }

    /// Body bytes pulled and not yet consumed, over all queues.
    pub(super) fn cached_bytes(&self) -> u64 {
        self.queues().values().map(|a| a.state.process().cached_bytes()).sum()
    }

    /// The queues the member consumes now.
    pub(super) fn queue_ids(&self) -> Vec<u32> {
        self.queues().keys().copied().collect()
    }
}
