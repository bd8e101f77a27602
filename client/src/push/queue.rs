//! One assigned queue of a push consumer: its bookkeeping, and the task that pulls it.
//!
//! The puller long-polls the broker as the group member that owns the queue and pauses
//! while the queue's cache is over its flow-control limits. In concurrent mode it hands
//! messages to the dispatcher; in orderly mode it first takes the broker's lock on the
//! queue and then consumes its messages itself, one at a time, in queue order, retrying a
//! failed message in place. It stops when told to, or when the broker says the member
//! no longer owns the queue.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use weir_protocol::{ErrorCode, PullRequest, PullStatus, StoredMessage};

use super::listener::ConsumeStatus;
use super::process_queue::ProcessQueue;
use super::{Context, Delivery};

/// Pause after a failed pull before pulling that queue again.
const PULL_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// Pause between attempts to lock a queue another member still holds (orderly mode).
const LOCK_RETRY: Duration = Duration::from_millis(500);

/// One assigned queue's bookkeeping, shared by its puller, the listener calls, the
/// committer and the member.
#[derive(Debug)]
pub(super) struct QueueState {
    pub(super) queue_id: u32,
    /// The generation the member holds the queue since: pulls and commits carry it.
    pub(super) since: u64,
    process: Mutex<ProcessQueue>,
    /// Notified when a message is consumed, so a paused puller checks its limits again.
    space: Notify,
    /// The offset last committed (or fetched at start).
    committed: Mutex<Option<u64>>,
    /// Set when the queue must stop: revoked, fenced by the broker, or the consumer stops.
    stop: watch::Sender<bool>,
    /// Listener calls in progress for this queue, and a notice when they reach zero.
    running: AtomicUsize,
    idle: Notify,
    /// Whether the broker fenced a pull or commit (the member lost the queue).
    fenced: AtomicBool,
}

impl QueueState {
    pub(super) fn new(queue_id: u32, since: u64, offset: u64, committed: Option<u64>) -> Self {
        QueueState {
            queue_id,
            since,
            process: Mutex::new(ProcessQueue::new(offset)),
            space: Notify::new(),
            committed: Mutex::new(committed),
            stop: watch::channel(false).0,
            running: AtomicUsize::new(0),
            idle: Notify::new(),
            fenced: AtomicBool::new(false),
        }
    }

    pub(super) fn process(&self) -> std::sync::MutexGuard<'_, ProcessQueue> {
        self.process.lock().expect("process queue lock")
    }

    /// Tells the puller and the dispatcher to leave this queue alone.
    pub(super) fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub(super) fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the queue is told to stop.
    pub(super) async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|stop| *stop).await;
    }

    /// Records that the broker refused this member the queue, and stops it.
    pub(super) fn fence(&self) {
        self.fenced.store(true, Ordering::Relaxed);
        self.stop();
    }

    pub(super) fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Relaxed)
    }

    /// The offset to commit, if it changed since the last commit.
    pub(super) fn to_commit(&self) -> Option<u64> {
        let offset = self.process().commit_offset();
        (*self.committed.lock().expect("committed offset lock") != Some(offset)).then_some(offset)
    }

    pub(super) fn committed(&self, offset: u64) {
        *self.committed.lock().expect("committed offset lock") = Some(offset);
    }

    /// Counts a listener call starting; the guard counts it finished.
    pub(super) fn call_started(self: &Arc<Self>) -> CallGuard {
        self.running.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.clone())
    }

    /// Waits until no listener call of this queue is in progress, or `limit` passes.
    pub(super) async fn wait_idle(&self, limit: Duration) {
        let idle = async {
            loop {
                let notified = self.idle.notified();
                if self.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, idle).await;
    }

    fn consumed(&self, offset: u64) {
        self.process().consumed(offset);
        self.space.notify_one();
    }
}

/// A listener call in progress; dropping it marks the call finished.
#[derive(Debug)]
pub(super) struct CallGuard(Arc<QueueState>);

impl CallGuard {
    /// Marks the message at `offset` consumed.
    pub(super) fn consumed(&self, offset: u64) {
        self.0.consumed(offset);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Pulls `queue` until it is stopped or fenced; in orderly mode also consumes it.
pub(super) async fn pull_queue(
    context: Arc<Context>,
    queue: Arc<QueueState>,
    deliveries: mpsc::UnboundedSender<Delivery>,
) {
    if context.orderly && !lock(&context, &queue).await {
        return;
    }
    loop {
        while queue.process().is_over(context.limits) {
            tokio::select! {
                () = queue.space.notified() => {}
                () = queue.stopped() => return,
            }
        }
        let offset = queue.process().pulled_up_to();
        let request = PullRequest {
            consumer_group: context.group.clone(),
            topic: context.topic.clone(),
            queue_id: queue.queue_id,
            offset,
            max_messages: context.pull_batch_size,
            max_wait_ms: u32::try_from(context.long_poll_wait.as_millis()).unwrap_or(u32::MAX),
            filter: weir_protocol::FilterExpression::Subscribed,
            member: Some(context.member_ref(queue.since)),
        };
        let pulled = tokio::select! {
            pulled = context.client.pull(request) => pulled,
            () = queue.stopped() => return,
        };
        let response = match pulled {
            Ok(response) => response,
            Err(error) if lost_queue(error.code()) => {
                tracing::debug!(queue_id = queue.queue_id, %error, "the broker fenced this queue; stopping it");
                queue.fence();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, queue_id = queue.queue_id, "pull failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(PULL_ERROR_BACKOFF) => {}
                    () = queue.stopped() => return,
                }
                continue;
            }
        };
        if matches!(response.status, PullStatus::OffsetIllegal | PullStatus::OffsetMoved) {
            let (queue_id, next) = (queue.queue_id, response.next_offset);
            tracing::warn!(queue_id, offset, next, status = ?response.status, "pull offset not served; moving on");
        }
        let messages = response.messages;
        queue.process().pulled(messages.iter().map(|m| (m.queue_offset, m.body.len())), response.next_offset);
        if context.orderly {
            // One message at a time: a later message of the queue never passes a failed one.
            for message in messages {
                if queue.is_stopped() || !consume(&context, &queue, message).await {
                    return;
                }
            }
        } else {
            for message in messages {
                if deliveries.send(Delivery { queue: queue.clone(), message }).is_err() {
                    return; // the dispatcher has stopped
                }
            }
        }
    }
}

/// Whether a broker error means this member no longer owns the queue.
pub(super) fn lost_queue(code: Option<ErrorCode>) -> bool {
    matches!(code, Some(ErrorCode::NotAssigned | ErrorCode::UnknownMember))
}

/// Takes the broker's lock on the queue, retrying while another member holds it;
/// false if the queue stopped first.
async fn lock(context: &Context, queue: &QueueState) -> bool {
    loop {
        let member = context.member_ref(queue.since);
        match context.client.lock_queues(&context.group, &member, &context.topic, vec![queue.queue_id]).await {
            Ok((locked, expiry)) if locked.contains(&queue.queue_id) => {
                context.lock_expiry_ms.store(expiry.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
                return true;
            }
            Ok(_) => tracing::debug!(queue_id = queue.queue_id, "queue still locked by its previous owner"),
            Err(error) if lost_queue(error.code()) => {
                queue.fence();
                return false;
            }
            Err(error) => tracing::warn!(%error, queue_id = queue.queue_id, "locking the queue failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(LOCK_RETRY) => {}
            () = queue.stopped() => return false,
        }
    }
}

/// Calls the listener for `message` until it succeeds, pausing the retry delay after
/// each failure, then marks it consumed; false if the queue stopped first.
pub(super) async fn consume(context: &Context, queue: &Arc<QueueState>, message: StoredMessage) -> bool {
    let offset = message.queue_offset;
    let call = queue.call_started();
    loop {
        if context.call_listener(message.clone()).await == ConsumeStatus::Success {
            call.consumed(offset);
            return true;
        }
        tracing::debug!(queue_id = queue.queue_id, offset, "consume failed; retrying");
        tokio::select! {
            () = tokio::time::sleep(context.retry_delay) => {}
            () = queue.stopped() => return false,
        }
    }
}
