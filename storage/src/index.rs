//! The key index: find messages by business key without scanning.
//!
//! Format (RocketMQ's IndexFile, little-endian, every field a u64):
//!
//! ```text
//! header   magic ("WIX1"), begin_offset, end_offset, entry_count, slot_count, entry_capacity
//! slots    slot_count × (entry number + 1, 0 = empty)
//! entries  entry_capacity × (key_hash, commitlog_offset, previous entry number + 1)
//! ```
//!
//! A key (`topic#key`) hashes to a slot; the slot points at the newest entry
//! with that slot, and each entry at the previous one, so a lookup walks one
//! chain. Files are named by the CommitLog offset of their first record and
//! replaced by a new file when full. Lookups return candidate offsets only;
//! the store re-reads each record and checks its topic and keys, so a hash
//! collision or a stale entry never returns a wrong message.
//!
//! All fields are accessed as atomics, so the dispatcher can insert while
//! readers walk chains: an entry is complete before the slot store (Release)
//! that makes it reachable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapRaw;
use parking_lot::{Mutex, RwLock};

use crate::mapped_file::{file_name, list_files};

const MAGIC: u64 = 0x5749_5831; // "WIX1"
const HEADER_WORDS: usize = 6;
const ENTRY_WORDS: usize = 3;

/// One index file.
#[derive(Debug)]
struct IndexFile {
    path: PathBuf,
    map: MmapRaw,
    slot_count: usize,
    capacity: usize,
}

impl IndexFile {
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned (so 8-byte aligned), its length
        // is a multiple of 8 (see `create`/`open`), it lives as long as `self`,
        // and every access to it in this process goes through these atomics.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), self.map.len() / 8) }
    }

    fn size_for(slots: usize, capacity: usize) -> u64 {
        8 * (HEADER_WORDS + slots + ENTRY_WORDS * capacity) as u64
    }

    fn create(dir: &Path, begin: u64, slots: usize, capacity: usize) -> std::io::Result<Self> {
        let path = dir.join(file_name(begin));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        // Real blocks, not a sparse file: a write through the mapping must never need
        // space the disk no longer has (that would be SIGBUS, not an error).
        if let Err(err) = crate::mapped_file::allocate(&file, &path, 0, Self::size_for(slots, capacity)) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        let index = Self { map: MmapRaw::map_raw(&file)?, path, slot_count: slots, capacity };
        let words = index.words();
        for (i, v) in [MAGIC, begin, begin, 0, slots as u64, capacity as u64].into_iter().enumerate() {
            words[i].store(v, Ordering::Relaxed);
        }
        crate::durable::sync_dir(dir)?;
        Ok(index)
    }

    fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let invalid =
            |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
        if len < 8 * HEADER_WORDS as u64 || len % 8 != 0 {
            return Err(invalid("bad size"));
        }
        let mut index = Self { map: MmapRaw::map_raw(&file)?, path: path.to_owned(), slot_count: 0, capacity: 0 };
        let words = index.words();
        let (slots, capacity) = (words[4].load(Ordering::Relaxed) as usize, words[5].load(Ordering::Relaxed) as usize);
        if words[0].load(Ordering::Relaxed) != MAGIC || slots == 0 || Self::size_for(slots, capacity) != len {
            return Err(invalid("not an index file"));
        }
        index.slot_count = slots;
        index.capacity = capacity;
        Ok(index)
    }

    fn end_offset(&self) -> u64 {
        self.words()[2].load(Ordering::Acquire)
    }
    fn count(&self) -> usize {
        self.words()[3].load(Ordering::Acquire) as usize
    }
    fn is_full(&self) -> bool {
        self.count() >= self.capacity
    }

    fn insert(&self, key_hash: u64, commitlog_offset: u64) {
        let words = self.words();
        let n = self.count();
        let slot = &words[HEADER_WORDS + (key_hash % self.slot_count as u64) as usize];
        let entry = HEADER_WORDS + self.slot_count + n * ENTRY_WORDS;
        words[entry].store(key_hash, Ordering::Relaxed);
        words[entry + 1].store(commitlog_offset, Ordering::Relaxed);
        words[entry + 2].store(slot.load(Ordering::Relaxed), Ordering::Relaxed);
        slot.store(n as u64 + 1, Ordering::Release);
        words[3].store(n as u64 + 1, Ordering::Release);
    }

    fn set_end(&self, end: u64) {
        self.words()[2].fetch_max(end, Ordering::AcqRel);
    }

    fn lookup(&self, key_hash: u64, out: &mut Vec<u64>, max: usize) {
        let words = self.words();
        let mut next = words[HEADER_WORDS + (key_hash % self.slot_count as u64) as usize].load(Ordering::Acquire);
        let mut steps = 0;
        while next != 0 && out.len() < max && steps < self.capacity {
            let entry = HEADER_WORDS + self.slot_count + (next as usize - 1) * ENTRY_WORDS;
            if entry + 2 >= words.len() {
                break; // damaged chain
            }
            if words[entry].load(Ordering::Relaxed) == key_hash {
                out.push(words[entry + 1].load(Ordering::Relaxed));
            }
            next = words[entry + 2].load(Ordering::Relaxed);
            steps += 1;
        }
    }

    fn flush(&self) -> std::io::Result<()> {
        crate::fault::sync(&self.path, crate::fault::Synced::File, || self.map.flush())
    }
}

/// All key-index files of a store.
#[derive(Debug)]
pub struct KeyIndex {
    dir: PathBuf,
    slots: usize,
    capacity: usize,
    files: RwLock<Vec<Arc<IndexFile>>>,
    write: Mutex<()>,
}

/// Hash of `topic#key` (FNV-1a 64).
fn key_hash(topic: &str, key: &str) -> u64 {
    fnv1a(topic.bytes().chain(std::iter::once(b'#')).chain(key.bytes()))
}

/// FNV-1a 64 over a byte stream.
pub(crate) fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

impl KeyIndex {
    /// Opens the index in `dir`. After an unclean shutdown the newest file may
    /// be torn, so it is dropped; the returned offset is where re-indexing must
    /// start (`None` when nothing needs replaying).
    pub fn open(dir: &Path, slots: u32, capacity: u32, clean_shutdown: bool) -> std::io::Result<(Self, Option<u64>)> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        let mut replay_from = None;
        let listed = list_files(dir)?;
        for (i, (begin, path)) in listed.iter().enumerate() {
            let newest = i + 1 == listed.len();
            match IndexFile::open(path) {
                Ok(file) if clean_shutdown || !newest => files.push(Arc::new(file)),
                Ok(_) | Err(_) => {
                    tracing::info!(path = %path.display(), "rebuilding key-index file");
                    std::fs::remove_file(path)?;
                    replay_from = Some(replay_from.unwrap_or(*begin));
                }
            }
        }
        let index = Self {
            dir: dir.to_owned(),
            slots: slots as usize,
            capacity: capacity as usize,
            files: RwLock::new(files),
            write: Mutex::new(()),
        };
        Ok((index, replay_from))
    }

    /// Indexes the keys of the record at `commitlog_offset`; records already covered are skipped.
    pub fn add<'a>(
        &self,
        topic: &str,
        keys: impl Iterator<Item = &'a str>,
        commitlog_offset: u64,
    ) -> std::io::Result<()> {
        let _guard = self.write.lock();
        let last = self.files.read().last().cloned();
        if last.as_ref().is_some_and(|f| commitlog_offset < f.end_offset()) {
            return Ok(());
        }
        let mut file = last;
        for key in keys {
            if file.as_ref().is_none_or(|f| f.is_full()) {
                let created = Arc::new(IndexFile::create(&self.dir, commitlog_offset, self.slots, self.capacity)?);
                if let Some(full) = &file {
                    full.flush()?;
                }
                self.files.write().push(created.clone());
                file = Some(created);
            }
            file.as_ref().expect("ensured").insert(key_hash(topic, key), commitlog_offset);
        }
        if let Some(file) = file {
            file.set_end(commitlog_offset + 1);
        }
        Ok(())
    }

    /// Candidate CommitLog offsets of messages of `topic` with `key`, newest first.
    pub fn lookup(&self, topic: &str, key: &str, max: usize) -> Vec<u64> {
        let hash = key_hash(topic, key);
        let mut out = Vec::new();
        for file in self.files.read().iter().rev() {
            file.lookup(hash, &mut out, max);
        }
        out.dedup();
        out
    }

    /// Bytes of the index files.
    pub fn disk_bytes(&self) -> u64 {
        self.files.read().iter().map(|f| f.map.len() as u64).sum()
    }

    /// Forces the newest file to disk.
    pub fn flush(&self) -> std::io::Result<()> {
        let last = self.files.read().last().cloned();
        last.map_or(Ok(()), |f| f.flush())
    }

    /// Retention: deletes files all of whose records are below `commitlog_min` (never the newest).
    pub fn delete_below(&self, commitlog_min: u64) -> std::io::Result<()> {
        let mut files = self.files.write();
        while files.len() > 1 && files[0].end_offset() <= commitlog_min {
            let gone = files.remove(0);
            std::fs::remove_file(&gone.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_across_files_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (index, replay) = KeyIndex::open(dir.path(), 4, 3, true).expect("open");
        assert_eq!(replay, None);
        for i in 0..10u64 {
            let key = if i % 2 == 0 { "even" } else { "odd" };
            index.add("orders", [key, "all"].into_iter(), i * 100).expect("add");
        }
        assert_eq!(index.lookup("orders", "even", 100), [800, 600, 400, 200, 0]);
        assert_eq!(index.lookup("orders", "all", 3), [900, 800, 700]);
        assert!(index.lookup("payments", "even", 100).is_empty());
        // Replays of already indexed records are ignored.
        index.add("orders", ["even"].into_iter(), 800).expect("add");
        assert_eq!(index.lookup("orders", "even", 100).len(), 5);
        index.flush().expect("flush");
        drop(index);
        let (index, _) = KeyIndex::open(dir.path(), 4, 3, true).expect("reopen");
        assert_eq!(index.lookup("orders", "odd", 100), [900, 700, 500, 300, 100]);
        index.delete_below(450).expect("delete");
        assert_eq!(index.lookup("orders", "odd", 100), [900, 700, 500]);
    }

    #[test]
    fn unclean_open_drops_the_newest_file_for_replay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (index, _) = KeyIndex::open(dir.path(), 4, 2, true).expect("open");
        for i in 0..3u64 {
            index.add("t", ["k"].into_iter(), i * 10).expect("add");
        }
        drop(index);
        let (index, replay) = KeyIndex::open(dir.path(), 4, 2, false).expect("open");
        assert_eq!(replay, Some(20));
        assert_eq!(index.lookup("t", "k", 10), [10, 0]);
    }

    #[test]
    fn rejects_foreign_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(file_name(0)), [0u8; 64]).expect("write");
        let (index, replay) = KeyIndex::open(dir.path(), 4, 2, true).expect("open");
        assert_eq!(replay, Some(0));
        assert!(index.lookup("t", "k", 10).is_empty());
    }
}
