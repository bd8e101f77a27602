//! [`EntryFile`]: a sequence of fixed-width entries addressed by index, stored
//! in memory-mapped files of `entries_per_file` entries named by their first
//! byte (as RocketMQ's ConsumeQueue).
//!
//! The ConsumeQueue is one; dispatch hooks keep their per-queue extension
//! files (the bloom index) in the same form, so every per-queue index shares
//! one implementation of appending, publishing, truncation and retention.
//!
//! One writer appends; readers see entries below [`EntryFile::max_offset`].
//! An all-zero entry is what a gap reads as: callers give it a meaning
//! ("filler", "unknown") that is always safe.
//!
//! **Sized to use.** Files grow on demand (see [`Growth::OnDemand`]): a queue
//! holding one message costs one page per file, and a file reaches its full
//! capacity only when the queue does. A file that cannot grow (no space) fails
//! that append and changes nothing.
//!
//! **Mapped while used.** Opening an entry file reads only where its last file's
//! data ends; its files are mapped on first use and may be closed again by the
//! store's [`MapBudget`] when other queues are used more recently. A closed entry
//! file keeps its offsets, answers single-entry reads with `pread` and its first
//! [`COLD_APPENDS`] appends with `pwrite` (a queue written now and then, among more
//! queues than the budget maps, costs an open and a write, not a map and an unmap),
//! and maps itself again for scans and for the appends after those.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::fault::Synced;
use crate::map_budget::{MapBudget, Mapped};
use crate::mapped_file::{FileWriter, Growth, MappedFile, allocate, file_name, growth_target, list_files};

/// Appends a closed entry file takes with `pwrite` before it maps its files again.
pub const COLD_APPENDS: u32 = 8;

/// Fixed-width entries in mapped files under one directory.
#[derive(Debug)]
pub struct EntryFile {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    entry_len: usize,
    file_size: u64,
    budget: Arc<MapBudget>,
    files: RwLock<Files>,
    writer: Mutex<Option<FileWriter>>,
    min_offset: AtomicU64,
    max_offset: AtomicU64,
    /// Byte position (global) up to which entries are flushed.
    flushed: AtomicU64,
    /// Bytes the last file takes on disk (earlier files are full).
    last_allocated: AtomicU64,
    last_used: AtomicU64,
    /// Budget tick taken after the last write completed (see [`MapBudget::synced_before`]).
    written: AtomicU64,
    /// Appends written with `pwrite` since the files were last closed.
    cold_appends: AtomicU32,
    me: Weak<Shared>,
}

#[derive(Debug)]
struct Files {
    /// Global byte offset of every file's first byte, oldest first.
    starts: Vec<u64>,
    /// The files, mapped, while the entry file is open (one per start).
    mapped: Option<Vec<Arc<MappedFile>>>,
}

impl EntryFile {
    /// Opens the entries stored in `dir` (created on the first append), reading only
    /// where the last file's data ends; files are mapped when first used, within `budget`.
    pub fn open(
        dir: PathBuf,
        entry_len: usize,
        entries_per_file: u64,
        budget: Arc<MapBudget>,
    ) -> std::io::Result<Self> {
        assert!(entry_len > 0 && entries_per_file > 0, "entries need a width and files a capacity");
        let file_size = entries_per_file * entry_len as u64;
        let listed = match list_files(&dir) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            listed => listed?,
        };
        if let Some((start, path)) = listed.iter().find(|(start, _)| start % file_size != 0) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} (at {start}) is not aligned to the file size {file_size}", path.display()),
            ));
        }
        let (end, last_allocated) = match listed.last() {
            Some((start, path)) => {
                let (used, allocated) = used_len(path, file_size, entry_len)?;
                (start + used, allocated)
            }
            None => (0, 0),
        };
        let min = listed.first().map_or(0, |(start, _)| start / entry_len as u64);
        let starts = listed.into_iter().map(|(start, _)| start).collect();
        let shared = Arc::new_cyclic(|me| Shared {
            dir,
            entry_len,
            file_size,
            last_used: AtomicU64::new(budget.tick()),
            budget,
            files: RwLock::new(Files { starts, mapped: None }),
            writer: Mutex::new(None),
            min_offset: AtomicU64::new(min),
            max_offset: AtomicU64::new(end / entry_len as u64),
            flushed: AtomicU64::new(end),
            last_allocated: AtomicU64::new(last_allocated),
            written: AtomicU64::new(0),
            cold_appends: AtomicU32::new(0),
            me: me.clone(),
        });
        Ok(Self { shared })
    }

    /// Bytes per entry.
    pub fn entry_len(&self) -> usize {
        self.shared.entry_len
    }
    /// First index that may still be read.
    pub fn min_offset(&self) -> u64 {
        self.shared.min_offset.load(Ordering::Acquire)
    }
    /// One past the last entry.
    pub fn max_offset(&self) -> u64 {
        self.shared.max_offset.load(Ordering::Acquire)
    }
    /// Bytes its files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        let files = self.shared.files.read().starts.len() as u64;
        files.saturating_sub(1) * self.shared.file_size + self.shared.last_allocated.load(Ordering::Relaxed)
    }
    /// Whether entries were written since the last flush.
    pub fn is_dirty(&self) -> bool {
        self.max_offset() * self.shared.entry_len as u64 > self.shared.flushed.load(Ordering::Acquire)
    }

    /// Whether its files are mapped now (tests).
    #[cfg(test)]
    fn is_mapped(&self) -> bool {
        self.shared.files.read().mapped.is_some()
    }

    /// Calls `f(index, entry)` for up to `max` entries from `from` on.
    pub fn scan(&self, from: u64, max: usize, mut f: impl FnMut(u64, &[u8])) -> std::io::Result<()> {
        let s = &self.shared;
        let len = s.entry_len as u64;
        let from = from.max(self.min_offset());
        let end = self.max_offset().min(from.saturating_add(max as u64));
        if from >= end {
            return Ok(());
        }
        s.with_files(|files| {
            let mut q = from;
            while q < end {
                let byte = q * len;
                let Some(file) = files.iter().rev().find(|f| f.start() <= byte) else { return };
                let local = (byte - file.start()) as usize;
                for chunk in file.read_from(local).chunks_exact(s.entry_len) {
                    if q >= end {
                        return;
                    }
                    f(q, chunk);
                    q += 1;
                }
                if byte + len > file.end() || q * len != file.end() {
                    return; // the next file is missing or this one is not fully published
                }
            }
        })
    }

    /// Calls `f` with the entry at `index`, if it is written and retained.
    pub fn read<T>(&self, index: u64, f: impl FnOnce(&[u8]) -> T) -> std::io::Result<Option<T>> {
        let s = &self.shared;
        if index < self.min_offset() || index >= self.max_offset() {
            return Ok(None);
        }
        let files = s.files.read();
        if files.mapped.is_none() {
            // Closed: one entry is cheaper to read than to map its files for.
            let byte = index * s.entry_len as u64;
            let Some(&start) = files.starts.iter().rev().find(|&&start| start <= byte) else { return Ok(None) };
            drop(files);
            let mut entry = vec![0; s.entry_len];
            let file = File::open(s.dir.join(file_name(start)))?;
            return match file.read_exact_at(&mut entry, byte - start) {
                Ok(()) => Ok(Some(f(&entry))),
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                Err(err) => Err(err),
            };
        }
        drop(files);
        let mut f = Some(f);
        let mut out = None;
        self.scan(index, 1, |_, entry| out = f.take().map(|f| f(entry)))?;
        Ok(out)
    }

    /// Appends `entry` at [`max_offset`](Self::max_offset) and publishes it. On an error
    /// (e.g. the file cannot grow) nothing changes.
    pub fn append(&self, entry: &[u8]) -> std::io::Result<()> {
        let s = &self.shared;
        if entry.len() != s.entry_len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("entry of {} bytes in a file of {}-byte entries", entry.len(), s.entry_len),
            ));
        }
        s.touch();
        let mut writer = s.writer.lock();
        if s.files.read().mapped.is_none() && s.cold_appends.fetch_add(1, Ordering::Relaxed) < COLD_APPENDS {
            return s.append_cold(entry);
        }
        let opened = s.open_locked(&mut writer)?;
        let appended = s.append_locked(&mut writer, entry);
        drop(writer);
        s.admit(opened);
        appended
    }

    /// Appends all-zero entries until `max_offset` reaches `to`.
    pub fn fill_to(&self, to: u64) -> std::io::Result<()> {
        let zero = vec![0; self.shared.entry_len];
        while self.max_offset() < to {
            self.append(&zero)?;
        }
        Ok(())
    }

    /// Drops entries at and after `index`.
    pub fn truncate(&self, index: u64) -> std::io::Result<()> {
        if index >= self.max_offset() {
            return Ok(());
        }
        let s = &self.shared;
        let byte = index * s.entry_len as u64;
        let mut writer = s.writer.lock();
        let opened = s.open_locked(&mut writer)?;
        let result = (|| {
            let mut files = s.files.write();
            while files.starts.len() > 1 && files.starts.last().is_some_and(|&start| start >= byte) {
                let start = files.starts.pop().expect("non-empty");
                files.mapped.as_mut().expect("open").pop();
                s.budget.released(1);
                std::fs::remove_file(s.dir.join(file_name(start)))?;
            }
            if let Some(&last) = files.starts.last() {
                let mut w = MappedFile::open(&s.dir.join(file_name(last)), last, s.file_size, Growth::OnDemand)?;
                w.truncate(byte.saturating_sub(last).min(w.file().allocated() as u64) as usize)?;
                s.last_allocated.store(w.file().allocated() as u64, Ordering::Relaxed);
                *files.mapped.as_mut().expect("open").last_mut().expect("non-empty") = w.file().clone();
                *writer = Some(w);
            }
            s.max_offset.store(index.max(self.min_offset()), Ordering::Release);
            s.flushed.fetch_min(byte, Ordering::AcqRel);
            s.written.store(s.budget.tick(), Ordering::Release);
            Ok(())
        })();
        drop(writer);
        s.admit(opened);
        result
    }

    /// Forces written entries to disk (through the mapping, or the files when closed),
    /// unless a file-system sync since the last write did.
    pub fn flush(&self) -> std::io::Result<()> {
        let s = &self.shared;
        let end = self.max_offset() * s.entry_len as u64;
        let from = s.flushed.load(Ordering::Acquire);
        if end <= from {
            return Ok(());
        }
        // Read after `end`: the stamp of the last write, hence of every write `end` counts.
        if s.written.load(Ordering::Acquire) < s.budget.synced_before() {
            s.flushed.fetch_max(end, Ordering::AcqRel);
            return Ok(());
        }
        let files = s.files.read();
        match &files.mapped {
            Some(mapped) => {
                for file in mapped.iter().filter(|f| f.end() > from && f.start() < end) {
                    let lo = from.saturating_sub(file.start()) as usize;
                    let hi = (end - file.start()).min(file.size() as u64) as usize;
                    file.flush_range(lo, hi.min(file.published()))?;
                }
            }
            None => {
                for &start in files.starts.iter().filter(|&&start| start + s.file_size > from && start < end) {
                    let path = s.dir.join(file_name(start));
                    crate::fault::sync(&path, Synced::File, || File::open(&path)?.sync_data())?;
                }
            }
        }
        s.flushed.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Retention: deletes leading files, never the last one, while `dead(last
    /// index, last entry)` says the file's last entry is no longer needed.
    /// Moves `min_offset` past deleted files.
    pub fn delete_leading_files(&self, mut dead: impl FnMut(u64, &[u8]) -> bool) -> std::io::Result<()> {
        let s = &self.shared;
        loop {
            let files = s.files.read();
            if files.starts.len() < 2 {
                return Ok(());
            }
            let next_start = files.starts[1] / s.entry_len as u64;
            drop(files);
            if !self.read(next_start - 1, |entry| dead(next_start - 1, entry))?.unwrap_or(false) {
                return Ok(());
            }
            let mut files = s.files.write();
            let gone = files.starts.remove(0);
            if let Some(mapped) = files.mapped.as_mut() {
                mapped.remove(0);
                s.budget.released(1);
            }
            drop(files);
            std::fs::remove_file(s.dir.join(file_name(gone)))?;
            s.min_offset.fetch_max(next_start, Ordering::AcqRel);
        }
    }

    /// Moves `min_offset` up to `index` (never down): entries below it are no longer served.
    pub fn advance_min_offset(&self, index: u64) {
        self.shared.min_offset.fetch_max(index.min(self.max_offset()), Ordering::AcqRel);
    }
}

impl Shared {
    fn touch(&self) {
        self.last_used.store(self.budget.tick(), Ordering::Relaxed);
    }

    /// Runs `f` over the mapped files, mapping them first if the entry file is closed.
    fn with_files<T>(&self, f: impl FnOnce(&[Arc<MappedFile>]) -> T) -> std::io::Result<T> {
        self.touch();
        loop {
            {
                let files = self.files.read();
                if let Some(mapped) = &files.mapped {
                    return Ok(f(mapped));
                }
                if files.starts.is_empty() {
                    return Ok(f(&[]));
                }
            }
            let opened = self.open_locked(&mut self.writer.lock())?;
            self.admit(opened);
        }
    }

    /// Maps every file, if closed, with the writer at the end of the entries.
    /// Returns how many files it mapped (`None`: they already were).
    fn open_locked(&self, writer: &mut Option<FileWriter>) -> std::io::Result<Option<usize>> {
        let mut files = self.files.write();
        if files.mapped.is_some() {
            return Ok(None);
        }
        let end = self.max_offset.load(Ordering::Acquire) * self.entry_len as u64;
        let mut mapped = Vec::with_capacity(files.starts.len());
        let mut last = None;
        for (i, &start) in files.starts.iter().enumerate() {
            let mut w = MappedFile::open(&self.dir.join(file_name(start)), start, self.file_size, Growth::OnDemand)?;
            let pos = if i + 1 == files.starts.len() {
                end.saturating_sub(start).min(self.file_size) as usize
            } else {
                w.file().allocated()
            };
            w.resume(pos)?;
            mapped.push(w.file().clone());
            last = Some(w);
        }
        let count = mapped.len();
        self.budget.grew(count);
        files.mapped = Some(mapped);
        *writer = last;
        Ok(Some(count))
    }

    /// Registers this entry file, if it just mapped its files, with the budget (which
    /// may close others).
    fn admit(&self, opened: Option<usize>) {
        if opened.is_some() {
            let me: Weak<dyn Mapped> = self.me.clone();
            self.budget.opened(me);
        }
    }

    /// Appends to closed files with `pwrite`, growing the last one (or making the next)
    /// as the mapped path does. The caller holds the writer lock, so the files cannot
    /// be mapped meanwhile. On an error nothing changes but allocated space.
    fn append_cold(&self, entry: &[u8]) -> std::io::Result<()> {
        let byte = self.max_offset.load(Ordering::Acquire) * self.entry_len as u64;
        let start = byte - byte % self.file_size;
        let path = self.dir.join(file_name(start));
        let file = if self.files.read().starts.last() == Some(&start) {
            std::fs::OpenOptions::new().write(true).open(&path)?
        } else {
            std::fs::create_dir_all(&self.dir)?;
            let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
            self.add_file(start, None);
            file
        };
        let (local, allocated) = ((byte - start) as usize, self.last_allocated.load(Ordering::Relaxed) as usize);
        let needed = local + self.entry_len;
        if needed > allocated {
            let target = growth_target(needed, allocated, self.file_size as usize);
            allocate(&file, &path, allocated as u64, target as u64)?;
            self.last_allocated.store(target as u64, Ordering::Relaxed);
        }
        file.write_all_at(entry, local as u64)?;
        self.max_offset.fetch_add(1, Ordering::AcqRel);
        self.written.store(self.budget.tick(), Ordering::Release);
        Ok(())
    }

    /// Records a new, empty last file starting at `start` (mapped when the entry file
    /// is open); the first file sets where the entries begin.
    fn add_file(&self, start: u64, mapped: Option<Arc<MappedFile>>) {
        let mut files = self.files.write();
        if files.starts.is_empty() {
            self.min_offset.store(start / self.entry_len as u64, Ordering::Release);
            self.flushed.store(start, Ordering::Release);
        }
        files.starts.push(start);
        if let Some(file) = mapped {
            files.mapped.get_or_insert_with(Vec::new).push(file);
            self.budget.grew(1);
        }
        self.last_allocated.store(0, Ordering::Relaxed);
    }

    fn append_locked(&self, writer: &mut Option<FileWriter>, entry: &[u8]) -> std::io::Result<()> {
        let byte = self.max_offset.load(Ordering::Acquire) * self.entry_len as u64;
        if writer.as_ref().is_none_or(|w| w.remaining() < self.entry_len) {
            std::fs::create_dir_all(&self.dir)?;
            let start = byte - byte % self.file_size;
            let w = MappedFile::create(&self.dir, start, self.file_size, Growth::OnDemand)?;
            self.add_file(start, Some(w.file().clone()));
            *writer = Some(w);
        }
        let w = writer.as_mut().expect("writer ensured above");
        // Entries before the first file's start (a queue created mid-way) read as zero.
        let skip = (byte - (w.file().start() + w.pos() as u64)) as usize;
        w.allocate(skip + self.entry_len)?;
        self.last_allocated.store(w.file().allocated() as u64, Ordering::Relaxed);
        w.reserve(skip + self.entry_len)[skip..].copy_from_slice(entry);
        w.advance(skip + self.entry_len);
        w.publish();
        self.max_offset.fetch_add(1, Ordering::AcqRel);
        self.written.store(self.budget.tick(), Ordering::Release);
        Ok(())
    }
}

impl Mapped for Shared {
    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    fn try_close(&self) -> usize {
        let Some(mut writer) = self.writer.try_lock() else { return 0 };
        let Some(mut files) = self.files.try_write() else { return 0 };
        *writer = None;
        self.cold_appends.store(0, Ordering::Relaxed);
        files.mapped.take().map_or(0, |mapped| mapped.len())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(mapped) = &self.files.get_mut().mapped {
            self.budget.released(mapped.len());
        }
    }
}

/// Where the entries of the file at `path` end (through the last non-zero byte, rounded
/// up to whole entries), and the file's length. Reads backwards from the end of its
/// last data region, so the cost follows the unused tail, not the file.
fn used_len(path: &Path, capacity: u64, entry_len: usize) -> std::io::Result<(u64, u64)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len > capacity {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is {len} bytes, more than its capacity of {capacity}", path.display()),
        ));
    }
    const CHUNK: u64 = 64 << 10;
    // A small file (every queue file that has grown to a few pages) is read whole:
    // cheaper than asking the file system where its data ends.
    let mut hi = if len <= CHUNK { len } else { crate::mapped_file::last_data_end(&file, len) };
    let mut buf = vec![0u8; hi.min(CHUNK) as usize];
    while hi > 0 {
        let lo = hi.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(hi - lo) as usize];
        file.read_exact_at(chunk, lo)?;
        if let Some(i) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(((lo + i as u64 + 1).div_ceil(entry_len as u64) * entry_len as u64, len));
        }
        hi = lo;
    }
    Ok((0, len))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(i: u64) -> [u8; 8] {
        (i + 1).to_le_bytes()
    }

    fn open(path: &Path, per_file: u64) -> EntryFile {
        EntryFile::open(path.to_owned(), 8, per_file, MapBudget::unlimited()).expect("open")
    }

    fn entries(file: &EntryFile, from: u64) -> Vec<(u64, Vec<u8>)> {
        let mut seen = Vec::new();
        file.scan(from, usize::MAX, |i, e| seen.push((i, e.to_vec()))).expect("scan");
        seen
    }

    #[test]
    fn appends_across_files_truncates_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e");
        let file = open(&path, 4);
        for i in 0..10 {
            file.append(&entry(i)).expect("append");
        }
        assert!(file.append(&[1; 3]).is_err(), "a wrong width is refused");
        assert_eq!(file.read(9, <[u8]>::to_vec).expect("read"), Some(entry(9).to_vec()));
        file.truncate(6).expect("truncate");
        file.flush().expect("flush");
        drop(file);
        let file = open(&path, 4);
        assert_eq!((file.min_offset(), file.max_offset()), (0, 6));
        assert!(!file.is_mapped(), "opening reads offsets only");
        assert_eq!(file.read(5, <[u8]>::to_vec).expect("read"), Some(entry(5).to_vec()));
        assert!(!file.is_mapped(), "a single read does not map");
        assert_eq!(entries(&file, 2), (2..6).map(|i| (i, entry(i).to_vec())).collect::<Vec<_>>());
        assert!(file.is_mapped());
    }

    #[test]
    fn leading_files_are_deleted_only_while_dead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = open(&dir.path().join("e"), 4);
        file.fill_to(2).expect("fill");
        for i in 2..10 {
            file.append(&entry(i)).expect("append");
        }
        assert_eq!(file.read(0, <[u8]>::to_vec).expect("read"), Some(vec![0; 8]));
        file.delete_leading_files(|last, _| last < 7).expect("delete");
        assert_eq!(file.min_offset(), 4);
        assert_eq!(list_files(&dir.path().join("e")).expect("list").len(), 2);
        file.advance_min_offset(6);
        assert_eq!(file.read(5, <[u8]>::to_vec).expect("read"), None);
        assert_eq!(file.min_offset(), 6);
    }

    #[test]
    fn files_grow_with_the_entries_from_one_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e");
        // 8-byte entries, 65 536 per file: a full file is 512 KiB.
        let file = open(&path, 1 << 16);
        file.append(&entry(0)).expect("append");
        let len = |start: u64| std::fs::metadata(path.join(file_name(start))).expect("stat").len();
        assert_eq!(len(0), 4096, "one entry: one page");
        assert_eq!(file.disk_bytes(), 4096);
        for i in 1..1000 {
            file.append(&entry(i)).expect("append");
        }
        assert_eq!(len(0), 8192, "doubled once 8 000 bytes were needed");
        for i in 1000..70_000 {
            file.append(&entry(i)).expect("append");
        }
        assert_eq!(len(0), 512 << 10, "a full file has its capacity");
        assert_eq!(len(512 << 10), 64 << 10, "the next one grows from a page again");
        assert_eq!(file.disk_bytes(), len(0) + len(512 << 10));
        drop(file);
        let file = open(&path, 1 << 16);
        assert_eq!(file.max_offset(), 70_000);
        assert_eq!(file.read(69_999, <[u8]>::to_vec).expect("read"), Some(entry(69_999).to_vec()));
    }

    #[test]
    fn a_closed_file_keeps_its_offsets_and_reopens_for_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = MapBudget::new(4);
        let files: Vec<EntryFile> = (0..6)
            .map(|i| EntryFile::open(dir.path().join(i.to_string()), 8, 4, budget.clone()).expect("open"))
            .collect();
        // Each file takes its first appends with pwrite, then maps itself.
        let rounds = u64::from(COLD_APPENDS) + 3;
        for round in 0..rounds {
            for (i, file) in files.iter().enumerate() {
                file.append(&entry(round * 10 + i as u64)).expect("append");
            }
            if round == 0 {
                assert_eq!(budget.mapped(), 0, "the first appends write without mapping");
            }
            assert!(budget.mapped() <= 4, "{} mapped", budget.mapped());
        }
        assert!(budget.evictions() > 0);
        for file in &files {
            file.flush().expect("flush a closed or open file");
        }
        for (i, file) in files.iter().enumerate() {
            let expected: Vec<_> = (0..rounds).map(|round| (round, entry(round * 10 + i as u64).to_vec())).collect();
            assert_eq!(entries(file, 0), expected);
        }
        drop(files);
        assert_eq!(budget.mapped(), 0, "dropped files give their maps back");
    }

    #[test]
    fn a_file_system_sync_covers_what_was_written_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let budget = MapBudget::unlimited();
        let file = EntryFile::open(dir.path().join("e"), 8, 4, budget.clone()).expect("open");
        file.append(&entry(0)).expect("append");
        assert!(file.is_dirty());
        budget.sync_file_system(dir.path()).expect("syncfs");
        file.append(&entry(1)).expect("written after the sync");
        file.flush().expect("flush");
        assert!(!file.is_dirty());
        file.append(&entry(2)).expect("append");
        budget.sync_file_system(dir.path()).expect("syncfs");
        assert!(file.is_dirty(), "a sync alone changes no file's state");
        file.flush().expect("flush without a system call");
        assert!(!file.is_dirty());
    }

    #[test]
    fn a_torn_growth_or_a_torn_entry_reopens_at_the_last_whole_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e");
        let file = open(&path, 1 << 10);
        for i in 0..5 {
            file.append(&entry(i)).expect("append");
        }
        drop(file);
        let first = path.join(file_name(0));
        // Half of a sixth entry written, and the file cut short of its page (a growth that
        // did not complete): the half entry counts as a damaged last entry, as before.
        let mut bytes = std::fs::read(&first).expect("read");
        bytes[40..44].copy_from_slice(&[9, 9, 9, 9]);
        std::fs::write(&first, &bytes[..100]).expect("write");
        let file = open(&path, 1 << 10);
        assert_eq!(file.max_offset(), 6);
        file.truncate(5).expect("drop the damaged entry");
        file.append(&entry(5)).expect("append after the cut");
        assert_eq!(entries(&file, 0).len(), 6);
        assert_eq!(file.read(5, <[u8]>::to_vec).expect("read"), Some(entry(5).to_vec()));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u16),
        Truncate(u16),
        Reopen,
        /// Other files take the budget: this one is closed.
        Crowd,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u16..600).prop_map(Op::Append),
            1 => any::<u16>().prop_map(Op::Truncate),
            1 => Just(Op::Reopen),
            1 => Just(Op::Crowd),
        ]
    }

    proptest! {
        /// A file grown across growth steps, file boundaries, truncations, closes by the
        /// budget and reopens reads back exactly what a vector holds.
        #[test]
        fn grows_closes_and_reopens_like_a_vector(ops in proptest::collection::vec(op(), 1..24)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("e");
            let budget = MapBudget::new(2);
            let open = || EntryFile::open(path.clone(), 8, 1000, budget.clone()).expect("open");
            let mut file = open();
            let mut model: Vec<[u8; 8]> = Vec::new();
            for op in ops {
                match op {
                    Op::Append(n) => {
                        for _ in 0..n {
                            let e = entry(model.len() as u64);
                            file.append(&e).expect("append");
                            model.push(e);
                        }
                    }
                    Op::Truncate(at) => {
                        let at = u64::from(at) % (model.len() as u64 + 1);
                        file.truncate(at).expect("truncate");
                        model.truncate(at as usize);
                    }
                    Op::Reopen => {
                        file.flush().expect("flush");
                        drop(file);
                        file = open();
                    }
                    Op::Crowd => {
                        let others: Vec<_> = (0..3)
                            .map(|i| EntryFile::open(dir.path().join(format!("o{i}")), 8, 4, budget.clone()).expect("open"))
                            .collect();
                        for other in &others {
                            other.append(&entry(0)).expect("append");
                            other.scan(0, 1, |_, _| {}).expect("a scan maps the files");
                        }
                        prop_assert!(!file.is_mapped() || model.is_empty());
                    }
                }
                prop_assert_eq!(file.max_offset(), model.len() as u64);
            }
            let read: Vec<Vec<u8>> = entries(&file, 0).into_iter().map(|(_, e)| e).collect();
            let expected: Vec<Vec<u8>> = model.iter().map(|e| e.to_vec()).collect();
            prop_assert_eq!(read, expected);
            if let Some(last) = model.last() {
                prop_assert_eq!(file.read(model.len() as u64 - 1, <[u8]>::to_vec).expect("read"), Some(last.to_vec()));
            }
        }
    }
}
