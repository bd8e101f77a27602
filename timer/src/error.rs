//! Typed errors, one enum per operation.

use std::path::PathBuf;

use crate::config::ConfigError;
use crate::{TimerId, checkpoint::Meta};

/// A write, sync or checkpoint failed. The store is then fail-stop: every later
/// change returns [`WriteError::Poisoned`] until it is reopened (which recovers).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The operation failed now.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// An earlier write failed; reopen the store.
    #[error("an earlier write to the timer store failed; reopen it to recover")]
    Poisoned,
}

/// A record the store relies on is not readable: the timer log is damaged below
/// its verified tail (bit rot, or a file changed behind the store's back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timer log record {position}: {reason}")]
pub struct Corrupt {
    /// Its position in the timer log.
    pub position: u64,
    /// What is wrong.
    pub reason: String,
}

/// Why [`TimerStore::open`](crate::TimerStore::open) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another open store in this one) holds the directory.
    #[error("{} is in use by another timer store", .0.display())]
    Locked(PathBuf),
    /// The directory was created with another geometry (tick, wheel or segment size).
    #[error("the timer store was created with {stored:?}, not {configured:?}")]
    Geometry {
        /// What its files were laid out for.
        stored: Meta,
        /// What the configuration asks for.
        configured: Meta,
    },
    /// `timer.meta` is damaged or missing while the timer log exists.
    #[error("{}: {reason}", path.display())]
    Meta {
        /// The meta file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The timer log contradicts itself beyond repair.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// Writing what recovery repaired failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Why [`TimerStore::add`](crate::TimerStore::add) refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The due time is further ahead than the configured maximum delay.
    #[error("due at {due_ms} ms, after the latest accepted {latest_ms} ms (now plus the maximum delay)")]
    BeyondMaxDelay {
        /// The requested due time.
        due_ms: u64,
        /// The latest due time accepted now.
        latest_ms: u64,
    },
    /// The record could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The wheel and the log disagree (see [`Corrupt`]).
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

/// Why [`TimerStore::take_due`](crate::TimerStore::take_due) failed. Nothing was
/// returned and nothing changed; the same call fails again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TakeError {
    /// A tick's chain could not be read.
    #[error("tick {tick}: {source}")]
    Corrupt {
        /// The tick being read.
        tick: u64,
        /// What is damaged.
        #[source]
        source: Corrupt,
    },
    /// Re-filing a rolled timer failed.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Why [`TimerStore::cancel`](crate::TimerStore::cancel) refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    /// No timer has that id (it is past the log's end, or was lost in a crash before
    /// it was synced).
    #[error("no timer {0:?}")]
    Unknown(TimerId),
    /// The id names a re-filed copy or a cancel record, not a timer.
    #[error("{0:?} is not a timer id")]
    NotATimer(TimerId),
    /// The timer was already returned by [`take_due`](crate::TimerStore::take_due)
    /// (or cancelled while its tick was being delivered).
    #[error("timer {0:?} was already delivered")]
    AlreadyDelivered(TimerId),
    /// No timer with that payload waits: its due tick was already delivered (see
    /// [`cancel_payload`](crate::TimerStore::cancel_payload)).
    #[error("no timer due at {due_ms} ms with that payload is pending: its tick was delivered")]
    NotPending {
        /// The due time given.
        due_ms: u64,
    },
    /// The same cancel by payload is already filed.
    #[error("the timers due at {due_ms} ms with that payload are already cancelled")]
    PayloadCancelled {
        /// The due time given.
        due_ms: u64,
    },
    /// The timer's record is unreadable.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// The cancel record could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Why [`TimerStore::commit_delivered`](crate::TimerStore::commit_delivered) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The mark came from another opening of the store (marks do not survive a reopen).
    #[error("the delivery mark is from another opening of the timer store")]
    StaleMark,
    /// The checkpoint could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}
