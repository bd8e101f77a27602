//! Store configuration: one typed struct with production defaults.

use std::path::PathBuf;
use std::time::Duration;

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Acknowledge once the record is in the page cache; a background
    /// thread flushes every `interval`.
    Async {
        /// Time between background flushes (default 500 ms).
        interval: Duration,
    },
    /// Acknowledge after the record is on disk. Concurrent appenders share
    /// one flush (group commit). An append whose flush takes longer than
    /// `timeout` returns [`crate::AppendStatus::FlushDiskTimeout`].
    Sync {
        /// How long an append waits for its flush (default 5 s).
        timeout: Duration,
    },
}

impl FlushMode {
    /// Asynchronous flushing with the default interval.
    pub const ASYNC: FlushMode = FlushMode::Async { interval: Duration::from_millis(500) };
    /// Synchronous flushing with the default timeout.
    pub const SYNC: FlushMode = FlushMode::Sync { timeout: Duration::from_secs(5) };
}

/// How much of the CommitLog recovery verifies on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Verify from the start of the segment holding the last checkpoint.
    /// Everything before it was flushed before the checkpoint was written,
    /// so a crash cannot have damaged it.
    FromCheckpoint,
    /// Verify every record of every segment (slow; for media-corruption checks).
    Full,
}

/// Everything that tunes a [`crate::Store`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Root directory; created if missing.
    pub data_dir: PathBuf,
    /// Size of each CommitLog segment file (default 1 GiB).
    pub segment_size: u64,
    /// Entries per ConsumeQueue file (default 300 000, i.e. 6 MB files).
    pub consume_queue_entries_per_file: u64,
    /// Largest accepted message body (default 4 MiB).
    pub max_message_size: usize,
    /// Flush policy.
    pub flush: FlushMode,
    /// Recovery policy.
    pub recovery: RecoveryMode,
    /// Sealed segments older than this are deleted (default 72 h).
    pub retention: Duration,
    /// Disk usage fraction of the data directory's file system above which
    /// writes are refused (default 0.90).
    pub disk_high_water: f64,
    /// Disk usage fraction above which the oldest sealed segments are deleted
    /// before their retention time (default 0.85, as RocketMQ's forced clean).
    pub disk_clean_forcibly: f64,
    /// Free bytes kept on the data directory's file system: writes are refused below
    /// it, so the queue and index files of accepted messages can still grow (default 64 MiB).
    pub disk_reserve_bytes: u64,
    /// How often retention runs (default 10 s; free space is checked every 50 ms).
    pub clean_interval: Duration,
    /// Longest an open replays the CommitLog into the queues before the store serves;
    /// the dispatcher thread replays the rest meanwhile (default 1 s).
    pub replay_at_open: Duration,
    /// Most ConsumeQueue and bloom-index files mapped at once; the least recently used
    /// close beyond it (0: half of what `vm.max_map_count` and the descriptor limit allow).
    pub max_mapped_queue_files: usize,
    /// Hash slots per key-index file (default 1 Mi).
    pub index_slots: u32,
    /// Entries per key-index file (default 4 Mi).
    pub index_entries: u32,
}

impl StoreConfig {
    /// The defaults, rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            segment_size: 1 << 30,
            consume_queue_entries_per_file: 300_000,
            max_message_size: 4 << 20,
            flush: FlushMode::ASYNC,
            recovery: RecoveryMode::FromCheckpoint,
            retention: Duration::from_secs(72 * 3600),
            disk_high_water: 0.90,
            disk_clean_forcibly: 0.85,
            disk_reserve_bytes: 64 << 20,
            clean_interval: Duration::from_secs(10),
            replay_at_open: Duration::from_secs(1),
            max_mapped_queue_files: 0,
            index_slots: 1 << 20,
            index_entries: 4 << 20,
        }
    }

    /// Checks the values against each other.
    pub(crate) fn validate(&self) -> Result<(), crate::OpenError> {
        let fail = |why: &str| Err(crate::OpenError::Config(why.to_owned()));
        // Records with unusually large headers are refused at append time
        // (a batch may take at most half a segment).
        if self.segment_size < 2 * (self.max_message_size as u64 + 4096) {
            return fail("segment_size must be at least twice max_message_size plus 8 KiB");
        }
        if self.segment_size > i64::MAX as u64 / 2 || self.segment_size > usize::MAX as u64 {
            return fail("segment_size is too large");
        }
        if self.consume_queue_entries_per_file == 0 || self.index_slots == 0 || self.index_entries == 0 {
            return fail("consume_queue_entries_per_file, index_slots and index_entries must be positive");
        }
        let ratio_ok = |r: f64| r > 0.0 && r <= 1.0;
        if !ratio_ok(self.disk_high_water) || !ratio_ok(self.disk_clean_forcibly) {
            return fail("disk_high_water and disk_clean_forcibly must be in (0, 1]");
        }
        Ok(())
    }
}
