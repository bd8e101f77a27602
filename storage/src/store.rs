//! The store facade: open with recovery, append, read, look up, retain, close.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::commitlog::{CommitLog, CommitLogReader, Step, StoredRecord};
use crate::config::{FlushMode, RecoveryMode, StoreConfig};
use crate::consume_queue::{ConsumeQueueTable, CqEntry};
use crate::disk::{DiskWatch, StoreState};
use crate::dispatch::{DispatchHook, Dispatcher};
use crate::error::{AppendError, IoContext, OpenError, ReadError};
use crate::flush::{Durability, Durable, FlushService};
use crate::index::KeyIndex;
use crate::map_budget::MapBudget;
use crate::meta;
use crate::record::{self, Check, Message};
use crate::retention::Cleaner;
use crate::tombstones::Tombstones;

/// Global identity of a stored message: the store it lives in and its CommitLog offset.
///
/// Rendered as 24 upper-case hex digits: 8 for the store id, 16 for the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// Random id chosen when the store was created.
    pub store_id: u32,
    /// CommitLog offset of the record.
    pub commitlog_offset: u64,
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand rather than `{:08X}{:016X}`: every pulled message carries its id as
        // text, and the formatting machinery cost more than reading the message.
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let value = (u128::from(self.store_id) << 64) | u128::from(self.commitlog_offset);
        let mut hex = [0u8; 24];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = DIGITS[((value >> (4 * (23 - i))) & 0xF) as usize];
        }
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl std::str::FromStr for MessageId {
    type Err = ReadError;
    fn from_str(s: &str) -> Result<Self, ReadError> {
        let bad = || ReadError::BadMessageId(s.chars().take(64).collect());
        if s.len() != 24 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Self {
            store_id: u32::from_str_radix(&s[..8], 16).map_err(|_| bad())?,
            commitlog_offset: u64::from_str_radix(&s[8..], 16).map_err(|_| bad())?,
        })
    }
}

/// Whether an append met its durability requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendStatus {
    /// Stored (and, under sync flush, flushed in time).
    SendOk,
    /// Stored, but the sync flush did not complete within the timeout.
    FlushDiskTimeout,
}

impl AppendStatus {
    /// RocketMQ's name for the status.
    pub fn as_str(&self) -> &'static str {
        match self {
            AppendStatus::SendOk => "SEND_OK",
            AppendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
        }
    }
}

/// Where an appended message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Message id.
    pub msg_id: MessageId,
    /// Queue the message is in.
    pub queue_id: u32,
    /// Its position in that queue.
    pub queue_offset: u64,
    /// Store timestamp, ms since the epoch.
    pub store_timestamp_ms: i64,
    /// Durability outcome.
    pub status: AppendStatus,
}

/// Outcome of a queue read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Messages were found (the page may still be empty if all were fillers).
    Found,
    /// The offset is the queue's end, or nothing from it on is readable yet (after a
    /// failed flush, only durable messages are served).
    NoNewMessage,
    /// The offset is below the oldest retained message; continue at `next_offset`.
    OffsetTooSmall,
    /// The offset is past the queue's end; continue at `next_offset`.
    OffsetOverflow,
    /// The queue has never received a message.
    NoSuchQueue,
}

/// A message read from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// Position in the queue.
    pub queue_offset: u64,
    /// The message's ConsumeQueue entry.
    pub entry: CqEntry,
    /// The record.
    pub record: StoredRecord,
}

/// A page of messages from one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRead {
    /// What happened.
    pub status: ReadStatus,
    /// The messages, in queue order.
    pub messages: Vec<QueueMessage>,
    /// Offset to read next.
    pub next_offset: u64,
    /// Oldest retained offset of the queue.
    pub min_offset: u64,
    /// One past the newest offset of the queue.
    pub max_offset: u64,
}

/// What recovery did when the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the previous run shut down cleanly.
    pub clean_shutdown: bool,
    /// CommitLog records verified by CRC.
    pub records_verified: u64,
    /// Bytes of torn or invalid data discarded from the CommitLog's tail.
    pub truncated_bytes: u64,
    /// Where dispatch replay started.
    pub replayed_from: u64,
    /// Whether the ConsumeQueues were rebuilt from the oldest record.
    pub rebuilt_queues: bool,
    /// Whether the replay outlasted `replay_at_open` and the dispatcher thread
    /// finishes it while the store serves.
    pub replay_deferred: bool,
}

/// Figures for `weir status` and monitoring.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStats {
    /// What the store can do now, and why not more.
    pub state: StoreState,
    /// Oldest retained CommitLog offset.
    pub min_offset: u64,
    /// One past the newest record.
    pub max_offset: u64,
    /// Everything below this is on disk.
    pub flushed_offset: u64,
    /// CommitLog flushes (fsyncs) since the store opened.
    pub flushes: u64,
    /// Everything below this is in the ConsumeQueues and index.
    pub dispatched_offset: u64,
    /// Bytes of CommitLog segment files.
    pub commitlog_bytes: u64,
    /// Bytes of ConsumeQueue files.
    pub consume_queue_bytes: u64,
    /// Bytes of the key index and the dispatch hooks' files (the bloom index). The
    /// small metadata files (checkpoint, manifests) are left out.
    pub index_bytes: u64,
    /// Fraction of the data directory's file system in use (every file on it counts).
    pub disk_usage: f64,
    /// Bytes free on that file system.
    pub disk_free_bytes: u64,
    /// Number of ConsumeQueues.
    pub queues: usize,
    /// Per-queue files mapped now, and the most that may be.
    pub mapped_queue_files: (usize, usize),
    /// Per-queue files closed so far to stay within that budget.
    pub queue_file_evictions: u64,
}

impl StoreStats {
    /// Bytes of CommitLog not yet in the ConsumeQueues.
    pub fn dispatch_lag_bytes(&self) -> u64 {
        self.max_offset.saturating_sub(self.dispatched_offset)
    }
    /// Bytes of every file the store writes.
    pub fn store_bytes(&self) -> u64 {
        self.commitlog_bytes + self.consume_queue_bytes + self.index_bytes
    }
}

/// The result of [`Store::verify`]: a full scan for `weir store check`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Valid records in the CommitLog.
    pub records: u64,
    /// Invalid records and ConsumeQueue entries that point at no valid record.
    pub corrupt: u64,
    /// ConsumeQueue entries checked.
    pub queue_entries: u64,
}

const ABORT_FILE: &str = "abort";

/// A running store: the CommitLog, its derived files and background services.
pub struct Store {
    config: StoreConfig,
    store_id: u32,
    log: Arc<CommitLog>,
    dispatcher: Arc<Dispatcher>,
    flush: Arc<FlushService>,
    checkpoint: Arc<CheckpointFile>,
    recovery: RecoveryReport,
    disk: Arc<DiskWatch>,
    cleaner: Arc<Cleaner>,
    budget: Arc<MapBudget>,
    closed: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _lock: std::fs::File,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("data_dir", &self.config.data_dir).field("store_id", &self.store_id).finish()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Opens (creating if needed) the store at `config.data_dir`, recovering after a crash.
    pub fn open(config: StoreConfig) -> Result<Self, OpenError> {
        let budget = MapBudget::for_config(&config);
        Self::open_with_hooks(config, budget, Vec::new())
    }

    /// Like [`open`](Self::open), with extra dispatch hooks (replayed during recovery)
    /// and the budget of mapped per-queue files the ConsumeQueues share with them.
    pub fn open_with_hooks(
        mut config: StoreConfig,
        budget: Arc<MapBudget>,
        hooks: Vec<Arc<dyn DispatchHook>>,
    ) -> Result<Self, OpenError> {
        let dir = &config.data_dir.clone();
        std::fs::create_dir_all(dir).at(dir)?;
        let lock = meta::lock_dir(dir)?;
        let store_id = meta::load_or_create(dir, &mut config)?;
        config.validate()?;
        let abort = dir.join(ABORT_FILE);
        let clean_shutdown = !abort.exists();
        std::fs::write(&abort, b"").at(&abort)?;

        let checkpoint_file = Arc::new(CheckpointFile::new(dir));
        let checkpoint = checkpoint_file.load();
        let verify_from = match (config.recovery, checkpoint) {
            (RecoveryMode::FromCheckpoint, Some(cp)) => cp.commitlog_flushed,
            _ => 0,
        };
        let log_dir = dir.join("commitlog");
        let (log, log_recovery) = CommitLog::open(&log_dir, config.segment_size, verify_from).at(&log_dir)?;
        let log = Arc::new(log);
        let cq_dir = dir.join("consumequeue");
        let queues =
            ConsumeQueueTable::open(&cq_dir, config.consume_queue_entries_per_file, budget.clone()).at(&cq_dir)?;
        let tombstones = Tombstones::load(dir).at(dir)?;
        let index_dir = dir.join("index");
        let (index, index_from) =
            KeyIndex::open(&index_dir, config.index_slots, config.index_entries, clean_shutdown).at(&index_dir)?;
        // A queue that existed at the last checkpoint but has no files now must be rebuilt
        // from the whole CommitLog; replaying from the checkpoint would not see its old records.
        let queue_lost = checkpoint_file
            .manifest()
            .load()
            .into_iter()
            .any(|(topic, queue_id)| queues.get(&topic, queue_id).is_none() && !tombstones.contains(&topic));
        let replay_from = match checkpoint {
            Some(cp) if !queue_lost && !queues.map().is_empty() => cp.dispatched,
            _ => 0,
        };
        let dispatcher = Arc::new(Dispatcher::new(log.clone(), queues, index, hooks, tombstones));
        // After a clean shutdown that left the CommitLog whole (it still ends where the
        // last checkpoint saw it flushed), no derived entry can point past its end: the
        // queues need no trimming (with 40 000 queues, that is 80 000 reads saved).
        let whole = checkpoint.is_some_and(|cp| log_recovery.valid_end >= cp.commitlog_flushed);
        let cut = !clean_shutdown || log_recovery.truncated_bytes > 0 || !whole;
        let replay = dispatcher
            .recover(log_recovery.valid_end, cut, replay_from, index_from, config.replay_at_open)
            .at(&cq_dir)?;
        log.set_queue_offsets(next_queue_offsets(&log, &dispatcher));
        let recovery = RecoveryReport {
            clean_shutdown,
            records_verified: log_recovery.records,
            truncated_bytes: log_recovery.truncated_bytes,
            replayed_from: replay.from,
            rebuilt_queues: replay.rebuilt,
            replay_deferred: replay.deferred,
        };
        if replay.incomplete {
            tracing::warn!("opened read-only: the dispatcher cannot index every record yet and keeps trying");
        }
        if log_recovery.truncated_bytes > 0 {
            tracing::info!(
                bytes = log_recovery.truncated_bytes,
                at = log_recovery.valid_end,
                "discarded an invalid CommitLog tail"
            );
        }

        let flush = FlushService::new(log.committed());
        let disk = Arc::new(DiskWatch::new(&config).at(dir)?);
        let cleaner = Arc::new(Cleaner::new(&config, &log, &dispatcher, &disk));
        let store = Self {
            store_id,
            log,
            dispatcher,
            flush,
            checkpoint: checkpoint_file,
            recovery,
            disk,
            cleaner,
            budget,
            closed: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            _lock: lock,
            config,
        };
        // Everything recovered is durable now: record it before accepting writes. A
        // checkpoint that cannot be written (a full disk) leaves the last one, which
        // only makes the next recovery replay more.
        store.log.flush(0, store.log.committed()).at(&log_dir)?;
        store.dispatcher.flush(dir).at(&cq_dir)?;
        if let Err(err) = store.write_checkpoint() {
            tracing::warn!(%err, "cannot write a checkpoint after recovery; the previous one stays");
        }
        store.start_services().at(dir)?;
        Ok(store)
    }

    fn start_services(&self) -> std::io::Result<()> {
        let mut threads = self.threads.lock();
        threads.push(self.flush.spawn(self.log.clone(), self.config.flush)?);
        let (flush, checkpoint, log) = (self.flush.clone(), self.checkpoint.clone(), self.log.clone());
        let dir = self.config.data_dir.clone();
        threads.push(self.dispatcher.spawn(move |dispatcher| {
            if let Err(err) = write_checkpoint(&log, &flush, dispatcher, &checkpoint, &dir) {
                tracing::error!(%err, "checkpoint failed");
            }
        })?);
        threads.push(self.cleaner.spawn()?);
        Ok(())
    }

    fn write_checkpoint(&self) -> std::io::Result<()> {
        write_checkpoint(&self.log, &self.flush, &self.dispatcher, &self.checkpoint, &self.config.data_dir)
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }
    /// What recovery did on open.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }
    /// This store's id (part of every message id).
    pub fn store_id(&self) -> u32 {
        self.store_id
    }

    /// Appends one message; under sync flush, returns once it is on disk (or timed out).
    pub fn append(&self, message: &Message) -> Result<AppendResult, AppendError> {
        Ok(self.append_batch(std::slice::from_ref(message))?.remove(0))
    }

    /// Appends messages as one contiguous run sharing one flush. All or nothing:
    /// an invalid message fails the whole batch before anything is written. Under
    /// sync flush, blocks until the batch is durable or the flush timeout passes (the
    /// results then say `FlushDiskTimeout`). An empty batch appends nothing.
    pub fn append_batch(&self, messages: &[Message]) -> Result<Vec<AppendResult>, AppendError> {
        let (mut results, end) = self.place(messages)?;
        if let (FlushMode::Sync { timeout }, Some(end)) = (self.config.flush, end) {
            match self.flush.wait_durable(end, timeout) {
                Durability::Flushed => {}
                Durability::TimedOut => results.iter_mut().for_each(|r| r.status = AppendStatus::FlushDiskTimeout),
                Durability::Failed(why) => return Err(AppendError::Failed(why)),
            }
        }
        Ok(results)
    }

    /// [`append_batch`](Self::append_batch) without blocking: the results, and under
    /// sync flush a [`Durable`] future that resolves once the batch is on disk. The
    /// caller times it out (answering `FlushDiskTimeout`) and must not report the
    /// messages durable before it resolves `Ok`.
    pub fn append_batch_deferred(
        &self,
        messages: &[Message],
    ) -> Result<(Vec<AppendResult>, Option<Durable>), AppendError> {
        let (results, end) = self.place(messages)?;
        let durable = match self.config.flush {
            FlushMode::Sync { .. } => end.map(|end| self.flush.durable(end)),
            FlushMode::Async { .. } => None,
        };
        Ok((results, durable))
    }

    /// Checks and appends a batch; returns its results (status `SendOk`) and where its
    /// last record ends (none for an empty batch).
    fn place(&self, messages: &[Message]) -> Result<(Vec<AppendResult>, Option<u64>), AppendError> {
        if messages.is_empty() {
            return Ok((Vec::new(), None));
        }
        let sized = messages
            .iter()
            .map(|m| Ok((m, record::encoded_len(m, self.config.max_message_size)?)))
            .collect::<Result<Vec<_>, AppendError>>()?;
        let total: u64 = sized.iter().map(|(_, len)| *len as u64).sum();
        self.check_writable(messages.len(), total)?;
        if total > self.config.segment_size / 2 {
            return Err(crate::error::InvalidMessage::TooLarge {
                size: total as usize,
                max: (self.config.segment_size / 2) as usize,
            }
            .into());
        }
        let placed = match self.log.append(&sized, now_ms()) {
            // No space for the next segment: the same refusal as the disk watch's.
            Err(AppendError::Segment { source, .. }) if source.kind() == std::io::ErrorKind::StorageFull => {
                let space = self.disk.refresh().unwrap_or_default();
                return Err(self.disk_full(space));
            }
            placed => placed?,
        };
        self.dispatcher.notify();
        let end = placed.last().map(|last| last.placement.commitlog_offset + u64::from(last.size));
        let results = placed
            .iter()
            .zip(messages)
            .map(|(p, m)| AppendResult {
                msg_id: MessageId { store_id: self.store_id, commitlog_offset: p.placement.commitlog_offset },
                queue_id: m.queue_id,
                queue_offset: p.placement.queue_offset,
                store_timestamp_ms: p.placement.store_timestamp_ms,
                status: AppendStatus::SendOk,
            })
            .collect();
        Ok((results, end))
    }

    /// Refuses an append the store could not make consumable: closed, stopped by a
    /// failed flush, a dispatcher that cannot write, or a disk without the reserve.
    fn check_writable(&self, messages: usize, bytes: u64) -> Result<(), AppendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Closed);
        }
        if let Some(why) = self.flush.failure() {
            return Err(AppendError::Failed(why));
        }
        if let Some((kind, why)) = self.dispatcher.failure() {
            return Err(AppendError::ReadOnly {
                reason: format!("cannot index new messages: {why}"),
                out_of_space: kind == std::io::ErrorKind::StorageFull,
            });
        }
        let pending = self.log.appended_records().saturating_sub(self.dispatcher.dispatched_records());
        if let Some(space) = self.disk.refusal(messages, bytes, pending) {
            return Err(self.disk_full(space));
        }
        Ok(())
    }

    fn disk_full(&self, space: crate::disk::Space) -> AppendError {
        let (high_water, reserve) = self.disk.limits();
        AppendError::DiskFull {
            used_percent: space.usage * 100.0,
            limit_percent: high_water * 100.0,
            free_bytes: space.free,
            reserve_bytes: reserve,
        }
    }

    /// Where reads stop: nowhere while the store is healthy. After a failed flush
    /// (fail-stop) at the end of what reached the disk: the rest may be gone after a
    /// restart, so no consumer may see it.
    fn readable_end(&self) -> u64 {
        self.flush.failed_at().unwrap_or(u64::MAX)
    }

    /// What the store can do now: `ok`, `read_only` (with why) or `failed`.
    pub fn state(&self) -> StoreState {
        match self.check_writable(0, 0) {
            Ok(()) | Err(AppendError::Closed) => StoreState::Ok,
            Err(AppendError::Failed(why)) => {
                StoreState::Failed { reason: format!("a flush failed ({why}); reopen the store to recover") }
            }
            Err(err) => StoreState::ReadOnly { reason: err.to_string() },
        }
    }

    /// Deletes `topic`'s ConsumeQueues, hook files and key-index reach. Its records stay
    /// in the CommitLog until retention removes them but are never served or indexed
    /// again; the next message of a topic with this name starts at queue offset 0.
    pub fn delete_topic(&self, topic: &str) -> std::io::Result<()> {
        // The dispatcher waits between two records: none of this topic is indexed meanwhile.
        let _paused = self.dispatcher.pause();
        let dead_below =
            self.log.forget_topic(topic, |dead_below| self.dispatcher.tombstones().insert(topic, dead_below))?;
        self.dispatcher.queues().remove_topic(topic)?;
        for hook in self.dispatcher.hooks() {
            hook.delete_topic(topic)?;
        }
        tracing::info!(topic, dead_below, "deleted topic");
        Ok(())
    }

    /// Oldest retained and one-past-newest offsets of a queue (`(0, 0)` if it never received a message).
    pub fn queue_offsets(&self, topic: &str, queue_id: u32) -> (u64, u64) {
        self.dispatcher.queues().get(topic, queue_id).map_or((0, 0), |q| (q.min_offset(), q.max_offset()))
    }

    /// Every queue with its `(topic, queue_id, min_offset, max_offset)`, sorted.
    pub fn queues(&self) -> Vec<(String, u32, u64, u64)> {
        self.dispatcher
            .queues()
            .all()
            .iter()
            .map(|q| (q.topic().to_owned(), q.queue_id(), q.min_offset(), q.max_offset()))
            .collect()
    }

    /// Up to `max` ConsumeQueue entries from `offset` on, without touching the CommitLog
    /// (for tag-hash pre-filtering). Filler entries are left out.
    pub fn queue_entries(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max: usize,
    ) -> Result<Vec<(u64, CqEntry)>, ReadError> {
        let mut out = Vec::new();
        if let Some(queue) = self.dispatcher.queues().get(topic, queue_id) {
            let end = self.readable_end();
            let mut past_end = false;
            queue.scan(offset, max, |q, e| {
                past_end |= !e.is_filler() && e.commitlog_offset + u64::from(e.size) > end;
                if !e.is_filler() && !past_end {
                    out.push((q, e));
                }
            })?;
        }
        Ok(out)
    }

    /// Reads the record a ConsumeQueue entry points at, verifying its CRC.
    pub fn read_entry(&self, entry: &CqEntry) -> Result<StoredRecord, ReadError> {
        self.log.read(entry.commitlog_offset, entry.size)
    }

    /// A reader for the records of many ConsumeQueue entries in a row (a pull page):
    /// cheaper per record than [`read_entry`](Self::read_entry), same checks.
    pub fn entry_reader(&self) -> EntryReader<'_> {
        EntryReader { log: self.log.reader() }
    }

    /// Reads up to `max` messages of a queue from `offset` on.
    ///
    /// A corrupt record ends the page before it; if it is the first one, the read fails.
    pub fn read_queue(&self, topic: &str, queue_id: u32, offset: u64, max: usize) -> Result<QueueRead, ReadError> {
        let Some(queue) = self.dispatcher.queues().get(topic, queue_id) else {
            return Ok(QueueRead {
                status: ReadStatus::NoSuchQueue,
                messages: Vec::new(),
                next_offset: 0,
                min_offset: 0,
                max_offset: 0,
            });
        };
        let (min, max_offset) = (queue.min_offset(), queue.max_offset());
        let page = |status, next_offset, messages| {
            Ok(QueueRead { status, messages, next_offset, min_offset: min, max_offset })
        };
        if offset < min {
            return page(ReadStatus::OffsetTooSmall, min, Vec::new());
        }
        if offset > max_offset {
            return page(ReadStatus::OffsetOverflow, max_offset, Vec::new());
        }
        if offset == max_offset {
            return page(ReadStatus::NoNewMessage, offset, Vec::new());
        }
        let mut entries = Vec::new();
        queue.scan(offset, max, |q, e| entries.push((q, e)))?;
        let mut next = offset;
        let mut messages = Vec::with_capacity(entries.len());
        let mut reader = self.entry_reader();
        let end = self.readable_end();
        for (queue_offset, entry) in entries {
            if !entry.is_filler() && entry.commitlog_offset + u64::from(entry.size) > end {
                break;
            }
            if !entry.is_filler() {
                match reader.read(&entry) {
                    Ok(record) => messages.push(QueueMessage { queue_offset, entry, record }),
                    // Retention removed the segment under us: skip, as RocketMQ does.
                    Err(ReadError::OffsetOutOfRange(_)) => {}
                    Err(err) if messages.is_empty() => return Err(err),
                    Err(_) => break,
                }
            }
            next = queue_offset + 1;
        }
        if next == offset {
            return page(ReadStatus::NoNewMessage, offset, messages); // nothing readable yet
        }
        page(ReadStatus::Found, next, messages)
    }

    /// The message with id `id`.
    pub fn message_by_id(&self, id: &str) -> Result<StoredRecord, ReadError> {
        let id: MessageId = id.parse()?;
        if id.store_id != self.store_id {
            return Err(ReadError::ForeignMessageId(id.to_string()));
        }
        if id.commitlog_offset >= self.readable_end() {
            return Err(ReadError::OffsetOutOfRange(id.commitlog_offset));
        }
        let record = self.log.read_at(id.commitlog_offset)?;
        if self.dispatcher.tombstones().is_dead(record.view().topic(), id.commitlog_offset) {
            return Err(ReadError::OffsetOutOfRange(id.commitlog_offset)); // its topic was deleted
        }
        Ok(record)
    }

    /// Up to `max` messages of `topic` carrying business key `key`, newest first.
    pub fn messages_by_key(&self, topic: &str, key: &str, max: usize) -> Vec<StoredRecord> {
        // Ask for extra candidates: collisions and stale entries are filtered out below.
        let candidates = self.dispatcher.index().lookup(topic, key, max.saturating_mul(2).max(16));
        let end = self.readable_end();
        candidates
            .into_iter()
            .filter(|&offset| offset < end)
            .filter_map(|offset| self.log.read_at(offset).ok())
            .filter(|r| r.view().topic() == topic && r.view().keys().any(|k| k == key))
            .filter(|r| !self.dispatcher.tombstones().is_dead(topic, r.view().commitlog_offset()))
            .take(max)
            .collect()
    }

    /// The first queue offset whose message was stored at or after `timestamp_ms`
    /// (the queue's end if none): where to reset a consumer to a point in time.
    pub fn offset_at_time(&self, topic: &str, queue_id: u32, timestamp_ms: i64) -> u64 {
        let Some(queue) = self.dispatcher.queues().get(topic, queue_id) else { return 0 };
        let stored_at = |q: u64| -> Option<i64> {
            let entry = queue.get(q).ok().flatten().filter(|e| !e.is_filler())?;
            Some(self.log.read(entry.commitlog_offset, entry.size).ok()?.view().store_timestamp_ms())
        };
        // Binary search over [min, max); unreadable entries count as "before".
        let (mut lo, mut hi) = (queue.min_offset(), queue.max_offset());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if stored_at(mid).is_some_and(|ts| ts >= timestamp_ms) { hi = mid } else { lo = mid + 1 }
        }
        lo
    }

    /// Current figures, from memory (no file is read).
    pub fn stats(&self) -> StoreStats {
        let queues = self.dispatcher.queues().values();
        let space = self.disk.space();
        StoreStats {
            state: self.state(),
            min_offset: self.log.min_offset(),
            max_offset: self.log.committed(),
            flushed_offset: self.flush.flushed(),
            flushes: self.flush.flushes(),
            dispatched_offset: self.dispatcher.dispatched(),
            commitlog_bytes: self.log.disk_bytes(),
            consume_queue_bytes: queues.iter().map(|q| q.disk_bytes()).sum(),
            index_bytes: self.dispatcher.index().disk_bytes()
                + self.dispatcher.hooks().iter().map(|h| h.disk_bytes()).sum::<u64>(),
            disk_usage: space.usage,
            disk_free_bytes: space.free,
            queues: queues.len(),
            mapped_queue_files: (self.budget.mapped(), self.budget.limit()),
            queue_file_evictions: self.budget.evictions(),
        }
    }

    /// Blocks until every appended record is in the ConsumeQueues (tests, tools).
    pub fn wait_dispatched(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.dispatcher.dispatched() < self.log.committed() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            self.dispatcher.notify();
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Scans every CommitLog record and every ConsumeQueue entry.
    pub fn verify(&self) -> VerifyReport {
        let mut report = VerifyReport::default();
        let mut pos = self.log.min_offset();
        loop {
            match self.log.step(pos, Check::Crc) {
                Step::Record { next, .. } => {
                    report.records += 1;
                    pos = next;
                }
                Step::Skip { next } => pos = next,
                Step::End => break,
                Step::Corrupt(err) => {
                    tracing::error!(offset = pos, %err, "corrupt CommitLog record");
                    report.corrupt += 1;
                    // Skip to the next segment: record boundaries after damage are unknown.
                    pos = pos - pos % self.log.segment_size() + self.log.segment_size();
                }
            }
        }
        for queue in self.dispatcher.queues().all() {
            let scanned = queue.scan(queue.min_offset(), usize::MAX, |q, entry| {
                if entry.is_filler() {
                    return;
                }
                report.queue_entries += 1;
                let intact = self.log.read(entry.commitlog_offset, entry.size).is_ok_and(|r| {
                    let view = r.view();
                    view.topic() == queue.topic() && view.queue_id() == queue.queue_id() && view.queue_offset() == q
                });
                if !intact {
                    tracing::error!(
                        topic = queue.topic(),
                        queue_id = queue.queue_id(),
                        queue_offset = q,
                        "ConsumeQueue entry points at no valid record"
                    );
                    report.corrupt += 1;
                }
            });
            if let Err(err) = scanned {
                tracing::error!(topic = queue.topic(), queue_id = queue.queue_id(), %err, "ConsumeQueue unreadable");
                report.corrupt += 1;
            }
        }
        report
    }

    /// Runs retention and the disk check now (the cleaner thread also does this periodically).
    pub fn clean(&self) -> std::io::Result<()> {
        self.cleaner.clean()
    }

    /// Stops background services, flushes everything and marks a clean shutdown.
    pub fn close(&self) -> std::io::Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.log.close();
        self.disk.stop();
        self.dispatcher.stop();
        self.flush.shutdown();
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
        // The flusher's last round flushed everything published and the dispatcher caught
        // up before their threads exited: record that, unless a flush failed.
        self.write_checkpoint()?;
        if self.flush.failure().is_none() {
            std::fs::remove_file(self.config.data_dir.join(ABORT_FILE))?;
        }
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(err) = self.close() {
            tracing::error!(%err, "closing the store failed");
        }
    }
}

fn write_checkpoint(
    log: &CommitLog,
    flush: &FlushService,
    dispatcher: &Dispatcher,
    file: &CheckpointFile,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    // A topic deletion pauses the dispatcher to remove its queues' files: hold it off
    // while those files are flushed (a small queue's flush opens its file by name) and
    // the manifest of queues is written, so both see the queues before or after it.
    // This also makes checkpoints one at a time (their files are replaced through one
    // temporary name each).
    let _paused = dispatcher.pause();
    let dispatched = dispatcher.flush(dir)?;
    let queues = dispatcher.queues();
    file.manifest()
        .store(queues.map().generation(), || queues.all().into_iter().map(|q| (q.topic().to_owned(), q.queue_id())))?;
    let commitlog_flushed = flush.flushed().min(log.committed());
    // Derived entries are only durable up to what the CommitLog itself has on disk.
    let checkpoint =
        Checkpoint { commitlog_flushed, dispatched: dispatched.min(commitlog_flushed), written_at_ms: now_ms() };
    file.store(&checkpoint)
}

/// The next queue offset of every queue, for the appender: each ConsumeQueue's end,
/// raised past any record the dispatcher has not indexed yet (a replay left to the
/// dispatcher thread, or stopped by a full disk, leaves such records).
fn next_queue_offsets(log: &CommitLog, dispatcher: &Dispatcher) -> Vec<(String, u32, u64)> {
    let mut next: std::collections::HashMap<(String, u32), u64> =
        dispatcher.queues().values().iter().map(|q| ((q.topic().to_owned(), q.queue_id()), q.max_offset())).collect();
    let mut pos = dispatcher.dispatched();
    loop {
        match log.step(pos, Check::Structure) {
            Step::Record { record, next: after } => {
                let view = record.view();
                if !dispatcher.tombstones().is_dead(view.topic(), pos) {
                    let slot = next.entry((view.topic().to_owned(), view.queue_id())).or_default();
                    *slot = (*slot).max(view.queue_offset() + 1);
                }
                pos = after;
            }
            Step::Skip { next: after } => pos = after,
            Step::End | Step::Corrupt(_) => break,
        }
    }
    next.into_iter().map(|((topic, queue_id), offset)| (topic, queue_id, offset)).collect()
}

/// Reads the records of ConsumeQueue entries, one after another (see [`Store::entry_reader`]).
pub struct EntryReader<'a> {
    log: CommitLogReader<'a>,
}

impl EntryReader<'_> {
    /// Reads the record `entry` points at, verifying its CRC.
    pub fn read(&mut self, entry: &CqEntry) -> Result<StoredRecord, ReadError> {
        self.log.read(entry.commitlog_offset, entry.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A topic deleted while a checkpoint flushes its queue files must not fail the
    /// checkpoint: a queue of a few messages is written with `pwrite`, unmapped, and its
    /// flush opens its file by name. Found by `weir bench soak` (scratch topics created,
    /// written and deleted while the dispatcher thread wrote its checkpoints).
    #[test]
    fn checkpoints_do_not_fail_while_topics_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(StoreConfig::new(dir.path())).expect("open"));
        let done = Arc::new(AtomicBool::new(false));
        let churn = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                for round in 0..300u32 {
                    for queue_id in 0..4 {
                        let message = Message {
                            topic: "scratch".into(),
                            queue_id,
                            tag: String::new(),
                            keys: Vec::new(),
                            properties: Vec::new(),
                            body: round.to_le_bytes().to_vec().into(),
                            born_timestamp_ms: 0,
                            born_host: "127.0.0.1:1".parse().expect("addr"),
                            flags: 0,
                        };
                        store.append(&message).expect("append");
                    }
                    assert!(store.wait_dispatched(Duration::from_secs(5)));
                    store.delete_topic("scratch").expect("delete");
                }
                done.store(true, Ordering::Release);
            })
        };
        let mut checkpoints = 0;
        while !done.load(Ordering::Acquire) {
            store.write_checkpoint().expect("a checkpoint while topics come and go");
            checkpoints += 1;
        }
        churn.join().expect("churn");
        assert!(checkpoints > 0);
    }

    #[test]
    fn message_ids_are_24_upper_case_hex_digits_and_parse_back() {
        for (store_id, commitlog_offset) in
            [(0, 0), (0xDEAD_BEEF, 0x0123_4567_89AB_CDEF), (u32::MAX, u64::MAX), (7, 1 << 40)]
        {
            let id = MessageId { store_id, commitlog_offset };
            let text = id.to_string();
            assert_eq!(text, format!("{store_id:08X}{commitlog_offset:016X}"));
            assert_eq!(text.parse::<MessageId>().expect("parses"), id);
        }
    }
}
