//! The dispatcher: follows the CommitLog and builds everything derived from
//! it — ConsumeQueue entries, the key index and any registered
//! [`DispatchHook`] (the bloom-filter writer, long-poll wake-ups).
//!
//! It runs on its own thread, woken by the appender, and is replayed on open
//! from the last checkpoint. Every step is idempotent, so replaying a record
//! twice changes nothing. The open replays for at most `replay_at_open` (see
//! [`crate::StoreConfig`]); the thread finishes a longer replay while the store
//! already serves (the records not yet replayed are dispatch lag, as under load).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::commitlog::{CommitLog, Step, StoredRecord};
use crate::consume_queue::{ConsumeQueueTable, CqEntry, PutOutcome};
use crate::index::{KeyIndex, fnv1a};
use crate::record::Check;
use crate::tombstones::Tombstones;

/// Hash of a tag as stored in ConsumeQueue entries (FNV-1a 64; 0 for no tag).
///
/// Part of the storage format: changing it needs a new format version.
pub fn tag_hash(tag: &str) -> u64 {
    if tag.is_empty() { 0 } else { fnv1a(tag.bytes()) }
}

/// One dispatched record, as a hook sees it.
#[derive(Debug)]
pub struct Dispatched<'a> {
    /// The record (verified).
    pub record: &'a StoredRecord,
    /// Its ConsumeQueue entry.
    pub entry: CqEntry,
}

/// When a [`DispatchHook`] runs relative to the record's ConsumeQueue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HookOrder {
    /// Before the entry is written: an index that readers of the entry rely on
    /// (the bloom index), so it is complete for every entry a reader can see.
    BeforeQueueEntry,
    /// After the entry is written: reactions to it (long-poll wake-ups).
    #[default]
    AfterQueueEntry,
}

/// A second index writer that follows the CommitLog (e.g. the per-message
/// bloom filter), registered when the store opens.
///
/// Calls come from the dispatcher thread in CommitLog order. After a crash,
/// records from the last checkpoint on are dispatched again, so `dispatch`
/// must be idempotent per (topic, queue id, queue offset).
pub trait DispatchHook: Send + Sync {
    /// Handles one record, before or after its ConsumeQueue entry is written (see [`order`](Self::order)).
    fn dispatch(&self, dispatched: &Dispatched<'_>) -> std::io::Result<()>;
    /// When [`dispatch`](Self::dispatch) runs; after the ConsumeQueue entry unless overridden.
    fn order(&self) -> HookOrder {
        HookOrder::AfterQueueEntry
    }
    /// Makes everything dispatched so far durable (called before each checkpoint).
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    /// On open: return the CommitLog offset from which the hook needs records
    /// replayed (`None`: the checkpoint suffices). With `cut` (the last run crashed,
    /// or the CommitLog was cut at `valid_end`), first drop state for records at or
    /// past `valid_end`; without, none can exist.
    fn recover(&self, valid_end: u64, cut: bool) -> std::io::Result<Option<u64>> {
        let _ = (valid_end, cut);
        Ok(None)
    }
    /// Retention moved the first served offset of a queue to `min_queue_offset`:
    /// state for earlier entries may be deleted.
    fn retain(&self, topic: &str, queue_id: u32, min_queue_offset: u64) -> std::io::Result<()> {
        let _ = (topic, queue_id, min_queue_offset);
        Ok(())
    }
    /// `topic` was deleted: drop everything kept for it. Its records are never
    /// dispatched again; a topic created under the same name starts at queue offset 0.
    fn delete_topic(&self, topic: &str) -> std::io::Result<()> {
        let _ = topic;
        Ok(())
    }
    /// Bytes of the files the hook keeps (for the store's disk figures).
    fn disk_bytes(&self) -> u64 {
        0
    }
}

/// How often derived files are flushed and the checkpoint written.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How often the dispatcher looks for new records while traffic flows.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Empty polls after which the dispatcher sleeps until an append wakes it.
const IDLE_POLLS_BEFORE_SLEEP: u32 = 100;
/// Dirty ConsumeQueues above which a checkpoint syncs the whole file system once
/// instead of flushing each file.
const SYNC_FILE_SYSTEM_ABOVE: usize = 64;
/// First and longest wait before a failed dispatch step is tried again.
const RETRY_MIN: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// State shared between the dispatcher thread and the store.
pub struct Dispatcher {
    log: Arc<CommitLog>,
    queues: ConsumeQueueTable,
    index: KeyIndex,
    hooks: Vec<Arc<dyn DispatchHook>>,
    tombstones: Tombstones,
    /// Records below this offset are dispatched.
    dispatched: AtomicU64,
    /// Records appended since the open that are dispatched (compared with those appended).
    dispatched_records: AtomicU64,
    /// Where the CommitLog ended at open: records before it are replayed, and a queue
    /// missing entries among them is rebuilt, not filled.
    replay_end: AtomicU64,
    /// Set by a rebuild from the oldest record: gaps are filled from then on.
    rebuilding: AtomicBool,
    /// Why the last dispatch step failed, until one succeeds: the store refuses writes meanwhile.
    failure: Mutex<Option<std::io::Error>>,
    thread: Mutex<Option<Thread>>,
    /// Set while the thread sleeps until woken; the appender only wakes it then.
    sleeping: AtomicBool,
    stop: AtomicBool,
    /// Serialises dispatching between the thread and callers that wait for it.
    step_lock: Mutex<()>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("dispatched", &self.dispatched).field("hooks", &self.hooks.len()).finish()
    }
}

/// Result of replaying the CommitLog into the derived files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// Where the replay started.
    pub from: u64,
    /// Whether a ConsumeQueue was missing entries, forcing a rebuild from the oldest record.
    pub rebuilt: bool,
    /// Whether the replay stopped on a write error (e.g. no space): the dispatcher
    /// thread retries it, and the store is read-only meanwhile.
    pub incomplete: bool,
    /// Whether the replay outlasted its time at open: the dispatcher thread finishes
    /// it while the store serves.
    pub deferred: bool,
}

/// How a run of the dispatcher ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Every published record is dispatched.
    CaughtUp,
    /// A replayed record's queue is missing earlier entries: rebuild every queue.
    Behind,
    /// The run's deadline passed first.
    Paused,
}

impl Dispatcher {
    /// A dispatcher over `log` writing to `queues`, `index` and `hooks`.
    pub fn new(
        log: Arc<CommitLog>,
        queues: ConsumeQueueTable,
        index: KeyIndex,
        hooks: Vec<Arc<dyn DispatchHook>>,
        tombstones: Tombstones,
    ) -> Self {
        Self {
            log,
            queues,
            index,
            hooks,
            tombstones,
            dispatched: AtomicU64::new(0),
            dispatched_records: AtomicU64::new(0),
            replay_end: AtomicU64::new(0),
            rebuilding: AtomicBool::new(false),
            failure: Mutex::new(None),
            thread: Mutex::new(None),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            step_lock: Mutex::new(()),
        }
    }

    /// The ConsumeQueues.
    pub fn queues(&self) -> &ConsumeQueueTable {
        &self.queues
    }
    /// The registered hooks.
    pub fn hooks(&self) -> &[Arc<dyn DispatchHook>] {
        &self.hooks
    }
    /// The key index.
    pub fn index(&self) -> &KeyIndex {
        &self.index
    }
    /// The tombstones of deleted topics.
    pub(crate) fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }
    /// Records below this offset are dispatched.
    pub fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Acquire)
    }
    /// Records dispatched since recovery ended.
    pub fn dispatched_records(&self) -> u64 {
        self.dispatched_records.load(Ordering::Acquire)
    }
    /// Why dispatching is failing, if it is (it is retried until it succeeds).
    pub fn failure(&self) -> Option<(std::io::ErrorKind, String)> {
        self.failure.lock().as_ref().map(|err| (err.kind(), err.to_string()))
    }

    /// Holds the dispatcher between two records until the guard drops (topic deletion;
    /// a checkpoint, so that a deletion never removes the files it is flushing).
    pub(crate) fn pause(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.step_lock.lock()
    }

    /// Open-time recovery: with `cut` (the last run crashed or the CommitLog was cut),
    /// cuts derived files back to `valid_end`; then replays from `from` (or from the
    /// oldest record when a queue turns out to be behind).
    /// A write error during the replay (no space for a queue file) does not fail the
    /// open: the replay is left to the dispatcher thread and the store stays read-only.
    pub fn recover(
        &self,
        valid_end: u64,
        cut: bool,
        from: u64,
        index_from: Option<u64>,
        replay_for: Duration,
    ) -> std::io::Result<Replay> {
        if cut {
            for queue in self.queues.values() {
                queue.truncate_after(valid_end)?;
            }
        }
        let mut from = index_from.map_or(from, |i| i.min(from));
        for hook in &self.hooks {
            if let Some(hook_from) = hook.recover(valid_end, cut)? {
                from = from.min(hook_from);
            }
        }
        let oldest = self.log.min_offset();
        let from = from.clamp(oldest, valid_end.max(oldest));
        self.replay_end.store(valid_end, Ordering::Release);
        self.dispatched.store(from, Ordering::Release);
        let (from, rebuilt, outcome) = match self.run_until_caught_up(Some(Instant::now() + replay_for)) {
            Ok(Progress::Behind) => {
                self.rebuild();
                (oldest, true, self.run_until_caught_up(None))
            }
            outcome => (from, false, outcome),
        };
        let (incomplete, deferred) = (outcome.is_err(), matches!(outcome, Ok(Progress::Paused)));
        if deferred {
            let left = valid_end.saturating_sub(self.dispatched());
            tracing::info!(bytes = left, "serving while the dispatcher replays the rest of the CommitLog");
        }
        self.record(outcome.map(|_| ()));
        Ok(Replay { from, rebuilt, incomplete, deferred })
    }

    /// A queue is missing entries the replay cannot supply: dispatch everything again
    /// from the oldest record, filling gaps (their records are gone).
    fn rebuild(&self) {
        tracing::warn!("a ConsumeQueue is missing entries; rebuilding all queues from the CommitLog");
        self.rebuilding.store(true, Ordering::Release);
        self.dispatched.store(self.log.min_offset(), Ordering::Release);
    }

    /// Keeps the outcome of a dispatch step: a failure makes the store read-only
    /// until a later step succeeds.
    fn record(&self, outcome: std::io::Result<()>) {
        let mut failure = self.failure.lock();
        match (outcome, failure.is_some()) {
            (Ok(()), true) => {
                tracing::info!(dispatched = self.dispatched(), "dispatch succeeds again; the store accepts writes");
                *failure = None;
            }
            (Err(err), was_failing) => {
                if !was_failing {
                    tracing::error!(%err, at = self.dispatched(), "dispatch failed: the store is read-only until it succeeds");
                }
                *failure = Some(err);
            }
            (Ok(()), false) => {}
        }
    }

    /// Dispatches every published record, or those until `deadline`. A queue missing
    /// earlier entries gets fillers, except for a replayed record (before the end the
    /// CommitLog had at open, unless rebuilding): that returns [`Progress::Behind`].
    fn run_until_caught_up(&self, deadline: Option<Instant>) -> std::io::Result<Progress> {
        let _guard = self.step_lock.lock();
        let mut pos = self.dispatched();
        let replay_end = self.replay_end.load(Ordering::Acquire);
        let rebuilding = self.rebuilding.load(Ordering::Acquire);
        let mut steps = 0u32;
        loop {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(256) && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Progress::Paused);
            }
            match self.log.step(pos, Check::Structure) {
                Step::Record { record, next } => {
                    if !self.dispatch(&record, rebuilding || pos >= replay_end)? {
                        return Ok(Progress::Behind);
                    }
                    if pos >= replay_end {
                        self.dispatched_records.fetch_add(1, Ordering::AcqRel);
                    }
                    pos = next;
                }
                Step::Skip { next } => pos = next,
                Step::End => break,
                Step::Corrupt(err) => {
                    // Cannot happen for published bytes unless memory or the file is damaged underneath us.
                    return Err(std::io::Error::other(format!("CommitLog offset {pos} is unreadable: {err}")));
                }
            }
            self.dispatched.store(pos, Ordering::Release);
        }
        self.dispatched.store(pos, Ordering::Release);
        Ok(Progress::CaughtUp)
    }

    fn dispatch(&self, record: &StoredRecord, fill_gaps: bool) -> std::io::Result<bool> {
        let view = record.view();
        if self.tombstones.is_dead(view.topic(), view.commitlog_offset()) {
            return Ok(true); // a deleted topic's record: never indexed again
        }
        let entry = CqEntry {
            commitlog_offset: view.commitlog_offset(),
            size: view.len() as u32,
            tag_hash: tag_hash(view.tag()),
        };
        let dispatched = Dispatched { record, entry };
        let run_hooks = |order: HookOrder| {
            self.hooks.iter().filter(|hook| hook.order() == order).try_for_each(|hook| hook.dispatch(&dispatched))
        };
        run_hooks(HookOrder::BeforeQueueEntry)?;
        // The key index too: a message a pull can see is also found by its keys.
        self.index.add(view.topic(), view.keys(), view.commitlog_offset())?;
        let queue = self.queues.get_or_create(view.topic(), view.queue_id())?;
        match queue.put(view.queue_offset(), entry)? {
            PutOutcome::Appended | PutOutcome::AlreadyPresent => {}
            PutOutcome::Behind { .. } if fill_gaps => {
                queue.fill_to(view.queue_offset())?;
                queue.put(view.queue_offset(), entry)?;
            }
            PutOutcome::Behind { .. } => return Ok(false),
        }
        run_hooks(HookOrder::AfterQueueEntry)?;
        Ok(true)
    }

    /// Flushes ConsumeQueues, the index and hooks; returns the offset now durable.
    ///
    /// With more than [`SYNC_FILE_SYSTEM_ABOVE`] dirty ConsumeQueues (many queues
    /// written since the last checkpoint), one sync of the file system under `dir`
    /// replaces a flush per file, the hooks' files included.
    pub fn flush(&self, dir: &std::path::Path) -> std::io::Result<u64> {
        let upto = self.dispatched();
        let queues = self.queues.values();
        if queues.iter().filter(|q| q.is_dirty()).count() > SYNC_FILE_SYSTEM_ABOVE {
            self.queues.budget().sync_file_system(dir)?;
        }
        for queue in queues {
            queue.flush()?;
        }
        self.index.flush()?;
        for hook in &self.hooks {
            hook.flush()?;
        }
        Ok(upto)
    }

    /// Wakes the dispatcher thread if it sleeps (called after each append).
    ///
    /// While records keep coming the thread polls every [`POLL_INTERVAL`]
    /// instead, as RocketMQ's ReputMessageService does, so a busy appender
    /// pays no wake-up system call per append.
    pub fn notify(&self) {
        // Pairs with the fence in `idle`: either we see `sleeping`, or the
        // thread sees the CommitLog position we just published.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(thread) = &*self.thread.lock() {
            thread.unpark();
        }
    }

    /// Waits for new records: polls while traffic is recent, then sleeps until woken.
    fn idle(&self, idle_polls: &mut u32) {
        if *idle_polls < IDLE_POLLS_BEFORE_SLEEP {
            *idle_polls += 1;
            std::thread::park_timeout(POLL_INTERVAL);
            return;
        }
        self.sleeping.store(true, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.dispatched() >= self.log.committed() && !self.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(CHECKPOINT_INTERVAL);
        }
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Starts the dispatcher thread; `on_tick` runs about once per
    /// [`CHECKPOINT_INTERVAL`] (the store writes its checkpoint there).
    pub fn spawn(self: &Arc<Self>, on_tick: impl Fn(&Dispatcher) + Send + 'static) -> std::io::Result<JoinHandle<()>> {
        let dispatcher = self.clone();
        let handle = std::thread::Builder::new().name("weir-dispatch".into()).spawn(move || {
            let mut last_tick = Instant::now();
            let mut idle_polls = 0;
            let mut backoff = RETRY_MIN;
            while !dispatcher.stop.load(Ordering::Acquire) {
                let before = dispatcher.dispatched();
                let outcome = match dispatcher.run_until_caught_up(None) {
                    Ok(Progress::Behind) => {
                        dispatcher.rebuild();
                        Ok(())
                    }
                    outcome => outcome.map(|_| ()),
                };
                let failed = outcome.is_err();
                dispatcher.record(outcome);
                if failed {
                    std::thread::park_timeout(backoff);
                    backoff = (backoff * 2).min(RETRY_MAX);
                } else {
                    backoff = RETRY_MIN;
                }
                if dispatcher.dispatched() != before {
                    idle_polls = 0;
                }
                if last_tick.elapsed() >= CHECKPOINT_INTERVAL {
                    on_tick(&dispatcher);
                    last_tick = Instant::now();
                }
                if dispatcher.dispatched() >= dispatcher.log.committed() {
                    dispatcher.idle(&mut idle_polls);
                }
            }
            let _ = dispatcher.run_until_caught_up(None);
            on_tick(&dispatcher);
        })?;
        *self.thread.lock() = Some(handle.thread().clone());
        Ok(handle)
    }

    /// Asks the thread to finish dispatching, run a last tick and exit.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }
}
