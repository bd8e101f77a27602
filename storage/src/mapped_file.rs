//! One memory-mapped file of fixed capacity with a single appending writer and
//! any number of concurrent readers.
//!
//! The writer fills the file from the front and *publishes* how far it got;
//! readers only see the published prefix. Bytes below the published position
//! are never written again (except by recovery, before anyone reads), so
//! readers can hold [`Bytes`] over the mapping without copying.
//!
//! The mapping always spans the file's whole capacity, but only its *allocated*
//! prefix (the file's length, backed by real blocks from `fallocate`) is ever
//! touched. A [`Growth::Preallocated`] file (a CommitLog segment) is allocated
//! whole when created; a [`Growth::OnDemand`] file (ConsumeQueue, bloom index)
//! starts empty and the writer extends it in doubling steps, so a queue holding
//! one message costs one page. Either way a write through the mapping never
//! needs a new block, so a full disk is an error from `fallocate`, never SIGBUS.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use memmap2::MmapRaw;

use crate::fault::Synced;

/// How a file's blocks are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// The whole capacity when the file is created (CommitLog segments, written at speed).
    Preallocated,
    /// As the writer needs them, doubling from one page (per-queue files, mostly small).
    OnDemand,
}

/// Smallest allocation step of an on-demand file.
const PAGE: usize = 4096;

/// A mapped file shared by its writer and readers.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    /// Global offset of the file's first byte (its file name).
    start: u64,
    /// Spans the whole capacity; only `[0, allocated)` is backed by the file.
    map: MmapRaw,
    /// Bytes `[0, published)` are written and immutable.
    published: AtomicUsize,
    /// The file's length: bytes `[0, allocated)` have blocks and may be touched.
    allocated: AtomicUsize,
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
    /// Creates `dir/<start>` with a capacity of `size` bytes, allocated as `growth` says.
    /// The caller makes the new directory entry durable (see [`sync_dir`]).
    pub fn create(dir: &Path, start: u64, size: u64, growth: Growth) -> std::io::Result<FileWriter> {
        let path = dir.join(file_name(start));
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        if growth == Growth::Preallocated
            && let Err(err) = allocate(&file, &path, 0, size)
        {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(err);
        }
        Self::map(path, start, file, size)
    }

    /// Maps an existing file of capacity `size`; the writer starts at 0 (recovery or
    /// [`FileWriter::resume`] sets it). A preallocated file cut short (a crash during
    /// creation) is grown back, its gap reading as zeroes; an on-demand one may be shorter.
    pub fn open(path: &Path, start: u64, size: u64, growth: Growth) -> std::io::Result<FileWriter> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        if len > size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is {len} bytes, more than its capacity of {size}", path.display()),
            ));
        }
        if len < size && growth == Growth::Preallocated {
            allocate(&file, path, 0, size)?;
        }
        Self::map(path.to_owned(), start, file, size)
    }

    fn map(path: PathBuf, start: u64, file: File, size: u64) -> std::io::Result<FileWriter> {
        let size = usize::try_from(size).map_err(|_| std::io::Error::other("file capacity overflows usize"))?;
        let allocated = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        // Mapping past the end of the file is allowed; those pages are never touched
        // until the file has grown over them.
        let map = memmap2::MmapOptions::new().len(size).map_raw(&file)?;
        let file = Arc::new(MappedFile {
            path,
            start,
            map,
            published: AtomicUsize::new(0),
            allocated: AtomicUsize::new(allocated.min(size)),
            file,
        });
        Ok(FileWriter { file, pos: 0 })
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
    /// Bytes backed by the file (its length): what it costs on disk.
    pub fn allocated(&self) -> usize {
        self.allocated.load(Ordering::Acquire)
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
        data_end(&self.file, from, self.allocated())
    }

    /// Brings bytes `[from, to)` into memory, mapped writable, so that writing them does
    /// not fault (see the `warm` module). Their contents do not change.
    pub fn populate(&self, from: usize, to: usize) -> std::io::Result<()> {
        let to = to.min(self.allocated());
        if to > from { self.map.advise_range(memmap2::Advice::PopulateWrite, from, to - from) } else { Ok(()) }
    }

    /// Forces published bytes `[from, to)` to disk.
    pub fn flush_range(&self, from: usize, to: usize) -> std::io::Result<()> {
        if to <= from {
            return Ok(());
        }
        crate::fault::sync(&self.path, Synced::Range(from, to), || self.map.flush_range(from, to - from))
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
    /// Bytes left for writing: the capacity after the write position.
    pub fn remaining(&self) -> usize {
        self.file.size() - self.pos
    }

    /// Makes sure `len` bytes from the write position are allocated: an on-demand file
    /// grows to twice its length (at least a page, at most its capacity) or to what is
    /// needed. Fails with the file system's error (e.g. no space) and leaves the file as
    /// it was; panics if `len` exceeds [`remaining`](Self::remaining).
    pub fn allocate(&mut self, len: usize) -> std::io::Result<()> {
        assert!(len <= self.remaining(), "allocating past the end of {}", self.file.path.display());
        let (needed, allocated) = (self.pos + len, self.file.allocated());
        if needed <= allocated {
            return Ok(());
        }
        let target = growth_target(needed, allocated, self.file.size());
        allocate(&self.file.file, &self.file.path, allocated as u64, target as u64)?;
        self.file.allocated.store(target, Ordering::Release);
        Ok(())
    }

    /// Writable bytes `[pos, pos + len)`; panics unless they are [allocated](Self::allocate).
    pub fn reserve(&mut self, len: usize) -> &mut [u8] {
        assert!(
            self.pos + len <= self.file.allocated(),
            "reserve past the allocated end of {}",
            self.file.path.display()
        );
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

    /// Continues writing at `pos` of a file reopened with its bytes known to be good
    /// (everything before `pos` is published as it is; nothing is zeroed).
    pub fn resume(&mut self, pos: usize) -> std::io::Result<()> {
        if pos > self.file.allocated() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes, fewer than the {pos} expected",
                    self.file.path.display(),
                    self.file.allocated()
                ),
            ));
        }
        self.pos = pos;
        self.publish();
        Ok(())
    }

    /// Recovery only, before the file is shared with readers: sets the write
    /// position and zeroes everything after it, discarding a torn tail.
    /// Returns how many bytes of data (through the last non-zero byte) were discarded.
    pub fn truncate(&mut self, pos: usize) -> std::io::Result<u64> {
        assert!(pos <= self.file.allocated());
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

    /// Recovery only: the raw bytes from `pos` to the allocated end of the file, written or not.
    pub fn raw_from(&mut self, pos: usize) -> &[u8] {
        let saved = self.pos;
        self.pos = pos.min(self.file.allocated());
        let len = self.file.allocated() - self.pos;
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

/// The length an on-demand file of `capacity` bytes, `allocated` so far, grows to
/// when `needed` bytes must be allocated: twice its length, at least a page, whole
/// pages, never past its capacity.
pub(crate) fn growth_target(needed: usize, allocated: usize, capacity: usize) -> usize {
    needed.max(allocated * 2).max(PAGE).next_multiple_of(PAGE).min(capacity)
}

/// Allocates blocks for bytes `[from, to)` of the file, extending it to `to` (not a
/// sparse file), falling back to `set_len` on file systems without `fallocate`.
pub(crate) fn allocate(file: &File, path: &Path, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let off = |n: u64| libc::off_t::try_from(n).map_err(|_| std::io::Error::other("file size overflows off_t"));
    let (offset, len) = (off(from)?, off(to.saturating_sub(from))?);
    if len == 0 {
        return Ok(());
    }
    crate::fault::allocate(path, || {
        // SAFETY: plain FFI call on a valid, open file descriptor.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) } {
            0 => Ok(()),
            libc::EOPNOTSUPP | libc::EINVAL => file.set_len(to),
            errno => Err(std::io::Error::from_raw_os_error(errno)),
        }
    })
}

/// End of the region of `file` from `from` that may hold data: the next hole as the
/// file system reports it (ext4, xfs and tmpfs report pre-allocated blocks that were
/// never written as holes), or `len` (the file's length) where it cannot tell.
pub(crate) fn data_end(file: &File, from: usize, len: usize) -> usize {
    use std::os::fd::AsRawFd;
    let Ok(offset) = libc::off_t::try_from(from) else { return len };
    // SAFETY: plain FFI call on an open file descriptor.
    let hole = unsafe { libc::lseek(file.as_raw_fd(), offset, libc::SEEK_HOLE) };
    usize::try_from(hole).map_or(len, |hole| hole.clamp(from.min(len), len))
}

/// End of the last data region of `file` (of length `len`): where written data ends,
/// whatever unwritten or pre-allocated ranges lie before it. `len` where the file
/// system cannot tell.
pub(crate) fn last_data_end(file: &File, len: u64) -> u64 {
    use std::os::fd::AsRawFd;
    let Ok(len_off) = libc::off_t::try_from(len) else { return len };
    let (mut pos, mut end) = (0, 0);
    while pos < len_off {
        // SAFETY: plain FFI calls on an open file descriptor.
        let data = unsafe { libc::lseek(file.as_raw_fd(), pos, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data after `pos`; anything else: the file system cannot tell.
            let no_more = std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
            return if no_more { end } else { len };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(file.as_raw_fd(), data, libc::SEEK_HOLE) };
        if hole < data {
            return len;
        }
        (pos, end) = (hole, hole as u64);
    }
    end.min(len)
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
        let mut w = MappedFile::create(dir.path(), 4096, 4096, Growth::Preallocated).expect("create");
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
        let mut w = MappedFile::create(dir.path(), 0, 4096, Growth::Preallocated).expect("create");
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
            let mut w = MappedFile::create(dir.path(), 0, 4096, Growth::Preallocated).expect("create");
            w.reserve(10).fill(7);
            w.advance(10);
            w.publish();
            w.truncate(4).expect("truncate");
            assert_eq!(w.file().read_from(0), &[7, 7, 7, 7]);
        }
        let mut w = MappedFile::open(&path, 0, 4096, Growth::Preallocated).expect("open");
        assert_eq!(&w.raw_from(0)[..12], &[7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn open_rejects_oversized_and_regrows_short_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file_name(0));
        std::fs::write(&path, [1u8; 100]).expect("write");
        let mut w = MappedFile::open(&path, 0, 4096, Growth::Preallocated).expect("short file is regrown");
        assert_eq!(w.file().size(), 4096);
        assert_eq!(w.raw_from(99)[..2], [1, 0]);
        drop(w);
        assert!(MappedFile::open(&path, 0, 1024, Growth::Preallocated).is_err());
    }

    #[test]
    fn an_on_demand_file_grows_in_doubling_pages_up_to_its_capacity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = MappedFile::create(dir.path(), 0, 40_000, Growth::OnDemand).expect("create");
        let len = || std::fs::metadata(dir.path().join(file_name(0))).expect("stat").len();
        assert_eq!((w.file().allocated(), len()), (0, 0), "created empty");
        w.allocate(10).expect("grow");
        assert_eq!(len(), 4096);
        w.reserve(10).fill(1);
        w.advance(10);
        w.allocate(5000).expect("grow");
        assert_eq!(len(), 8192, "doubled");
        w.advance(0);
        w.allocate(30_000).expect("grow");
        assert_eq!(len(), 32_768, "what is needed, in pages, when more than double");
        w.allocate(39_990).expect("grow");
        assert_eq!(len(), 40_000, "never past the capacity");
        drop(w);
        let mut w = MappedFile::open(&dir.path().join(file_name(0)), 0, 40_000, Growth::OnDemand).expect("open");
        assert_eq!(w.file().allocated(), 40_000);
        assert_eq!(w.data_len_from(0), 10);
    }

    #[test]
    fn lists_files_in_offset_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for start in [2048u64, 0, 1024] {
            MappedFile::create(dir.path(), start, 1024, Growth::Preallocated).expect("create");
        }
        std::fs::write(dir.path().join("checkpoint"), b"x").expect("write");
        let starts: Vec<u64> = list_files(dir.path()).expect("list").into_iter().map(|(s, _)| s).collect();
        assert_eq!(starts, [0, 1024, 2048]);
    }
}
