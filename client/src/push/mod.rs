//! [`PushConsumer`]: pulls every queue of a topic in the background and hands each
//! message to a listener.
//!
//! Per queue, a puller task long-polls the broker and caches what it pulls; it pauses
//! while the queue's cache is over its flow-control limits. One dispatcher task hands
//! cached messages to the listener, at most `concurrency` at a time, each in its own
//! task. A committer task commits, per queue, the lowest offset not yet consumed,
//! periodically and once more on shutdown.
//!
//! Delivery is **at-least-once**: messages consumed after the last commit are delivered
//! again when a consumer of the group restarts (after a crash, or when shutdown's final
//! commit fails), and a message whose listener call failed is delivered again. Listeners
//! should tolerate duplicates (for example by de-duplicating on a business key).

mod listener;
mod process_queue;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use weir_protocol::{PullStatus, StoredMessage};

pub use self::listener::{ConsumeStatus, MessageListener};
use self::process_queue::{FlowLimits, ProcessQueue};
use crate::client::Client;
use crate::error::Error;
use crate::pull::PullConsumer;
use crate::subscription::Subscription;

/// Pause after a failed pull before pulling that queue again.
const PULL_ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Where a [`PushConsumer`] starts reading each queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartPosition {
    /// The group's committed offset; the queue's first stored message where the group
    /// never committed one.
    #[default]
    CommittedOrEarliest,
    /// The group's committed offset; only messages arriving after start where the group
    /// never committed one.
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
}

impl PushConsumerBuilder {
    /// What the group receives (tag expression or SQL92, filtered by the broker; or a
    /// shadow group); default every message. Registered at the broker on start.
    pub fn subscription(mut self, subscription: Subscription) -> Self {
        self.subscription = subscription;
        self
    }

    /// Where to start each queue; default [`StartPosition::CommittedOrEarliest`].
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

    /// Looks up the topic's read queues and their start offsets, then starts consuming
    /// all of them with `listener`.
    pub async fn start<L: MessageListener>(self, listener: L) -> Result<PushConsumer, Error> {
        let topic = self.client.topic(&self.topic).await?;
        let mut consumer = PullConsumer::new(self.client.clone(), self.group);
        consumer.subscribe(&self.topic, &self.subscription).await?;
        let mut queues = Vec::new();
        for queue_id in 0..topic.read_queues {
            let (offset, committed) = start_offset(&self.client, &consumer, &self.topic, queue_id, self.start).await?;
            queues.push(Arc::new(QueueState::new(queue_id, offset, committed)));
        }

        let (stop, stopped) = watch::channel(false);
        let (deliveries, delivered) = mpsc::unbounded_channel();
        let context = Arc::new(Context {
            consumer,
            topic: self.topic,
            limits: self.limits,
            pull_batch_size: self.pull_batch_size,
            long_poll_wait: self.long_poll_wait,
            retry_delay: self.retry_delay,
        });
        let mut tasks: Vec<JoinHandle<()>> = queues
            .iter()
            .map(|queue| tokio::spawn(pull_queue(context.clone(), queue.clone(), deliveries.clone(), stopped.clone())))
            .collect();
        let concurrency = Arc::new(Semaphore::new(self.concurrency));
        tasks.push(tokio::spawn(dispatch(
            context.clone(),
            Arc::new(listener),
            delivered,
            concurrency,
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(commit_periodically(context.clone(), queues.clone(), self.commit_interval, stopped)));
        tracing::debug!(topic = %context.topic, group = context.consumer.group(), queues = queues.len(), "push consumer started");
        Ok(PushConsumer { context, queues, stop, tasks })
    }
}

/// Consumes every queue of a topic for a consumer group, calling a [`MessageListener`]
/// for each message.
///
/// Delivery is at-least-once: messages consumed after the last commit are delivered
/// again to the group's next consumer, and failed messages are retried, so listeners
/// must tolerate duplicates.
///
/// Consumer groups and rebalancing come later: a push consumer takes all queues of its
/// topic, so run one per group and topic. Stop it with [`shutdown`](Self::shutdown),
/// which commits what was consumed; dropping it stops its tasks without the final
/// commit.
#[derive(Debug)]
pub struct PushConsumer {
    context: Arc<Context>,
    queues: Vec<Arc<QueueState>>,
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
            limits: FlowLimits { max_messages: 1000, max_bytes: 100 * 1024 * 1024 },
            pull_batch_size: 32,
            long_poll_wait: Duration::from_secs(15),
            commit_interval: Duration::from_secs(5),
            retry_delay: Duration::from_secs(1),
        }
    }

    /// The topic consumed.
    pub fn topic(&self) -> &str {
        &self.context.topic
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        self.context.consumer.group()
    }

    /// Messages pulled and not yet consumed, over all queues.
    pub fn cached_messages(&self) -> usize {
        self.queues.iter().map(|queue| queue.process().cached_messages()).sum()
    }

    /// Body bytes pulled and not yet consumed, over all queues.
    pub fn cached_bytes(&self) -> u64 {
        self.queues.iter().map(|queue| queue.process().cached_bytes()).sum()
    }

    /// Stops pulling, lets listener calls in progress finish (messages waiting for a
    /// retry are not retried), waits for every task, then commits each queue's lowest
    /// unconsumed offset. Messages pulled but not consumed are delivered again to the
    /// group's next consumer.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            if let Err(error) = task.await {
                tracing::warn!(%error, "push consumer task failed");
            }
        }
        commit_all(&self.context, &self.queues).await
    }
}

impl Drop for PushConsumer {
    /// Tells the tasks to stop (a no-op after [`PushConsumer::shutdown`]).
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// What the tasks of one push consumer share.
#[derive(Debug)]
struct Context {
    consumer: PullConsumer,
    topic: String,
    limits: FlowLimits,
    pull_batch_size: u32,
    long_poll_wait: Duration,
    retry_delay: Duration,
}

/// One queue's bookkeeping, shared by its puller, the listener calls and the committer.
#[derive(Debug)]
struct QueueState {
    queue_id: u32,
    process: Mutex<ProcessQueue>,
    /// Notified when a message is consumed, so a paused puller checks its limits again.
    space: Notify,
    /// The offset last committed (or fetched at start).
    committed: Mutex<Option<u64>>,
}

impl QueueState {
    fn new(queue_id: u32, offset: u64, committed: Option<u64>) -> Self {
        QueueState {
            queue_id,
            process: Mutex::new(ProcessQueue::new(offset)),
            space: Notify::new(),
            committed: Mutex::new(committed),
        }
    }

    fn process(&self) -> std::sync::MutexGuard<'_, ProcessQueue> {
        self.process.lock().expect("process queue lock")
    }

    fn consumed(&self, offset: u64) {
        self.process().consumed(offset);
        self.space.notify_one();
    }
}

/// A pulled message on its way to the listener.
#[derive(Debug)]
struct Delivery {
    queue: Arc<QueueState>,
    message: StoredMessage,
}

/// The offset to start `queue_id` from, and the group's committed offset if it is the
/// one used.
async fn start_offset(
    client: &Client,
    consumer: &PullConsumer,
    topic: &str,
    queue_id: u32,
    start: StartPosition,
) -> Result<(u64, Option<u64>), Error> {
    if matches!(start, StartPosition::CommittedOrEarliest | StartPosition::CommittedOrLatest)
        && let Some(committed) = consumer.fetch_offset(topic, queue_id).await?
    {
        return Ok((committed, Some(committed)));
    }
    let offset = match start {
        StartPosition::CommittedOrEarliest | StartPosition::Earliest => {
            client.queue_offsets(topic, queue_id).await?.start
        }
        StartPosition::CommittedOrLatest | StartPosition::Latest => client.queue_offsets(topic, queue_id).await?.end,
        StartPosition::Timestamp(timestamp_ms) => client.offset_by_timestamp(topic, queue_id, timestamp_ms).await?,
    };
    Ok((offset, None))
}

/// Resolves once the consumer is told to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Long-polls one queue until stopped, pausing while its cache is over the limits.
async fn pull_queue(
    context: Arc<Context>,
    queue: Arc<QueueState>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        while queue.process().is_over(context.limits) {
            tokio::select! {
                () = queue.space.notified() => {}
                () = stopped(&mut stop) => return,
            }
        }
        let offset = queue.process().pulled_up_to();
        let pull = context.consumer.pull(
            &context.topic,
            queue.queue_id,
            offset,
            context.pull_batch_size,
            context.long_poll_wait,
        );
        let pulled = tokio::select! {
            pulled = pull => pulled,
            () = stopped(&mut stop) => return,
        };
        match pulled {
            Ok(response) => {
                if matches!(response.status, PullStatus::OffsetIllegal | PullStatus::OffsetMoved) {
                    let (queue_id, next) = (queue.queue_id, response.next_offset);
                    tracing::warn!(queue_id, offset, next, status = ?response.status, "pull offset not served; moving on");
                }
                let messages = response.messages;
                queue.process().pulled(
                    messages.iter().map(|message| (message.queue_offset, message.body.len())),
                    response.next_offset,
                );
                for message in messages {
                    if deliveries.send(Delivery { queue: queue.clone(), message }).is_err() {
                        return; // the dispatcher has stopped
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, queue_id = queue.queue_id, "pull failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(PULL_ERROR_BACKOFF) => {}
                    () = stopped(&mut stop) => return,
                }
            }
        }
    }
}

/// Hands deliveries to the listener, each in its own task, at most `concurrency` at
/// once; on stop, waits for the calls in progress.
async fn dispatch<L: MessageListener>(
    context: Arc<Context>,
    listener: Arc<L>,
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
        while consuming.try_join_next().is_some() {}
        consuming.spawn(consume(context.clone(), listener.clone(), delivery, permit, stop.clone()));
    }
    while consuming.join_next().await.is_some() {}
}

/// Calls the listener until it succeeds (pausing the retry delay after each failure)
/// or the consumer stops, then marks the message consumed.
async fn consume<L: MessageListener>(
    context: Arc<Context>,
    listener: Arc<L>,
    delivery: Delivery,
    _permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let offset = delivery.message.queue_offset;
    loop {
        let (listener, message) = (listener.clone(), delivery.message.clone());
        // Its own task, so a panicking listener fails this message, not the consumer.
        let status = tokio::spawn(async move { listener.consume(message).await }).await.unwrap_or_else(|error| {
            tracing::warn!(%error, "message listener panicked");
            ConsumeStatus::Failure
        });
        if status == ConsumeStatus::Success {
            break;
        }
        tracing::debug!(queue_id = delivery.queue.queue_id, offset, "consume failed; retrying");
        tokio::select! {
            () = tokio::time::sleep(context.retry_delay) => {}
            () = stopped(&mut stop) => return,
        }
    }
    delivery.queue.consumed(offset);
}

/// Commits every `interval` until stopped; failures are logged and retried next time.
async fn commit_periodically(
    context: Arc<Context>,
    queues: Vec<Arc<QueueState>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stopped(&mut stop) => return,
        }
        if let Err(error) = commit_all(&context, &queues).await {
            tracing::warn!(%error, "committing consumer offsets failed");
        }
    }
}

/// Commits each queue's lowest unconsumed offset where it changed; returns the first
/// failure after trying every queue.
async fn commit_all(context: &Context, queues: &[Arc<QueueState>]) -> Result<(), Error> {
    let mut first_error = None;
    for queue in queues {
        let offset = queue.process().commit_offset();
        if *queue.committed.lock().expect("committed offset lock") == Some(offset) {
            continue;
        }
        match context.consumer.commit_offset(&context.topic, queue.queue_id, offset).await {
            Ok(()) => *queue.committed.lock().expect("committed offset lock") = Some(offset),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
