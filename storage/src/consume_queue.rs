//! ConsumeQueue: the per-(topic, queue) index of fixed 20-byte entries.
//!
//! Format: each entry is `commitlog_offset: u64, size: u32, tag_hash: u64`,
//! little-endian. The entry for queue offset `q` sits at byte `q * 20` of the
//! queue, which is split into files of `entries_per_file` entries named by
//! their starting byte (as RocketMQ). An all-zero entry (`size == 0`) is a
//! filler for a queue offset whose record is gone; readers skip it.
//!
//! Only the dispatcher writes; readers see entries up to `max_offset`. The
//! files are an [`EntryFile`] of 20-byte entries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::entry_file::EntryFile;
use crate::map_budget::MapBudget;
use crate::queue_map::QueueMap;

/// Bytes per entry.
pub const ENTRY_LEN: usize = 20;

/// One ConsumeQueue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CqEntry {
    /// Where the record starts in the CommitLog.
    pub commitlog_offset: u64,
    /// Encoded record length.
    pub size: u32,
    /// Hash of the record's tag (see [`crate::tag_hash`]).
    pub tag_hash: u64,
}

impl CqEntry {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0; ENTRY_LEN];
        out[0..8].copy_from_slice(&self.commitlog_offset.to_le_bytes());
        out[8..12].copy_from_slice(&self.size.to_le_bytes());
        out[12..20].copy_from_slice(&self.tag_hash.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Self {
        Self {
            commitlog_offset: u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes")),
            size: u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
            tag_hash: u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")),
        }
    }

    /// A filler entry stands for a queue offset without a record.
    pub fn is_filler(&self) -> bool {
        self.size == 0
    }

    /// CommitLog offset one past the record.
    pub fn end(&self) -> u64 {
        self.commitlog_offset + u64::from(self.size)
    }
}

/// What [`ConsumeQueue::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The entry was appended.
    Appended,
    /// The same entry was already there (replay after a crash).
    AlreadyPresent,
    /// The queue is missing entries before this one; it needs a rebuild.
    Behind {
        /// The queue's current end.
        max_offset: u64,
    },
}

/// One (topic, queue) ConsumeQueue.
#[derive(Debug)]
pub struct ConsumeQueue {
    topic: String,
    queue_id: u32,
    entries: EntryFile,
}

impl ConsumeQueue {
    /// Opens (or prepares to create) the queue stored in `dir`, mapping its files within `budget`.
    pub fn open(
        dir: PathBuf,
        topic: String,
        queue_id: u32,
        entries_per_file: u64,
        budget: Arc<MapBudget>,
    ) -> std::io::Result<Self> {
        Ok(Self { topic, queue_id, entries: EntryFile::open(dir, ENTRY_LEN, entries_per_file, budget)? })
    }

    /// Topic of the queue.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// Queue id.
    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }
    /// First queue offset that may still be served.
    pub fn min_offset(&self) -> u64 {
        self.entries.min_offset()
    }
    /// One past the last entry.
    pub fn max_offset(&self) -> u64 {
        self.entries.max_offset()
    }
    /// Bytes its files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.entries.disk_bytes()
    }
    /// Whether entries were written since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.entries.is_dirty()
    }

    /// The entry at `queue_offset`, if written and retained.
    pub fn get(&self, queue_offset: u64) -> std::io::Result<Option<CqEntry>> {
        self.entries.read(queue_offset, CqEntry::decode)
    }

    /// Calls `f(queue_offset, entry)` for up to `max` entries from `from` on, fillers included.
    pub fn scan(&self, from: u64, max: usize, mut f: impl FnMut(u64, CqEntry)) -> std::io::Result<()> {
        self.entries.scan(from, max, |q, bytes| f(q, CqEntry::decode(bytes)))
    }

    /// Writes the entry for `queue_offset` if it is the next one, idempotently.
    pub fn put(&self, queue_offset: u64, entry: CqEntry) -> std::io::Result<PutOutcome> {
        let max = self.max_offset();
        if queue_offset < max {
            return match self.get(queue_offset)? {
                Some(existing) if existing == entry => Ok(PutOutcome::AlreadyPresent),
                _ => {
                    // A stale entry from before a CommitLog truncation: cut the queue back.
                    self.entries.truncate(queue_offset)?;
                    self.put(queue_offset, entry)
                }
            };
        }
        if queue_offset > max {
            return Ok(PutOutcome::Behind { max_offset: max });
        }
        self.entries.append(&entry.encode())?;
        Ok(PutOutcome::Appended)
    }

    /// Fills queue offsets `[max_offset, to)` with filler entries (their records are gone).
    pub fn fill_to(&self, to: u64) -> std::io::Result<()> {
        self.entries.fill_to(to)
    }

    /// Recovery: drops entries pointing at or past `commitlog_end`.
    pub fn truncate_after(&self, commitlog_end: u64) -> std::io::Result<()> {
        let mut keep = self.max_offset();
        while keep > self.min_offset() {
            match self.get(keep - 1)? {
                Some(e) if e.is_filler() || e.end() <= commitlog_end => break,
                _ => keep -= 1,
            }
        }
        self.entries.truncate(keep)
    }

    /// Forces written entries to disk.
    pub fn flush(&self) -> std::io::Result<()> {
        self.entries.flush()
    }

    /// Retention: deletes whole files whose entries all point below `commitlog_min`
    /// (never the last file), and moves `min_offset` to the first live entry.
    pub fn delete_below(&self, commitlog_min: u64) -> std::io::Result<()> {
        let dead = |e: CqEntry| e.is_filler() || e.end() <= commitlog_min;
        self.entries.delete_leading_files(|_, last| dead(CqEntry::decode(last)))?;
        // Skip entries of the first file that point at deleted CommitLog data.
        let mut min = self.min_offset();
        while min < self.max_offset()
            && self.get(min)?.is_some_and(|e| e.is_filler() || e.commitlog_offset < commitlog_min)
        {
            min += 1;
        }
        self.entries.advance_min_offset(min);
        Ok(())
    }
}

/// Every ConsumeQueue of a store, by topic and queue id, under `<root>/<topic>/<queue id>/`.
#[derive(Debug)]
pub struct ConsumeQueueTable {
    entries_per_file: u64,
    budget: Arc<MapBudget>,
    queues: QueueMap<ConsumeQueue>,
}

impl ConsumeQueueTable {
    /// Opens every queue found under `root`, their files to be mapped within `budget`.
    pub fn open(root: &Path, entries_per_file: u64, budget: Arc<MapBudget>) -> std::io::Result<Self> {
        let queues = QueueMap::open(root, |dir, topic, queue_id| {
            ConsumeQueue::open(dir, topic.to_owned(), queue_id, entries_per_file, budget.clone())
        })?;
        Ok(Self { entries_per_file, budget, queues })
    }

    /// The queue, if it has ever received a message.
    pub fn get(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue>> {
        self.queues.get(topic, queue_id)
    }

    /// The queue, created (empty) if needed.
    pub fn get_or_create(&self, topic: &str, queue_id: u32) -> std::io::Result<Arc<ConsumeQueue>> {
        self.queues.get_or_create(topic, queue_id, |dir| {
            ConsumeQueue::open(dir, topic.to_owned(), queue_id, self.entries_per_file, self.budget.clone())
        })
    }

    /// Every queue, sorted by topic and queue id.
    pub fn all(&self) -> Vec<Arc<ConsumeQueue>> {
        let mut all = self.queues.values();
        all.sort_by(|a, b| (a.topic(), a.queue_id()).cmp(&(b.topic(), b.queue_id())));
        all
    }

    /// Every queue, in no particular order.
    pub fn values(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues.values()
    }

    /// The queue map (its generation tells when queues came or went).
    pub fn map(&self) -> &QueueMap<ConsumeQueue> {
        &self.queues
    }

    /// The budget of mapped files the queues share.
    pub fn budget(&self) -> &Arc<MapBudget> {
        &self.budget
    }

    /// Forgets every queue of `topic` and deletes their files.
    pub fn remove_topic(&self, topic: &str) -> std::io::Result<()> {
        self.queues.remove_topic(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapped_file::list_files;

    fn entry(i: u64) -> CqEntry {
        CqEntry { commitlog_offset: i * 100, size: 100, tag_hash: i ^ 0xabc }
    }

    fn open(dir: &Path) -> ConsumeQueue {
        ConsumeQueue::open(dir.join("q"), "t".into(), 0, 4, MapBudget::unlimited()).expect("open")
    }

    #[test]
    fn appends_across_files_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cq = open(dir.path());
        for i in 0..10 {
            assert_eq!(cq.put(i, entry(i)).expect("put"), PutOutcome::Appended);
        }
        assert_eq!(cq.put(3, entry(3)).expect("put"), PutOutcome::AlreadyPresent);
        assert_eq!(cq.put(12, entry(12)).expect("put"), PutOutcome::Behind { max_offset: 10 });
        cq.flush().expect("flush");
        drop(cq);
        let cq = open(dir.path());
        assert_eq!((cq.min_offset(), cq.max_offset()), (0, 10));
        let mut seen = Vec::new();
        cq.scan(2, 100, |q, e| seen.push((q, e))).expect("scan");
        assert_eq!(seen, (2..10).map(|i| (i, entry(i))).collect::<Vec<_>>());
        assert_eq!(cq.get(9).expect("get"), Some(entry(9)));
        assert_eq!(cq.get(10).expect("get"), None);
    }

    #[test]
    fn truncate_after_drops_entries_past_the_commitlog_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cq = open(dir.path());
        for i in 0..10 {
            cq.put(i, entry(i)).expect("put");
        }
        cq.truncate_after(550).expect("truncate");
        assert_eq!(cq.max_offset(), 5);
        drop(cq);
        let cq = open(dir.path());
        assert_eq!(cq.max_offset(), 5);
        assert_eq!(cq.put(5, entry(5)).expect("put"), PutOutcome::Appended);
    }

    #[test]
    fn a_different_entry_at_a_known_offset_replaces_the_stale_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cq = open(dir.path());
        for i in 0..6 {
            cq.put(i, entry(i)).expect("put");
        }
        let replacement = CqEntry { commitlog_offset: 999, size: 1, tag_hash: 0 };
        assert_eq!(cq.put(2, replacement).expect("put"), PutOutcome::Appended);
        assert_eq!(cq.max_offset(), 3);
        assert_eq!(cq.get(2).expect("get"), Some(replacement));
    }

    #[test]
    fn retention_deletes_old_files_and_skips_dead_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cq = open(dir.path());
        cq.fill_to(2).expect("fill");
        for i in 2..10 {
            cq.put(i, entry(i)).expect("put");
        }
        assert_eq!(cq.get(0).expect("get").map(|e| e.is_filler()), Some(true));
        cq.delete_below(650).expect("delete");
        assert_eq!(cq.min_offset(), 7);
        assert_eq!(list_files(&dir.path().join("q")).expect("list").len(), 2);
        drop(cq);
        let cq = open(dir.path());
        assert_eq!((cq.min_offset(), cq.max_offset()), (4, 10));
    }
}
