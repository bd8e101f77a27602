//! Weir's persistent timer, RocketMQ 5's design (`TimerMessageStore`): every timer
//! is a fixed-size record appended to a **timer log**; a **timing wheel** of one slot
//! per tick indexes it, each slot holding the chain of records filed under the tick
//! it stands for. Millions of pending timers live on disk; memory holds the wheel
//! (O(slots)) and the tick being delivered. Storage only: the broker decides what a
//! payload means (the CommitLog record of a delayed message) and re-publishes it.
//!
//! Layout:
//! - [`config`]: [`TimerConfig`] and its checked [`Geometry`].
//! - `record`: the timer-log record (64 bytes).
//! - `wheel`: the wheel's slots, in memory and in its file.
//! - `checkpoint`: `timer.meta` and `checkpoint`.
//! - `store`: [`TimerStore`]: open and recovery, add, take_due, cancel, commit.
//! - `error`: one error enum per operation.
//!
//! # Files (all little-endian)
//!
//! A store directory holds:
//!
//! - `log/<20-digit first byte>`: timer-log segments of `segment_records` records
//!   (grown on demand, a page at first), as [`weir_storage::EntryFile`]. A record's
//!   *position* is its index in the log. Each record is 64 bytes:
//!
//!   | bytes | field |
//!   |---|---|
//!   | 0..4 | magic `"WTL1"` (`0x5754_4c31`) |
//!   | 4 | kind: 1 timer, 2 cancel, 3 cancel by payload |
//!   | 5 | flags: bit 0 *rolled* (filed early, to be re-filed) |
//!   | 6..8 | reserved, 0 |
//!   | 8..16 | `tick`: the wheel tick it is filed under |
//!   | 16..24 | `due_ms` (a cancel: the cancelled timer's) |
//!   | 24..32 | `id`: the timer's first position (a cancel: the cancelled timer's) |
//!   | 32..40 | `prev`: the previous record under the same tick, `u64::MAX` for none |
//!   | 40..48 | payload `commitlog_offset` |
//!   | 48..52 | payload `size` |
//!   | 52..60 | reserved, 0 |
//!   | 60..64 | CRC32C of bytes 0..60 |
//!
//! - `wheel`: a 64-byte header (`"WTW1"`, version 1, slots, precision_ms, CRC32C) then
//!   one 32-byte slot per tick of the window: `time_ms u64` (the tick it holds),
//!   `first u64`, `last u64` (chain ends in the log), `count u32` (timer records),
//!   CRC32C `u32`. Slot = `(due_ms / precision_ms) % slots`.
//! - `checkpoint` (32 bytes): `"WTC1"`, CRC32C, `committed_tick u64`, `log_end u64`,
//!   `payload_end u64` (the furthest `commitlog_offset + size` filed, see
//!   [`TimerStore::payload_end`]).
//! - `timer.meta` (32 bytes): `"WTM1"`, CRC32C, `precision_ms`, `slots`, `segment_records`.
//! - `lock`: held (`flock`) while the store is open.
//!
//! # The window and rolling
//!
//! Ticks from `committed_tick` (the checkpoint's) to `committed_tick + slots - 1` are
//! the *window*: each maps to its own slot, so a slot never mixes two rounds. A timer
//! due within the window is filed under its due tick; one due earlier than the tick
//! being delivered is filed under that tick (due now); one due after the window is
//! *rolled*: filed under the window's last tick, and filed again (not delivered) when
//! that tick is read. A slot holding a tick before `committed_tick` is free: its
//! timers were delivered and the delivery is durable, so no restart reads it again.
//! Delivery stops one tick short of the window's end until the caller commits.
//!
//! # Recovery
//!
//! The wheel is written only by a checkpoint, after the log is synced, so the wheel
//! file never points at a record a power loss could take. Open verifies the log from
//! the checkpoint's `log_end` and cuts it at the first invalid record, then replays
//! the records after `log_end` into the wheel (skipping what a later, interrupted
//! checkpoint already wrote), or rebuilds the wheel from the whole log when its file
//! is missing, damaged or inconsistent. Delivery restarts at `committed_tick`: timers
//! returned but not committed are returned again (at least once), those that fell due
//! while the store was closed are returned late, never dropped. See `README.md`.

pub mod config;

mod checkpoint;
mod error;
mod record;
mod store;
mod wheel;

pub use checkpoint::Meta;
pub use config::{ConfigError, Geometry, TimerConfig};
pub use error::{AddError, CancelError, CommitError, Corrupt, OpenError, TakeError, WriteError};
pub use store::TimerStore;

/// What a timer delivers: the CommitLog record of the delayed message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Payload {
    /// Where the record starts in the CommitLog.
    pub commitlog_offset: u64,
    /// Its size in bytes.
    pub size: u32,
}

/// A timer: the position of its first record in the timer log. Stable across
/// restarts and rolls, so it can be stored and cancelled later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// A timer returned by [`TimerStore::take_due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The timer.
    pub id: TimerId,
    /// When it was due (at or before the `now_ms` it was taken at).
    pub due_ms: u64,
    /// What it delivers.
    pub payload: Payload,
    /// Start of the tick it was delivered under: its due tick, or a later one when it
    /// was added with a due time already past.
    pub tick_ms: u64,
}

/// How far a caller got through the timers returned: committed by
/// [`TimerStore::commit_delivered`]. Valid for the opening of the store that gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryMark {
    instance: u64,
    returned: u64,
}

/// What [`TimerStore::take_due`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Taken {
    /// Timers due, tick by tick, each tick's in due order.
    pub dues: Vec<Due>,
    /// Commit it once every timer returned so far is handled.
    pub mark: DeliveryMark,
    /// Delivery reached the end of the wheel's window past the last commit: commit to go on.
    pub blocked: bool,
}

/// Whether the checkpoint was there when the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CheckpointState {
    /// Valid: recovery replayed the log from its `log_end`.
    #[default]
    Found,
    /// Absent (a new store, or one whose checkpoint was removed).
    Missing,
    /// Present but damaged: recovery read the whole log.
    Damaged,
}

/// What [`TimerStore::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The store was created.
    pub created: bool,
    /// The checkpoint's state.
    pub checkpoint: CheckpointState,
    /// Records in the timer log after recovery.
    pub log_records: u64,
    /// Records verified at the log's tail (from the checkpoint on).
    pub verified: u64,
    /// Records cut from the tail: the first invalid one and all after it.
    pub truncated: u64,
    /// Records read into the wheel (replayed after the checkpoint, or the whole log on a rebuild).
    pub replayed: u64,
    /// Why the wheel was rebuilt from the log, if it was.
    pub wheel_rebuilt: Option<String>,
    /// Damaged records before the verified tail skipped by a rebuild.
    pub damaged: u64,
    /// Timers pending after recovery.
    pub pending: u64,
    /// Timers filed before this time were delivered and committed.
    pub committed_until_ms: u64,
}

/// Where a timer store stands ([`TimerStore::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerStats {
    /// Timers waiting (see [`TimerStore::pending`]).
    pub pending: u64,
    /// The earliest due time in the tick being delivered, else the start of the
    /// earliest tick with timers filed.
    pub next_due_ms: Option<u64>,
    /// Timers filed before this time were delivered and committed.
    pub committed_until_ms: u64,
    /// Start of the tick being delivered (or next to be read).
    pub delivering_tick_ms: u64,
    /// Timers returned since open.
    pub returned: u64,
    /// The latest a timer was returned after its due time, since open (`now_ms` given
    /// to `take_due` minus `due_ms`).
    pub lateness_max_ms: u64,
    /// Mean of the same.
    pub lateness_mean_ms: u64,
    /// Timers rolled (filed early, beyond the window) since open.
    pub rolled: u64,
    /// Records in the timer log.
    pub log_records: u64,
    /// Bytes the timer log takes on disk.
    pub log_bytes: u64,
    /// Memory the store holds ([`TimerStore::heap_bytes`]).
    pub heap_bytes: u64,
}
