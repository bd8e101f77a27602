//! The bloom index: per (topic, queue), one extension entry per ConsumeQueue
//! entry (the message's bloom filter and flags) and one summary per block of
//! consecutive entries. Written by the dispatcher through [`DispatchHook`],
//! read by the pull pipeline without touching the CommitLog.
//!
//! Files, under `<root>/<topic>/<queue>/`:
//! - `entries/`: [`EntryFile`] of `12 + bloom bytes` per queue offset:
//!   `commitlog_offset u64 | flags u16 | terms u16 | bloom`.
//! - `blocks/`: [`EntryFile`] of `8 + block bloom bytes` per block:
//!   `flags u16 | reserved 6 | bloom` (the union of the block's terms).
//! - `<root>/index.meta`: the [`IndexShape`] fingerprint; a different one
//!   (new sizes, new shadow property) wipes the index and rebuilds it from
//!   the CommitLog.
//!
//! **Safety of every skip**: an all-zero entry (a gap, or never written) or
//! one whose CommitLog offset differs from the ConsumeQueue's is *unknown*
//! and skips nothing; a block is used only when complete and built from its
//! first entry on (flag `KNOWN`). So a stale or partial index costs body
//! reads, never a lost message.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use weir_storage::{DispatchHook, Dispatched, EntryFile, HookOrder, MapBudget, QueueMap, RecordView};

use crate::bloom::{BloomShape, message_terms};

/// Bytes before the bloom in an entry.
const ENTRY_HEADER: usize = 12;
/// Bytes before the bloom in a block summary.
const BLOCK_HEADER: usize = 8;

/// Entry and block flags.
mod flag {
    /// Written by the dispatcher (zero means unknown).
    pub const KNOWN: u16 = 1;
    /// Entry: the message is shadow traffic.
    pub const SHADOW: u16 = 2;
    /// Block: some message is shadow traffic.
    pub const ANY_SHADOW: u16 = 2;
    /// Block: some message is production traffic.
    pub const ANY_PRODUCTION: u16 = 4;
}

/// The largest bloom filter an index entry or block summary may hold, in bytes.
pub const MAX_BLOOM_BYTES: usize = 64 << 10;

/// Why an [`IndexShape`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexShapeError {
    /// A bloom size is not whole 64-bit words, or is over [`MAX_BLOOM_BYTES`].
    #[error("{which} bloom of {bytes} bytes: expected a multiple of 8 up to {MAX_BLOOM_BYTES}")]
    BloomBytes {
        /// `message` or `block`.
        which: &'static str,
        /// The size given.
        bytes: usize,
    },
    /// More hash functions than [`BloomShape::MAX_HASHES`].
    #[error("{which} bloom with {hashes} hashes: expected at most {}", BloomShape::MAX_HASHES)]
    Hashes {
        /// `message` or `block`.
        which: &'static str,
        /// The count given.
        hashes: u32,
    },
    /// A block or a file of no entries.
    #[error("{what} must be positive")]
    Zero {
        /// `block_entries` or `entries_per_file`.
        what: &'static str,
    },
    /// A file of `entries_per_file` entries would exceed 64-bit offsets.
    #[error("{entries_per_file} entries per file do not fit 64-bit file offsets")]
    FileTooLarge {
        /// The count given.
        entries_per_file: u64,
    },
}

impl From<IndexShapeError> for std::io::Error {
    fn from(error: IndexShapeError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, error)
    }
}

/// Everything that decides the index's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexShape {
    /// Per-message bloom filter.
    pub message: BloomShape,
    /// Entries per block summary.
    pub block_entries: u64,
    /// Block summary bloom filter.
    pub block: BloomShape,
    /// Property that marks shadow traffic when its value is `true`.
    pub shadow_property: String,
    /// Entries per file (as the ConsumeQueue's).
    pub entries_per_file: u64,
}

impl IndexShape {
    /// A stable fingerprint of everything that changes the stored bytes.
    pub fn fingerprint(&self) -> String {
        format!(
            "weir-bloom-index v1 seed={:x} message={}x{} block={}:{}x{} shadow={:?} per-file={}\n",
            crate::bloom::TERM_SEED,
            self.message.bytes,
            self.message.hashes,
            self.block_entries,
            self.block.bytes,
            self.block.hashes,
            self.shadow_property,
            self.entries_per_file,
        )
    }

    /// Checks what [`BloomIndex::open`] needs: bloom sizes in whole words up to
    /// [`MAX_BLOOM_BYTES`], at most [`BloomShape::MAX_HASHES`] hashes, blocks and
    /// files of at least one entry, and file sizes that fit 64-bit offsets.
    pub fn validate(&self) -> Result<(), IndexShapeError> {
        for (which, bloom) in [("message", self.message), ("block", self.block)] {
            if !bloom.bytes.is_multiple_of(8) || bloom.bytes > MAX_BLOOM_BYTES {
                return Err(IndexShapeError::BloomBytes { which, bytes: bloom.bytes });
            }
            if bloom.hashes > BloomShape::MAX_HASHES {
                return Err(IndexShapeError::Hashes { which, hashes: bloom.hashes });
            }
        }
        for (what, count) in [("block_entries", self.block_entries), ("entries_per_file", self.entries_per_file)] {
            if count == 0 {
                return Err(IndexShapeError::Zero { what });
            }
        }
        let blocks_per_file = self.blocks_per_file();
        let fits = |entries: u64, len: usize| entries.checked_mul(len as u64).is_some();
        if !fits(self.entries_per_file, self.entry_len()) || !fits(blocks_per_file, self.block_len()) {
            return Err(IndexShapeError::FileTooLarge { entries_per_file: self.entries_per_file });
        }
        Ok(())
    }

    fn entry_len(&self) -> usize {
        ENTRY_HEADER + self.message.bytes
    }

    fn block_len(&self) -> usize {
        BLOCK_HEADER + self.block.bytes
    }

    fn blocks_per_file(&self) -> u64 {
        (self.entries_per_file / self.block_entries).max(1)
    }
}

/// Whether a message is shadow traffic (SPEC §11): property `shadow_property` is `true`.
pub fn is_shadow(view: &RecordView<'_>, shadow_property: &str) -> bool {
    view.property(shadow_property).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// One message's index entry, as read back.
#[derive(Debug, Clone, Copy)]
pub struct BloomEntry<'a> {
    flags: u16,
    commitlog_offset: u64,
    bloom: &'a [u8],
}

impl<'a> BloomEntry<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        Self {
            commitlog_offset: u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes")),
            flags: u16::from_le_bytes(bytes[8..10].try_into().expect("2 bytes")),
            bloom: &bytes[ENTRY_HEADER..],
        }
    }

    /// The entry describes the record at `commitlog_offset` (else it is unknown and skips nothing).
    pub fn describes(&self, commitlog_offset: u64) -> bool {
        self.flags & flag::KNOWN != 0 && self.commitlog_offset == commitlog_offset
    }

    /// The message's bloom filter.
    pub fn bloom(&self) -> &'a [u8] {
        self.bloom
    }

    /// The message is shadow traffic.
    pub fn is_shadow(&self) -> bool {
        self.flags & flag::SHADOW != 0
    }
}

/// One complete block's summary, as read back.
#[derive(Debug, Clone, Copy)]
pub struct BlockSummary<'a> {
    flags: u16,
    bloom: &'a [u8],
}

impl<'a> BlockSummary<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        Self { flags: u16::from_le_bytes(bytes[0..2].try_into().expect("2 bytes")), bloom: &bytes[BLOCK_HEADER..] }
    }

    /// Built from every entry of the block (else it skips nothing).
    pub fn is_known(&self) -> bool {
        self.flags & flag::KNOWN != 0
    }
    /// Some message of the block is shadow traffic.
    pub fn any_shadow(&self) -> bool {
        self.flags & flag::ANY_SHADOW != 0
    }
    /// Some message of the block is production traffic.
    pub fn any_production(&self) -> bool {
        self.flags & flag::ANY_PRODUCTION != 0
    }
    /// The union of the block's terms.
    pub fn bloom(&self) -> &'a [u8] {
        self.bloom
    }
}

/// The block being filled: its summary so far, kept in memory until complete. Its
/// buffers are allocated by the first entry (a broker opens tens of thousands of
/// queues that may never get one).
#[derive(Debug)]
struct OpenBlock {
    number: u64,
    /// Built from the block's first entry on, with no gap.
    known: bool,
    /// Next queue offset expected to extend it without a gap.
    next: u64,
    flags: u16,
    bloom: Vec<u8>,
    /// Scratch space for one entry, reused for every message.
    entry: Vec<u8>,
}

impl OpenBlock {
    fn starting_at(offset: u64, shape: &IndexShape) -> Self {
        Self {
            number: offset / shape.block_entries,
            known: offset.is_multiple_of(shape.block_entries),
            next: offset,
            flags: 0,
            bloom: Vec::new(),
            entry: Vec::new(),
        }
    }
}

/// The bloom index of one queue.
#[derive(Debug)]
pub struct QueueBlooms {
    entries: EntryFile,
    blocks: EntryFile,
    open_block: Mutex<OpenBlock>,
    shape: Arc<IndexShape>,
}

impl QueueBlooms {
    fn open(dir: &Path, shape: Arc<IndexShape>, budget: &Arc<MapBudget>) -> std::io::Result<Self> {
        let entries = EntryFile::open(dir.join("entries"), shape.entry_len(), shape.entries_per_file, budget.clone())?;
        let per_file = shape.blocks_per_file();
        let blocks = EntryFile::open(dir.join("blocks"), shape.block_len(), per_file, budget.clone())?;
        // A block summary is written only once the block's last entry is: drop any past that.
        blocks.truncate(entries.max_offset() / shape.block_entries)?;
        let open_block = Mutex::new(OpenBlock::starting_at(entries.max_offset(), &shape));
        Ok(Self { entries, blocks, open_block, shape })
    }

    /// One past the last entry written. Entries (and complete blocks) below it are final.
    pub fn max_offset(&self) -> u64 {
        self.entries.max_offset()
    }

    /// Entries per block.
    pub fn block_entries(&self) -> u64 {
        self.shape.block_entries
    }

    /// Calls `f(queue_offset, entry)` for up to `max` entries from `from` on. Files
    /// that cannot be read give no entries: an entry the index lacks skips nothing.
    pub fn scan(&self, from: u64, max: usize, mut f: impl FnMut(u64, BloomEntry<'_>)) {
        if let Err(err) = self.entries.scan(from, max, |q, bytes| f(q, BloomEntry::parse(bytes))) {
            tracing::warn!(%err, "bloom index unreadable; reading bodies instead");
        }
    }

    /// Calls `f` with the summary of complete block `number`, if there is one (and it
    /// can be read: a missing summary skips nothing).
    pub fn block<T>(&self, number: u64, f: impl FnOnce(BlockSummary<'_>) -> T) -> Option<T> {
        self.blocks.read(number, |bytes| f(BlockSummary::parse(bytes))).ok().flatten()
    }

    /// Bytes its files take on disk.
    fn disk_bytes(&self) -> u64 {
        self.entries.disk_bytes() + self.blocks.disk_bytes()
    }

    fn put(&self, queue_offset: u64, commitlog_offset: u64, view: &RecordView<'_>) -> std::io::Result<()> {
        let max = self.entries.max_offset();
        if queue_offset < max {
            let same = self.entries.read(queue_offset, |e| BloomEntry::parse(e).describes(commitlog_offset))?;
            if same == Some(true) {
                return Ok(()); // replayed after a restart
            }
            // A stale tail from before a CommitLog truncation: cut it and the blocks it fed.
            self.entries.truncate(queue_offset)?;
            self.blocks.truncate(queue_offset / self.shape.block_entries)?;
            *self.open_block.lock() = OpenBlock::starting_at(queue_offset, &self.shape);
        }
        // A gap reads as unknown entries.
        self.entries.fill_to(queue_offset)?;

        let shape = &self.shape;
        let shadow = is_shadow(view, &shape.shadow_property);
        let mut guard = self.open_block.lock();
        if guard.number != queue_offset / shape.block_entries || guard.next != queue_offset {
            *guard = OpenBlock::starting_at(queue_offset, shape);
        }
        let block = &mut *guard;
        block.bloom.resize(shape.block.bytes, 0);
        block.entry.clear();
        block.entry.resize(shape.entry_len(), 0);
        let mut terms = 0u16;
        message_terms(view.tag(), view.properties(), |term| {
            shape.message.insert(&mut block.entry[ENTRY_HEADER..], term);
            shape.block.insert(&mut block.bloom, term);
            terms = terms.saturating_add(1);
        });
        let flags = flag::KNOWN | if shadow { flag::SHADOW } else { 0 };
        block.entry[0..8].copy_from_slice(&commitlog_offset.to_le_bytes());
        block.entry[8..10].copy_from_slice(&flags.to_le_bytes());
        block.entry[10..12].copy_from_slice(&terms.to_le_bytes());
        self.entries.append(&block.entry)?;
        block.flags |= if shadow { flag::ANY_SHADOW } else { flag::ANY_PRODUCTION };
        block.next = queue_offset + 1;
        if block.next.is_multiple_of(shape.block_entries) {
            let mut summary = vec![0; shape.block_len()];
            let flags = block.flags | if block.known { flag::KNOWN } else { 0 };
            summary[0..2].copy_from_slice(&flags.to_le_bytes());
            summary[BLOCK_HEADER..].copy_from_slice(&block.bloom);
            self.blocks.fill_to(block.number)?;
            self.blocks.append(&summary)?;
            *block = OpenBlock::starting_at(block.next, shape);
        }
        Ok(())
    }

    /// Recovery: drops entries of records at or past `commitlog_end`.
    fn truncate_after(&self, commitlog_end: u64) -> std::io::Result<()> {
        let mut keep = self.entries.max_offset();
        while keep > self.entries.min_offset() {
            let stale = self.entries.read(keep - 1, |e| {
                let e = BloomEntry::parse(e);
                e.flags & flag::KNOWN != 0 && e.commitlog_offset >= commitlog_end
            })?;
            if stale != Some(true) {
                break;
            }
            keep -= 1;
        }
        if keep < self.entries.max_offset() {
            self.entries.truncate(keep)?;
            self.blocks.truncate(keep / self.shape.block_entries)?;
            *self.open_block.lock() = OpenBlock::starting_at(keep, &self.shape);
        }
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        self.entries.flush()?;
        self.blocks.flush()
    }

    fn retain(&self, min_queue_offset: u64) -> std::io::Result<()> {
        let per_block = self.shape.block_entries;
        self.entries.delete_leading_files(|last, _| last < min_queue_offset)?;
        self.blocks.delete_leading_files(|last, _| (last + 1).saturating_mul(per_block) <= min_queue_offset)
    }
}

/// The bloom index of every queue: a [`DispatchHook`] that the store feeds
/// and the pull path reads.
#[derive(Debug)]
pub struct BloomIndex {
    shape: Arc<IndexShape>,
    budget: Arc<MapBudget>,
    queues: QueueMap<QueueBlooms>,
    /// Set when the index was (re)created: recovery replays the whole CommitLog.
    rebuild: bool,
}

impl BloomIndex {
    /// Opens the index under `root`, wiping it when it was built with another shape; its
    /// files are mapped within `budget` (the store's, shared with the ConsumeQueues).
    /// A shape [`IndexShape::validate`] refuses is an `InvalidInput` error whose
    /// source is the [`IndexShapeError`].
    pub fn open(root: &Path, shape: IndexShape, budget: Arc<MapBudget>) -> std::io::Result<Self> {
        shape.validate()?;
        let meta = root.join("index.meta");
        let fingerprint = shape.fingerprint();
        let rebuild = std::fs::read_to_string(&meta).ok().as_deref() != Some(fingerprint.as_str());
        if rebuild {
            if root.exists() {
                tracing::info!(dir = %root.display(), "bloom index shape changed: rebuilding it from the CommitLog");
                std::fs::remove_dir_all(root)?;
            }
            std::fs::create_dir_all(root)?;
            std::fs::write(&meta, &fingerprint)?;
        }
        let shape = Arc::new(shape);
        let queues = QueueMap::open(root, |dir, _, _| QueueBlooms::open(&dir, shape.clone(), &budget))?;
        Ok(Self { shape, budget, queues, rebuild })
    }

    /// The shape the index is built with.
    pub fn shape(&self) -> &IndexShape {
        &self.shape
    }

    /// The index of one queue, if it has entries.
    pub fn queue(&self, topic: &str, queue_id: u32) -> Option<Arc<QueueBlooms>> {
        self.queues.get(topic, queue_id)
    }

    fn queue_or_create(&self, topic: &str, queue_id: u32) -> std::io::Result<Arc<QueueBlooms>> {
        self.queues.get_or_create(topic, queue_id, |dir| QueueBlooms::open(&dir, self.shape.clone(), &self.budget))
    }

    fn all(&self) -> Vec<Arc<QueueBlooms>> {
        self.queues.values()
    }
}

impl DispatchHook for BloomIndex {
    /// Before the ConsumeQueue entry: a reader never sees an entry whose bloom is missing.
    fn order(&self) -> HookOrder {
        HookOrder::BeforeQueueEntry
    }

    fn dispatch(&self, dispatched: &Dispatched<'_>) -> std::io::Result<()> {
        let view = dispatched.record.view();
        let queue = self.queue_or_create(view.topic(), view.queue_id())?;
        queue.put(view.queue_offset(), dispatched.entry.commitlog_offset, &view)
    }

    fn flush(&self) -> std::io::Result<()> {
        self.all().iter().try_for_each(|q| q.flush())
    }

    fn recover(&self, valid_end: u64, cut: bool) -> std::io::Result<Option<u64>> {
        if cut {
            for queue in self.all() {
                queue.truncate_after(valid_end)?;
            }
        }
        Ok(self.rebuild.then_some(0))
    }

    fn retain(&self, topic: &str, queue_id: u32, min_queue_offset: u64) -> std::io::Result<()> {
        self.queue(topic, queue_id).map_or(Ok(()), |q| q.retain(min_queue_offset))
    }

    fn delete_topic(&self, topic: &str) -> std::io::Result<()> {
        self.queues.remove_topic(topic)
    }

    fn disk_bytes(&self) -> u64 {
        self.all().iter().map(|q| q.disk_bytes()).sum()
    }
}
