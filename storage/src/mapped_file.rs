//! One fixed-size, memory-mapped file with a single appending writer and
//! any number of concurrent readers.
//!
//! The writer fills the file from the front and *publishes* how far it got;
//! readers only see the published prefix. Bytes below the published position
//! are never written again (except by recovery, before anyone reads), so
//! readers can hold [`Bytes`] over the mapping without copying.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use memmap2::MmapRaw;

/// A mapped file shared by its writer and readers.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    /// Global offset of the file's first byte (its file name).
    start: u64,
    map: MmapRaw,
    /// Bytes `[0, published)` are written and immutable.
    published: AtomicUsize,
    file: File,
}

/// The unique write handle of a [`MappedFile`].
#[derive(Debug)]
pub struct FileWriter {
    file: Arc<MappedFile>,
    pos: usize,
}

/// File name for a file starting at global offset `start`: 20 zero-padded digits, as RocketMQ.
pub fn file_name(start: u64) -> String {
    format!("{start:020}")
}

/// Parses a file name made by [`file_name`].
pub fn parse_file_name(name: &str) -> Option<u64> {
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok()).flatten()
}

impl MappedFile {
    /// Creates `dir/<start>` of `size` bytes, allocating its blocks up front so
    /// that writes through the mapping cannot hit ENOSPC (which would be SIGBUS).
    pub fn create(dir: &Path, start: u64, size: u64) -> std::io::Result<FileWriter> {
        let path = dir.join(file_name(start));
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        if let Err(err) = allocate(&file, size) {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        sync_dir(dir)?;
        Self::map(path, start, file, 0)
    }

    /// Maps an existing file; the writer starts at `published` (found by recovery).
    pub fn open(path: &Path, start: u64, expected_size: u64) -> std::io::Result<FileWriter> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len < expected_size {
            // A file cut short (e.g. a crash during creation): grow it back; the gap reads as zeroes.
            allocate(&file, expected_size)?;
        } else if len > expected_size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is {len} bytes, expected {expected_size}", path.display()),
            ));
        }
        Self::map(path.to_owned(), start, file, 0)
    }

    fn map(path: PathBuf, start: u64, file: File, published: usize) -> std::io::Result<FileWriter> {
        let map = MmapRaw::map_raw(&file)?;
        let file = Arc::new(MappedFile { path, start, map, published: AtomicUsize::new(published), file });
        Ok(FileWriter { file, pos: published })
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Global offset of the first byte.
    pub fn start(&self) -> u64 {
        self.start
    }
    /// Capacity in bytes.
    pub fn size(&self) -> usize {
        self.map.len()
    }
    /// Global offset one past the last byte this file can hold.
    pub fn end(&self) -> u64 {
        self.start + self.map.len() as u64
    }
    /// How many bytes are published (readable).
    pub fn published(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// The published bytes from `pos` on.
    pub fn read_from(&self, pos: usize) -> &[u8] {
        let published = self.published();
        let pos = pos.min(published);
        // SAFETY: `[0, published)` lies inside the mapping and is never written
        // again while the file is shared: the writer only writes at or above
        // `published` (see `FileWriter`), and the Acquire load above orders
        // our reads after the writer's stores that preceded its Release.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), published - pos) }
    }

    /// A zero-copy handle on published bytes `[pos, pos + len)`, or `None` past the published end.
    pub fn bytes(self: &Arc<Self>, pos: usize, len: usize) -> Option<Bytes> {
        let end = pos.checked_add(len)?;
        (end <= self.published()).then(|| Bytes::from_owner(FileSlice { file: self.clone(), pos, len }))
    }

    /// End of the region from `from` that may hold data: the next hole as the
    /// file system reports it (ext4, xfs and tmpfs report pre-allocated blocks
    /// that were never written as holes), or the file's end where it cannot tell.
    fn data_end(&self, from: usize) -> usize {
        use std::os::fd::AsRawFd;
        let Ok(offset) = libc::off_t::try_from(from) else { return self.size() };
        // SAFETY: plain FFI call on the open file descriptor this struct owns.
        let hole = unsafe { libc::lseek(self.file.as_raw_fd(), offset, libc::SEEK_HOLE) };
        usize::try_from(hole).map_or(self.size(), |hole| hole.clamp(from, self.size()))
    }

    /// Brings bytes `[from, to)` into memory, mapped writable, so that writing them does
    /// not fault (see the `warm` module). Their contents do not change.
    pub fn populate(&self, from: usize, to: usize) -> std::io::Result<()> {
        let to = to.min(self.size());
        if to > from { self.map.advise_range(memmap2::Advice::PopulateWrite, from, to - from) } else { Ok(()) }
    }

    /// Forces published bytes `[from, to)` to disk.
    pub fn flush_range(&self, from: usize, to: usize) -> std::io::Result<()> {
        if to > from { self.map.flush_range(from, to - from) } else { Ok(()) }
    }
}

impl FileWriter {
    /// The shared file.
    pub fn file(&self) -> &Arc<MappedFile> {
        &self.file
    }
    /// Next write position within the file.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Bytes left for writing.
    pub fn remaining(&self) -> usize {
        self.file.size() - self.pos
    }

    /// Writable bytes `[pos, pos + len)`; panics if `len` exceeds [`remaining`](Self::remaining).
    pub fn reserve(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.remaining(), "reserve past the end of {}", self.file.path.display());
        // SAFETY: the range is inside the mapping (checked above) and at or
        // above `published`, so no reader looks at it; `FileWriter` is the
        // file's only writer and `&mut self` makes this borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.file.map.as_mut_ptr().add(self.pos), len) }
    }

    /// Moves the write position forward by `len` reserved-and-filled bytes.
    pub fn advance(&mut self, len: usize) {
        assert!(len <= self.remaining());
        self.pos += len;
    }

    /// Makes everything written so far visible to readers.
    pub fn publish(&mut self) {
        self.file.published.store(self.pos, Ordering::Release);
    }

    /// Recovery only, before the file is shared with readers: sets the write
    /// position and zeroes everything after it, discarding a torn tail.
    /// Returns how many bytes of data (through the last non-zero byte) were discarded.
    pub fn truncate(&mut self, pos: usize) -> std::io::Result<u64> {
        assert!(pos <= self.file.size());
        let data = self.data_len_from(pos);
        self.pos = pos;
        self.reserve(data).fill(0);
        self.file.flush_range(pos, pos + data)?;
        self.publish();
        Ok(data as u64)
    }

    /// Bytes from `from` through the last non-zero byte of the file.
    pub fn data_len_from(&mut self, from: usize) -> usize {
        let end = self.file.data_end(from);
        let region = &self.raw_from(from)[..end - from.min(end)];
        region.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
    }

    /// Recovery only: the raw bytes from `pos` to the end of the file, written or not.
    pub fn raw_from(&mut self, pos: usize) -> &[u8] {
        let saved = self.pos;
        self.pos = pos.min(self.file.size());
        let len = self.remaining();
        let bytes: &[u8] = self.reserve(len);
        let bytes = bytes as *const [u8];
        self.pos = saved;
        // SAFETY: the slice points into the mapping, which lives as long as
        // `self.file`; it is borrowed from `&mut self`, so no write can alias it.
        unsafe { &*bytes }
    }
}

/// Owner of a [`Bytes`] view into a mapped file; keeps the mapping alive.
struct FileSlice {
    file: Arc<MappedFile>,
    pos: usize,
    len: usize,
}

impl AsRef<[u8]> for FileSlice {
    fn as_ref(&self) -> &[u8] {
        &self.file.read_from(self.pos)[..self.len]
    }
}

/// Allocates the file's blocks (not a sparse file), falling back to `set_len`
/// on file systems without `fallocate`.
fn allocate(file: &File, size: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(size).map_err(|_| std::io::Error::other("file size overflows off_t"))?;
    // SAFETY: plain FFI call on a valid, open file descriptor.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(size),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// Makes a directory entry change (create, rename, delete) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Lists `dir`'s files named by [`file_name`], sorted by start offset.
pub fn list_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(start) = entry.file_name().to_str().and_then(parse_file_name) {
            files.push((start, entry.path()));
        }
    }
    files.sort_unstable();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_only_published_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = MappedFile::create(dir.path(), 4096, 4096).expect("create");
        assert_eq!(w.file().path().file_name().and_then(|n| n.to_str()), Some("00000000000000004096"));
        w.reserve(5).copy_from_slice(b"hello");
        w.advance(5);
        assert_eq!(w.file().read_from(0), b"");
        w.publish();
        assert_eq!(w.file().read_from(0), b"hello");
        assert_eq!(w.file().read_from(3), b"lo");
        assert_eq!(w.file().bytes(1, 3).as_deref(), Some(&b"ell"[..]));
        assert_eq!(w.file().bytes(1, 5), None);
    }

    #[test]
    fn bytes_outlive_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = MappedFile::create(dir.path(), 0, 4096).expect("create");
        w.reserve(3).copy_from_slice(b"abc");
        w.advance(3);
        w.publish();
        let b = w.file().bytes(0, 3).expect("published");
        drop(w);
        std::fs::remove_file(dir.path().join(file_name(0))).expect("unlink");
        assert_eq!(&b[..], b"abc");
    }

    #[test]
    fn truncate_zeroes_the_tail_and_reopen_sees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name(0));
        {
            let mut w = MappedFile::create(dir.path(), 0, 4096).expect("create");
            w.reserve(10).fill(7);
            w.advance(10);
            w.publish();
            w.truncate(4).expect("truncate");
            assert_eq!(w.file().read_from(0), &[7, 7, 7, 7]);
        }
        let mut w = MappedFile::open(&path, 0, 4096).expect("open");
        assert_eq!(&w.raw_from(0)[..12], &[7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn open_rejects_oversized_and_regrows_short_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name(0));
        std::fs::write(&path, [1u8; 100]).expect("write");
        let mut w = MappedFile::open(&path, 0, 4096).expect("short file is regrown");
        assert_eq!(w.file().size(), 4096);
        assert_eq!(w.raw_from(99)[..2], [1, 0]);
        drop(w);
        assert!(MappedFile::open(&path, 0, 1024).is_err());
    }

    #[test]
    fn lists_files_in_offset_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for start in [2048u64, 0, 1024] {
            MappedFile::create(dir.path(), start, 1024).expect("create");
        }
        std::fs::write(dir.path().join("checkpoint"), b"x").expect("write");
        let starts: Vec<u64> = list_files(dir.path()).expect("list").into_iter().map(|(s, _)| s).collect();
        assert_eq!(starts, [0, 1024, 2048]);
    }
}
