//! The `weir-timer` thread: takes the timers due, re-publishes their messages to their
//! real topics, and commits the delivery once the appends are durable.
//!
//! A dedicated OS thread, never an async worker: it reads the timer log, appends and
//! waits for fsyncs. The timer store's mutex is held only to take and to commit, never
//! across an append, so the dispatcher (filing new timers) waits for no flush.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use weir_storage::{AppendStatus, CqEntry, MessageId, ReadError};
use weir_timer::{DeliveryMark, Due};

use super::{TIMER_TOPIC, Timers, now_ms, target, to_real_message};
use crate::core::Core;

/// Most timers taken per round.
const BATCH: usize = 1024;
/// Most body bytes per append (a batch is one contiguous run of the CommitLog).
const APPEND_BYTES: usize = 4 << 20;
/// Longest sleep between rounds, whatever the tick length.
const MAX_WAKE: Duration = Duration::from_millis(500);
/// First and longest wait before a failed delivery is tried again.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The running delivery thread.
#[derive(Debug)]
pub(crate) struct DeliveryThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl DeliveryThread {
    /// Starts delivering `timers` through `core` (held weakly: the thread ends with it).
    pub(crate) fn spawn(core: Weak<Core>, timers: Arc<Timers>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::Builder::new().name("weir-timer".into()).spawn(move || {
            let mut delivery = Delivery { timers, taken: Vec::new(), mark: None, backoff: RETRY_MIN };
            while !stopping.load(Ordering::Acquire) {
                let Some(core) = core.upgrade() else { break };
                let wait = delivery.round(&core);
                drop(core);
                std::thread::park_timeout(wait);
            }
        })?;
        Ok(Self { stop, handle: Some(handle) })
    }

    /// Stops the thread after its current round and waits for it. Timers taken but not
    /// committed are taken again after the next open (at least once).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            // The thread itself drops the core when it held the last reference (a broker
            // dropped without `close`): it ends by itself after this round.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for DeliveryThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the thread carries between rounds.
struct Delivery {
    timers: Arc<Timers>,
    /// Timers taken and not yet re-published (an append failed): retried first.
    taken: Vec<Due>,
    /// Commits everything taken so far, once `taken` is empty.
    mark: Option<DeliveryMark>,
    backoff: Duration,
}

impl Delivery {
    /// One round: take what is due, publish it, commit. Returns how long to sleep.
    fn round(&mut self, core: &Core) -> Duration {
        let idle = Duration::from_millis((self.timers.precision_ms() / 2).max(1)).min(MAX_WAKE);
        loop {
            if self.taken.is_empty() {
                let now = now_ms();
                let taken = match self.timers.with_open(|store| store.take_due(now, BATCH)) {
                    None => return idle, // no delayed message yet
                    Some(Ok(taken)) => taken,
                    Some(Err(err)) => return self.failed(&format!("taking due timers: {err}")),
                };
                self.mark = Some(taken.mark);
                self.taken = taken.dues;
                if self.taken.is_empty() {
                    // Ticks may have closed without timers: commit them, so the window moves.
                    return match self.commit() {
                        Ok(()) => idle,
                        Err(why) => self.failed(&why),
                    };
                }
            }
            if let Err(why) = self.publish(core) {
                return self.failed(&why);
            }
            self.taken.clear();
            if let Err(why) = self.commit() {
                return self.failed(&why);
            }
            self.backoff = RETRY_MIN;
        }
    }

    fn commit(&mut self) -> Result<(), String> {
        let Some(mark) = self.mark else { return Ok(()) };
        match self.timers.with_open(|store| store.commit_delivered(mark)) {
            Some(Err(err)) => Err(format!("committing delivered timers: {err}")),
            _ => Ok(()),
        }
    }

    fn failed(&mut self, why: &str) -> Duration {
        if self.backoff == RETRY_MIN {
            tracing::error!(%why, "delayed delivery failed; retrying");
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
        wait
    }

    /// Appends the messages of the timers taken to their real topics, durably under
    /// sync flush. Timers whose topic is gone, whose record is gone or stale are
    /// counted and skipped.
    fn publish(&self, core: &Core) -> Result<(), String> {
        let store = core.store();
        let counters = &self.timers.counters;
        let mut batch = Vec::new();
        let mut bytes = 0;
        for due in &self.taken {
            let entry = CqEntry { commitlog_offset: due.payload.commitlog_offset, size: due.payload.size, tag_hash: 0 };
            let record = match store.read_entry(&entry) {
                Ok(record) => record,
                Err(err @ ReadError::Io(_)) => {
                    return Err(format!("reading delayed message at {}: {err}", due.payload.commitlog_offset));
                }
                Err(err) => {
                    tracing::error!(offset = due.payload.commitlog_offset, %err, "a due delayed message is gone; dropped");
                    counters.lost.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let view = record.view();
            let target = match target(&view) {
                Some(target) if view.topic() == TIMER_TOPIC && target.deliver_at_ms == due.due_ms => target,
                _ => {
                    tracing::debug!(offset = due.payload.commitlog_offset, "stale timer (its record was cut) skipped");
                    counters.stale.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let Some(topic) = core.topic(target.topic).ok() else {
                tracing::warn!(
                    msg_id = %MessageId { store_id: store.store_id(), commitlog_offset: due.payload.commitlog_offset },
                    topic = target.topic,
                    "a delayed message's topic was deleted; dropped"
                );
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            // A topic whose write queues shrank meanwhile: the same queue modulo the count.
            let queue_id = target.queue_id % topic.write_queues.max(1);
            bytes += view.body().len();
            batch.push(to_real_message(&view, target.topic, queue_id));
            if bytes >= APPEND_BYTES {
                append(store, &batch)?;
                counters.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                bytes = 0;
            }
        }
        append(store, &batch)?;
        counters.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Appends `batch`, waiting for its flush under sync flush.
fn append(store: &weir_storage::Store, batch: &[weir_storage::Message]) -> Result<(), String> {
    if batch.is_empty() {
        return Ok(());
    }
    let results = store.append_batch(batch).map_err(|err| format!("appending delayed messages: {err}"))?;
    if results.iter().any(|r| r.status != AppendStatus::SendOk) {
        // Appended, but not confirmed durable in time: append again rather than commit
        // a delivery a crash could take (a duplicate at worst).
        return Err("delayed messages were appended but their flush timed out".into());
    }
    Ok(())
}
