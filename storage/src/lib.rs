//! Weir's storage engine, RocketMQ's design: every message of every topic is
//! appended to one CommitLog; a dispatcher follows it and builds the
//! per-queue ConsumeQueues and the key index; recovery after a crash cuts the
//! CommitLog at the first invalid record and replays the derived files.
//!
//! Layout:
//! - [`record`]: the CommitLog record format (encode, validate, decode).
//! - `mapped_file`: one memory-mapped file with one writer and many readers.
//! - `commitlog`: segments, the appender, segment pre-allocation, recovery scan.
//! - `warm`: populates the active segment's pages ahead of the appender.
//! - [`EntryFile`]: fixed-width entries in mapped files (ConsumeQueues, hook extension files).
//! - [`QueueMap`]: per-queue values in `<root>/<topic>/<queue id>/` (ConsumeQueues, hook files).
//! - [`MapBudget`]: how many per-queue files stay mapped; the least recently used close.
//! - `consume_queue`: per-(topic, queue) entries of 20 bytes.
//! - `index`: message lookup by business key.
//! - [`durable`]: durable replace and append of small (metadata) files.
//! - `dispatch`: follows the CommitLog; [`DispatchHook`]s add more indexes.
//! - `flush`: async flushing and sync group commit.
//! - `checkpoint`: durable positions that bound recovery.
//! - `meta`: `store.meta` (format, id, geometry) and the process lock.
//! - `retention`: segment retention, early cleanup and the disk high-water mark.
//! - `disk`: the disk watch (high-water mark, free-space reserve) and the store's state.
//! - `tombstones`: deleted topics whose records are still in the CommitLog.
//! - `store`: the [`Store`] facade and message ids.
//! - `fault`: the seam every allocation, sync and metadata write goes through;
//!   with the `fault-injection` feature, tests fail them and simulate power loss.
//!
//! **Boundary**: the storage engine knows nothing about networks, filters or plugins.

mod checkpoint;
mod commitlog;
mod config;
mod consume_queue;
mod disk;
mod dispatch;
pub mod durable;
mod entry_file;
mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault;
mod flush;
mod index;
mod map_budget;
mod mapped_file;
mod meta;
mod queue_map;
pub mod record;
mod retention;
mod store;
mod tombstones;
mod warm;

pub use commitlog::StoredRecord;
pub use config::{FlushMode, RecoveryMode, StoreConfig};
pub use consume_queue::{CqEntry, ENTRY_LEN as CQ_ENTRY_LEN};
pub use disk::StoreState;
pub use dispatch::{DispatchHook, Dispatched, HookOrder, tag_hash};
pub use entry_file::EntryFile;
pub use error::{AppendError, DecodeError, InvalidMessage, OpenError, ReadError};
pub use flush::Durable;
pub use map_budget::MapBudget;
pub use queue_map::QueueMap;
pub use record::{Message, RecordView};
pub use store::{
    AppendResult, AppendStatus, EntryReader, MessageId, QueueMessage, QueueRead, ReadStatus, RecoveryReport, Store,
    StoreStats, VerifyReport, now_ms,
};
