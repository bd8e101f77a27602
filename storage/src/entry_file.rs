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

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::mapped_file::{FileWriter, MappedFile, list_files};

/// Fixed-width entries in mapped files under one directory.
#[derive(Debug)]
pub struct EntryFile {
    dir: PathBuf,
    entry_len: usize,
    file_size: u64,
    files: RwLock<Vec<Arc<MappedFile>>>,
    writer: Mutex<Option<FileWriter>>,
    min_offset: AtomicU64,
    max_offset: AtomicU64,
    /// Byte position (global) up to which entries are flushed.
    flushed: AtomicU64,
}

impl EntryFile {
    /// Opens the entries stored in `dir` (created on the first append). The
    /// last file ends at its last non-zero entry.
    pub fn open(dir: PathBuf, entry_len: usize, entries_per_file: u64) -> std::io::Result<Self> {
        assert!(entry_len > 0 && entries_per_file > 0, "entries need a width and files a capacity");
        let file_size = entries_per_file * entry_len as u64;
        let listed = if dir.exists() { list_files(&dir)? } else { Vec::new() };
        let mut files = Vec::with_capacity(listed.len());
        let mut writer = None;
        for (i, (start, path)) in listed.iter().enumerate() {
            if start % file_size != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not aligned to the file size {file_size}", path.display()),
                ));
            }
            let mut w = MappedFile::open(path, *start, file_size)?;
            // Earlier files are full; the last one ends at its last non-zero entry.
            let used = if i + 1 < listed.len() {
                file_size as usize
            } else {
                w.data_len_from(0).div_ceil(entry_len) * entry_len
            };
            w.truncate(used)?;
            files.push(w.file().clone());
            writer = Some(w);
        }
        let min = files.first().map_or(0, |f| f.start() / entry_len as u64);
        let end = writer.as_ref().map_or(0, |w| w.file().start() + w.pos() as u64);
        Ok(Self {
            dir,
            entry_len,
            file_size,
            files: RwLock::new(files),
            writer: Mutex::new(writer),
            min_offset: AtomicU64::new(min),
            max_offset: AtomicU64::new(end / entry_len as u64),
            flushed: AtomicU64::new(end),
        })
    }

    /// Bytes per entry.
    pub fn entry_len(&self) -> usize {
        self.entry_len
    }
    /// First index that may still be read.
    pub fn min_offset(&self) -> u64 {
        self.min_offset.load(Ordering::Acquire)
    }
    /// One past the last entry.
    pub fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }

    /// Calls `f(index, entry)` for up to `max` entries from `from` on.
    pub fn scan(&self, from: u64, max: usize, mut f: impl FnMut(u64, &[u8])) {
        let len = self.entry_len as u64;
        let from = from.max(self.min_offset());
        let end = self.max_offset().min(from.saturating_add(max as u64));
        let files = self.files.read();
        let mut q = from;
        while q < end {
            let byte = q * len;
            let Some(file) = files.iter().rev().find(|f| f.start() <= byte) else { return };
            let local = (byte - file.start()) as usize;
            for chunk in file.read_from(local).chunks_exact(self.entry_len) {
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
    }

    /// Calls `f` with the entry at `index`, if it is written and retained.
    pub fn read<T>(&self, index: u64, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        if index < self.min_offset() {
            return None;
        }
        let mut f = Some(f);
        let mut out = None;
        self.scan(index, 1, |_, entry| out = f.take().map(|f| f(entry)));
        out
    }

    /// Appends `entry` at [`max_offset`](Self::max_offset) and publishes it.
    pub fn append(&self, entry: &[u8]) -> std::io::Result<()> {
        if entry.len() != self.entry_len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("entry of {} bytes in a file of {}-byte entries", entry.len(), self.entry_len),
            ));
        }
        let mut guard = self.writer.lock();
        let byte = self.max_offset() * self.entry_len as u64;
        if guard.as_ref().is_none_or(|w| w.remaining() < self.entry_len) {
            std::fs::create_dir_all(&self.dir)?;
            let start = byte - byte % self.file_size;
            let w = MappedFile::create(&self.dir, start, self.file_size)?;
            let mut files = self.files.write();
            if files.is_empty() {
                self.min_offset.store(start / self.entry_len as u64, Ordering::Release);
                self.flushed.store(start, Ordering::Release);
            }
            files.push(w.file().clone());
            *guard = Some(w);
        }
        let w = guard.as_mut().expect("writer ensured above");
        // Entries before the first file's start (a queue created mid-way) read as zero.
        let skip = (byte - (w.file().start() + w.pos() as u64)) as usize;
        w.reserve(skip + self.entry_len)[skip..].copy_from_slice(entry);
        w.advance(skip + self.entry_len);
        w.publish();
        self.max_offset.store(self.max_offset() + 1, Ordering::Release);
        Ok(())
    }

    /// Appends all-zero entries until `max_offset` reaches `to`.
    pub fn fill_to(&self, to: u64) -> std::io::Result<()> {
        let zero = vec![0; self.entry_len];
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
        let byte = index * self.entry_len as u64;
        let mut guard = self.writer.lock();
        let mut files = self.files.write();
        while files.len() > 1 && files.last().is_some_and(|f| f.start() >= byte) {
            let f = files.pop().expect("non-empty");
            std::fs::remove_file(f.path())?;
        }
        let last = files.last().cloned();
        drop(files);
        if let Some(last) = last {
            let mut w = MappedFile::open(last.path(), last.start(), self.file_size)?;
            w.truncate(byte.saturating_sub(last.start()).min(self.file_size) as usize)?;
            *self.files.write().last_mut().expect("non-empty") = w.file().clone();
            *guard = Some(w);
        }
        self.max_offset.store(index.max(self.min_offset()), Ordering::Release);
        self.flushed.fetch_min(byte, Ordering::AcqRel);
        Ok(())
    }

    /// Forces written entries to disk.
    pub fn flush(&self) -> std::io::Result<()> {
        let end = self.max_offset() * self.entry_len as u64;
        let from = self.flushed.load(Ordering::Acquire);
        if end <= from {
            return Ok(());
        }
        for file in self.files.read().iter().filter(|f| f.end() > from && f.start() < end) {
            let lo = from.saturating_sub(file.start()) as usize;
            let hi = (end - file.start()).min(file.size() as u64) as usize;
            file.flush_range(lo, hi.min(file.published()))?;
        }
        self.flushed.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }

    /// Retention: deletes leading files, never the last one, while `dead(last
    /// index, last entry)` says the file's last entry is no longer needed.
    /// Moves `min_offset` past deleted files.
    pub fn delete_leading_files(&self, mut dead: impl FnMut(u64, &[u8]) -> bool) -> std::io::Result<()> {
        loop {
            let files = self.files.read();
            if files.len() < 2 {
                return Ok(());
            }
            let next_start = files[1].start() / self.entry_len as u64;
            drop(files);
            if !self.read(next_start - 1, |entry| dead(next_start - 1, entry)).unwrap_or(false) {
                return Ok(());
            }
            let gone = self.files.write().remove(0);
            std::fs::remove_file(gone.path())?;
            self.min_offset.fetch_max(next_start, Ordering::AcqRel);
        }
    }

    /// Moves `min_offset` up to `index` (never down): entries below it are no longer served.
    pub fn advance_min_offset(&self, index: u64) {
        self.min_offset.fetch_max(index.min(self.max_offset()), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> [u8; 8] {
        (i + 1).to_le_bytes()
    }

    #[test]
    fn appends_across_files_truncates_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e");
        let file = EntryFile::open(path.clone(), 8, 4).expect("open");
        for i in 0..10 {
            file.append(&entry(i)).expect("append");
        }
        assert!(file.append(&[1; 3]).is_err(), "a wrong width is refused");
        assert_eq!(file.read(9, <[u8]>::to_vec), Some(entry(9).to_vec()));
        file.truncate(6).expect("truncate");
        file.flush().expect("flush");
        drop(file);
        let file = EntryFile::open(path, 8, 4).expect("reopen");
        assert_eq!((file.min_offset(), file.max_offset()), (0, 6));
        let mut seen = Vec::new();
        file.scan(2, 100, |i, e| seen.push((i, e.to_vec())));
        assert_eq!(seen, (2..6).map(|i| (i, entry(i).to_vec())).collect::<Vec<_>>());
    }

    #[test]
    fn leading_files_are_deleted_only_while_dead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = EntryFile::open(dir.path().join("e"), 8, 4).expect("open");
        file.fill_to(2).expect("fill");
        for i in 2..10 {
            file.append(&entry(i)).expect("append");
        }
        assert_eq!(file.read(0, <[u8]>::to_vec), Some(vec![0; 8]));
        file.delete_leading_files(|last, _| last < 7).expect("delete");
        assert_eq!(file.min_offset(), 4);
        assert_eq!(list_files(&dir.path().join("e")).expect("list").len(), 2);
        file.advance_min_offset(6);
        assert_eq!(file.read(5, <[u8]>::to_vec), None);
        assert_eq!(file.min_offset(), 6);
    }
}
