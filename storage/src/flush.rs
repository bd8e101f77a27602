//! The flush service: moves CommitLog bytes from the page cache to disk.
//!
//! Under `async` flush a background thread flushes every interval. Under
//! `sync` flush each appender waits until its bytes are flushed; whoever is
//! waiting when the flusher starts shares that one flush (group commit),
//! because the flusher always flushes everything published so far.
//!
//! Group commit is adaptive: before a flush, the flusher waits (at most half
//! the previous flush's duration) until as many appenders wait as the previous
//! flush released. Many concurrent writers then share each flush instead of
//! the first one after a flush triggering the next alone; a lone writer is
//! flushed at once.
//!
//! A waiter is a blocked thread ([`FlushService::wait_durable`]) or a future
//! ([`Durable`]): the flusher wakes every future its flush covered with one
//! waker call each, so an async server waits for durability without parking a
//! thread per append.
//!
//! A failed flush is fatal (fail-stop): the store refuses appends until it is
//! reopened, since the kernel may have dropped the dirty pages.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::commitlog::CommitLog;
use crate::config::FlushMode;

#[derive(Debug, Default)]
struct FlushState {
    /// Highest offset some appender waits for.
    requested: u64,
    /// Everything below this offset is on disk.
    flushed: u64,
    /// Set after a failed flush.
    failed: Option<String>,
    shutdown: bool,
    /// Appenders blocked in `wait_durable`.
    waiting: usize,
    /// Futures waiting: id → (offset they wait for, waker).
    futures: HashMap<u64, (u64, Waker)>,
    next_future: u64,
    /// How many appenders the previous flush covered: the batch to wait for.
    expected_batch: usize,
    /// How long the previous flush took.
    last_flush: Duration,
    /// Flushes made, and the time they took.
    flushes: u64,
    flush_time: Duration,
}

/// Longest the flusher waits for a batch to gather.
const MAX_GATHER: Duration = Duration::from_millis(2);

/// Whether a waiting append saw its bytes reach the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    /// Flushed in time.
    Flushed,
    /// Not flushed within the timeout (the record stays in the log).
    TimedOut,
    /// The flush failed; the store is stopped.
    Failed(String),
}

/// Shared state of the flush service.
#[derive(Debug)]
pub struct FlushService {
    state: Mutex<FlushState>,
    wake_flusher: Condvar,
    progress: Condvar,
}

impl FlushService {
    /// A flush service whose bytes below `flushed` are already durable.
    pub fn new(flushed: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(FlushState { requested: flushed, flushed, ..FlushState::default() }),
            wake_flusher: Condvar::new(),
            progress: Condvar::new(),
        })
    }

    /// Everything below this offset is durable.
    pub fn flushed(&self) -> u64 {
        self.state.lock().flushed
    }

    /// Flushes made so far (with the bytes appended, the messages per fsync).
    pub fn flushes(&self) -> u64 {
        self.state.lock().flushes
    }

    /// Once a flush failed, where the durable bytes end: nothing past it may be served.
    pub fn failed_at(&self) -> Option<u64> {
        let state = self.state.lock();
        state.failed.as_ref().map(|_| state.flushed)
    }

    /// The failure that stopped the store, if any.
    pub fn failure(&self) -> Option<String> {
        self.state.lock().failed.clone()
    }

    /// Blocks until bytes below `end` are durable, the flush fails, or `timeout` passes.
    pub fn wait_durable(&self, end: u64, timeout: Duration) -> Durability {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        state.requested = state.requested.max(end);
        state.waiting += 1;
        // Wake the flusher even when it is already requested: it counts waiters to size the batch.
        self.wake_flusher.notify_one();
        let outcome = loop {
            if let Some(failure) = &state.failed {
                break Durability::Failed(failure.clone());
            }
            if state.flushed >= end {
                break Durability::Flushed;
            }
            if self.progress.wait_until(&mut state, deadline).timed_out() && state.flushed < end {
                break Durability::TimedOut;
            }
        };
        state.waiting -= 1;
        outcome
    }

    /// A future that resolves once bytes below `end` are durable (or the flush fails).
    pub fn durable(self: &Arc<Self>, end: u64) -> Durable {
        Durable { service: self.clone(), end, id: None }
    }

    /// Wakes the futures a flush up to `flushed` covered (all of them after a failure).
    fn wake_futures(state: &mut FlushState) {
        let (flushed, failed) = (state.flushed, state.failed.is_some());
        state.futures.retain(|_, (end, waker)| {
            let done = failed || *end <= flushed;
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }

    /// Starts the flusher thread for `mode`.
    pub fn spawn(self: &Arc<Self>, log: Arc<CommitLog>, mode: FlushMode) -> std::io::Result<JoinHandle<()>> {
        let service = self.clone();
        std::thread::Builder::new().name("weir-flush".into()).spawn(move || service.run(&log, mode))
    }

    fn run(&self, log: &CommitLog, mode: FlushMode) {
        let mut state = self.state.lock();
        loop {
            match mode {
                FlushMode::Async { interval } => {
                    self.wake_flusher.wait_for(&mut state, interval);
                }
                FlushMode::Sync { .. } => {
                    while state.requested <= state.flushed && !state.shutdown {
                        // Also flush periodically, so async-style writes never sit dirty for long.
                        if self.wake_flusher.wait_for(&mut state, Duration::from_millis(500)).timed_out() {
                            break;
                        }
                    }
                    // Let the expected batch gather, bounded by half the last flush time.
                    let gather_until = Instant::now() + (state.last_flush / 2).min(MAX_GATHER);
                    while state.waiting + state.futures.len() < state.expected_batch && !state.shutdown {
                        if self.wake_flusher.wait_until(&mut state, gather_until).timed_out() {
                            break;
                        }
                    }
                }
            }
            let covered = state.waiting + state.futures.len();
            let shutdown = state.shutdown;
            if state.failed.is_some() {
                return;
            }
            let from = state.flushed;
            drop(state);
            let to = log.committed();
            let started = Instant::now();
            let result = log.flush(from, to);
            state = self.state.lock();
            let took = started.elapsed();
            state.last_flush = took;
            state.flushes += 1;
            state.flush_time += took;
            state.expected_batch = covered.max(1);
            match result {
                Ok(()) => state.flushed = state.flushed.max(to),
                Err(err) => {
                    tracing::error!(%err, "CommitLog flush failed; the store refuses writes until reopened");
                    state.failed = Some(err.to_string());
                }
            }
            self.progress.notify_all();
            Self::wake_futures(&mut state);
            if shutdown {
                let mean_us = state.flush_time.as_micros() as u64 / state.flushes.max(1);
                tracing::info!(flushes = state.flushes, mean_us, "flusher stopped");
                return;
            }
        }
    }

    /// Flushes once more and stops the flusher thread.
    pub fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.wake_flusher.notify_all();
    }
}

/// Resolves once the bytes of an append are durable: `Ok`, or `Err` with the reason
/// when the flush failed (the store is stopped). Time it out with the runtime's timer;
/// dropping it withdraws the wait.
#[derive(Debug)]
#[must_use = "a durability wait does nothing unless awaited"]
pub struct Durable {
    service: Arc<FlushService>,
    end: u64,
    /// Its registration with the flusher, once polled.
    id: Option<u64>,
}

impl Future for Durable {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut state = this.service.state.lock();
        let outcome = match &state.failed {
            Some(failure) => Some(Err(failure.clone())),
            None => (state.flushed >= this.end).then_some(Ok(())),
        };
        if let Some(outcome) = outcome {
            if let Some(id) = this.id.take() {
                state.futures.remove(&id);
            }
            return Poll::Ready(outcome);
        }
        let id = *this.id.get_or_insert_with(|| {
            state.next_future += 1;
            state.next_future
        });
        state.futures.insert(id, (this.end, cx.waker().clone()));
        state.requested = state.requested.max(this.end);
        // Wake the flusher even when it is already requested: it counts waiters to size the batch.
        this.service.wake_flusher.notify_one();
        Poll::Pending
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.service.state.lock().futures.remove(&id);
        }
    }
}
