//! [`PushConsumer`]: a member of a consumer group that pulls the queues the broker
//! assigns it and hands each message to a listener.
//!
//! The consumer joins its group with a heartbeat and keeps one held at the broker, so
//! it learns of a rebalance the moment it happens (`member`). Per assigned queue a
//! puller task long-polls the broker as the queue's owner and caches what it pulls; it
//! pauses while the queue's cache is over its flow-control limits (`queue`). In
//! concurrent mode one dispatcher task hands cached messages to the listener, at most
//! `concurrency` at a time, each in its own task; in orderly mode each queue's puller
//! consumes its own messages one at a time, in order, holding the broker's lock on the
//! queue. A committer task commits, per queue, the lowest offset not yet consumed,
//! periodically, when a queue moves to another member, and on shutdown.
//!
//! Delivery is **at-least-once**: messages consumed after the last commit are delivered
//! again when their queue moves to another member after a crash (or a listener call
//! that outlived the hand-over), and a message whose listener call failed is delivered
//! again. Listeners should tolerate duplicates (for example by de-duplicating on a
//! business key).

mod listener;
mod member;
mod process_queue;
mod queue;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use weir_protocol::{ConsumeMode, MemberRef, MemberSubscription, StoredMessage};

pub use self::listener::{ConsumeStatus, MessageListener};
use self::member::Member;
use self::process_queue::FlowLimits;
use self::queue::QueueState;
use crate::client::Client;
use crate::error::Error;
use crate::subscription::Subscription;

/// Where a [`PushConsumer`] starts reading a queue the group has no committed offset for.
/// The positions that ignore committed offsets apply to the queues assigned when the
/// consumer starts; queues it takes over later continue from the group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartPosition {
    /// The group's committed offset; the queue's first stored message where the group
    /// never committed one.
    CommittedOrEarliest,
    /// The group's committed offset; only messages arriving after start where the group
    /// never committed one (the default, as RocketMQ's `CONSUME_FROM_LAST_OFFSET`).
    #[default]
    CommittedOrLatest,
    /// The queue's first stored message, whatever the group committed.
    Earliest,
    /// Only messages arriving after start, whatever the group committed.
    Latest,
    /// The first message stored at or after this Unix time in milliseconds, whatever the
    /// group committed.
    Timestamp(u64),
}

/// Configures and starts a [`PushConsumer`]; from [`PushConsumer::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct PushConsumerBuilder {
    client: Client,
    group: String,
    topic: String,
    subscription: Subscription,
    start: StartPosition,
    concurrency: usize,
    limits: FlowLimits,
    pull_batch_size: u32,
    long_poll_wait: Duration,
    commit_interval: Duration,
    retry_delay: Duration,
    mode: ConsumeMode,
    orderly: bool,
    member_id: Option<String>,
    strategy: Option<String>,
    replace_subscription: bool,
}

impl PushConsumerBuilder {
    /// What the group receives (tag expression or SQL92, filtered by the broker; or a
    /// shadow group); default every message. Registered at the broker on start.
    pub fn subscription(mut self, subscription: Subscription) -> Self {
        self.subscription = subscription;
        self
    }

    /// Where to start each queue; default [`StartPosition::CommittedOrLatest`].
    pub fn start_position(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Most listener calls in progress at once; default 16, at least 1.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Pause pulling a queue while more than this many of its messages are pulled and not
    /// yet consumed; default 1000.
    pub fn max_cached_messages(mut self, max_messages: usize) -> Self {
        self.limits.max_messages = max_messages;
        self
    }

    /// Pause pulling a queue while more than this many body bytes of its messages are
    /// pulled and not yet consumed; default 100 MiB.
    pub fn max_cached_bytes(mut self, max_bytes: u64) -> Self {
        self.limits.max_bytes = max_bytes;
        self
    }

    /// Most messages per pull; default 32.
    pub fn pull_batch_size(mut self, max_messages: u32) -> Self {
        self.pull_batch_size = max_messages.max(1);
        self
    }

    /// How long the broker may hold a pull that finds nothing; default 15 s.
    pub fn long_poll_wait(mut self, wait: Duration) -> Self {
        self.long_poll_wait = wait;
        self
    }

    /// How often consumed offsets are committed; default 5 s.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Pause before handing a failed message to the listener again; default 1 s.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Pause pulling a queue while the span from its lowest unconsumed offset to the
    /// highest pulled one exceeds this (one slow message holds back the commit of all
    /// later ones); default 2000.
    pub fn max_span(mut self, offsets: u64) -> Self {
        self.limits.max_span = offsets.max(1);
        self
    }

    /// Every member of the group receives every message, each with its own offsets
    /// (broadcasting), instead of each message going to one member (clustering, the default).
    pub fn broadcasting(mut self, broadcasting: bool) -> Self {
        self.mode = if broadcasting { ConsumeMode::Broadcasting } else { ConsumeMode::Clustering };
        self
    }

    /// Consume each queue in order: one message at a time per queue, a failed message
    /// retried in place, under the broker's lock on the queue. Default off.
    pub fn orderly(mut self, orderly: bool) -> Self {
        self.orderly = orderly;
        self
    }

    /// The member id, unique per process in the group; default `<host>@<pid>-<n>`. A
    /// member restarted with the same id (after the old one left or expired) resumes its
    /// broadcasting offsets.
    pub fn member_id(mut self, member_id: impl Into<String>) -> Self {
        self.member_id = Some(member_id.into());
        self
    }

    /// Sets the group's assignment strategy: `average` (the broker's default),
    /// `round-robin`, `consistent-hash` or `sticky`.
    pub fn strategy(mut self, strategy: impl Into<String>) -> Self {
        self.strategy = Some(strategy.into());
        self
    }

    /// Replace the group's subscription with this consumer's even while other members
    /// hold a different one (they follow the new one); without it such a consumer is
    /// refused with `SUBSCRIPTION_CONFLICT`.
    pub fn replace_subscription(mut self, replace: bool) -> Self {
        self.replace_subscription = replace;
        self
    }

    /// Joins the group, then consumes the queues the broker assigns with `listener`.
    /// Fails when the broker refuses the member (a conflicting subscription, a member id
    /// in use, a mode other than the group's) or the topic does not exist.
    pub async fn start<L: MessageListener>(self, listener: L) -> Result<PushConsumer, Error> {
        self.client.topic(&self.topic).await?;
        if self.subscription.is_shadow() {
            self.client.create_group(&self.group, true).await?;
        }
        let listener = Arc::new(listener);
        let context = Arc::new(Context {
            client: self.client,
            member_id: self.member_id.unwrap_or_else(default_member_id),
            session: random_session(),
            group: self.group,
            topic: self.topic,
            subscription: self.subscription,
            mode: self.mode,
            orderly: self.orderly,
            strategy: self.strategy,
            replace_subscription: self.replace_subscription,
            start: self.start,
            limits: self.limits,
            pull_batch_size: self.pull_batch_size,
            long_poll_wait: self.long_poll_wait,
            retry_delay: self.retry_delay,
            lock_expiry_ms: AtomicU64::new(60_000),
            listener: Box::new(move |message| {
                let listener = listener.clone();
                Box::pin(async move { listener.consume(message).await })
            }),
        });
        let (deliveries, delivered) = mpsc::unbounded_channel();
        let member = Arc::new(Member::new(context.clone(), deliveries));
        member.join().await?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(member.clone().run(stopped.clone())),
            tokio::spawn(commit_periodically(member.clone(), self.commit_interval, stopped.clone())),
        ];
        if context.orderly {
            tasks.push(tokio::spawn(renew_locks(context.clone(), member.clone(), stopped.clone())));
        }
        let concurrency = Arc::new(Semaphore::new(self.concurrency));
        tasks.push(tokio::spawn(dispatch(context.clone(), delivered, concurrency, stopped)));
        tracing::debug!(topic = %context.topic, group = %context.group, member = %context.member_id, "push consumer started");
        Ok(PushConsumer { context, member, stop, tasks })
    }
}

/// A member of a consumer group consuming the queues of one topic the broker assigns
/// it, calling a [`MessageListener`] for each message.
///
/// In a clustering group (the default) the broker splits the topic's queues among the
/// group's members and moves them as members join, leave or fail; in a broadcasting
/// group every member receives every message. Delivery is at-least-once: listeners must
/// tolerate duplicates. Stop it with [`shutdown`](Self::shutdown), which commits what
/// was consumed and leaves the group so its queues move at once; dropping it stops its
/// tasks without the final commit (the broker hands its queues over after the member
/// timeout).
#[derive(Debug)]
pub struct PushConsumer {
    context: Arc<Context>,
    member: Arc<Member>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl PushConsumer {
    /// A builder for a consumer of `topic` in consumer group `group`.
    pub fn builder(client: Client, group: impl Into<String>, topic: impl Into<String>) -> PushConsumerBuilder {
        PushConsumerBuilder {
            client,
            group: group.into(),
            topic: topic.into(),
            subscription: Subscription::all(),
            start: StartPosition::default(),
            concurrency: 16,
            limits: FlowLimits { max_messages: 1000, max_bytes: 100 * 1024 * 1024, max_span: 2000 },
            pull_batch_size: 32,
            long_poll_wait: Duration::from_secs(15),
            commit_interval: Duration::from_secs(5),
            retry_delay: Duration::from_secs(1),
            mode: ConsumeMode::Clustering,
            orderly: false,
            member_id: None,
            strategy: None,
            replace_subscription: false,
        }
    }

    /// The topic consumed.
    pub fn topic(&self) -> &str {
        &self.context.topic
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.context.group
    }

    /// This member's id in the group.
    pub fn member_id(&self) -> &str {
        &self.context.member_id
    }

    /// The queues this member consumes now.
    pub fn queue_ids(&self) -> Vec<u32> {
        self.member.queue_ids()
    }

    /// Messages pulled and not yet consumed, over all queues.
    pub fn cached_messages(&self) -> usize {
        self.member.cached_messages()
    }

    /// Body bytes pulled and not yet consumed, over all queues.
    pub fn cached_bytes(&self) -> u64 {
        self.member.cached_bytes()
    }

    /// Stops pulling, lets listener calls in progress finish (messages waiting for a
    /// retry are not retried), commits each queue's lowest unconsumed offset and leaves
    /// the group. Messages pulled but not consumed are delivered again to the queue's
    /// next owner.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            if let Err(error) = task.await {
                tracing::warn!(%error, "push consumer task failed");
            }
        }
        self.member.leave().await
    }
}

impl Drop for PushConsumer {
    /// Tells the tasks to stop (a no-op after [`PushConsumer::shutdown`]).
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A listener behind one type, whatever closure the application gave.
type Listener = Box<dyn Fn(StoredMessage) -> Pin<Box<dyn Future<Output = ConsumeStatus> + Send>> + Send + Sync>;

/// What the tasks of one push consumer share.
struct Context {
    client: Client,
    group: String,
    topic: String,
    member_id: String,
    session: u64,
    subscription: Subscription,
    mode: ConsumeMode,
    orderly: bool,
    strategy: Option<String>,
    replace_subscription: bool,
    start: StartPosition,
    limits: FlowLimits,
    pull_batch_size: u32,
    long_poll_wait: Duration,
    retry_delay: Duration,
    listener: Listener,
    /// How long the broker's queue locks last, as its last lock answer said (orderly mode).
    lock_expiry_ms: AtomicU64,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("group", &self.group)
            .field("topic", &self.topic)
            .field("member_id", &self.member_id)
            .field("mode", &self.mode)
            .field("orderly", &self.orderly)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Who pulls or commits a queue held since generation `since`.
    fn member_ref(&self, since: u64) -> MemberRef {
        MemberRef { member_id: self.member_id.clone(), generation: since }
    }

    /// The member's subscription, as its heartbeats carry it.
    fn member_subscription(&self) -> MemberSubscription {
        let plugin = self.subscription.plugin_ref();
        MemberSubscription {
            topic: self.topic.clone(),
            filter: self.subscription.filter().clone(),
            plugin: plugin.map(|(name, _)| name.to_owned()),
            plugin_params: plugin.map(|(_, params)| params.to_owned()).unwrap_or_default(),
        }
    }

    /// Calls the listener in its own task, so a panic fails this message, not the consumer.
    async fn call_listener(&self, message: StoredMessage) -> ConsumeStatus {
        tokio::spawn((self.listener)(message)).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "message listener panicked");
            ConsumeStatus::Failure
        })
    }
}

/// A pulled message on its way to the listener.
#[derive(Debug)]
struct Delivery {
    queue: Arc<QueueState>,
    message: StoredMessage,
}

/// Resolves once the consumer is told to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Hands deliveries to the listener, each in its own task, at most `concurrency` at
/// once; drops those of queues that stopped (their next owner gets them); on stop,
/// waits for the calls in progress.
async fn dispatch(
    context: Arc<Context>,
    mut delivered: mpsc::UnboundedReceiver<Delivery>,
    concurrency: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut consuming = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = concurrency.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stopped(&mut stop) => break,
        };
        let delivery = tokio::select! {
            delivery = delivered.recv() => delivery,
            () = stopped(&mut stop) => break,
        };
        let Some(delivery) = delivery else { break };
        if delivery.queue.is_stopped() {
            continue;
        }
        while consuming.try_join_next().is_some() {}
        consuming.spawn(consume(context.clone(), delivery, permit));
    }
    while consuming.join_next().await.is_some() {}
}

/// Consumes one delivery, holding its concurrency permit until done.
async fn consume(context: Arc<Context>, delivery: Delivery, _permit: OwnedSemaphorePermit) {
    queue::consume(&context, &delivery.queue, delivery.message).await;
}

/// Commits every `interval` until stopped.
async fn commit_periodically(member: Arc<Member>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stopped(&mut stop) => return,
        }
        member.commit_all().await;
    }
}

/// Renews the orderly member's queue locks every 20 s, or every third of their
/// lifetime when the broker's locks last less than a minute.
async fn renew_locks(context: Arc<Context>, member: Arc<Member>, mut stop: watch::Receiver<bool>) {
    loop {
        let expiry = Duration::from_millis(context.lock_expiry_ms.load(Ordering::Relaxed));
        let renewal = (expiry / 3).clamp(Duration::from_millis(100), Duration::from_secs(20));
        tokio::select! {
            () = tokio::time::sleep(renewal) => {}
            () = stopped(&mut stop) => return,
        }
        member.renew_locks().await;
    }
}

/// `<host>@<pid>-<n>`: unique per consumer in this process.
fn default_member_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}@{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A random session id: the broker tells a restarted member from a duplicate by it.
fn random_session() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}
