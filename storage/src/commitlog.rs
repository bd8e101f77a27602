//! The CommitLog: one append-only log of every topic's records, split into
//! fixed-size segment files named by their starting offset.
//!
//! One appender at a time (the `appender` mutex) assigns CommitLog offsets and
//! queue offsets and copies records into the active segment's mapping. The
//! next segment is created ahead of time by a background thread so that a
//! roll-over does not stall appends, and another populates the active segment's
//! pages ahead of the appender (the `warm` module). Readers find records through the shared
//! segment list and see only published bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::durable::sync_dir;
use crate::error::{AppendError, DecodeError, ReadError};
use crate::mapped_file::{FileWriter, Growth, MappedFile, list_files};
use crate::record::{self, Check, Layout, Message, Placement, RecordView, Slot};
use crate::warm::{WARM_AHEAD, WARM_LOW_WATER, Warmer};

/// A record read from the CommitLog: verified bytes shared with the mapping, and where
/// its fields lie (found when it was verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    bytes: Bytes,
    layout: Layout,
}

impl StoredRecord {
    /// The decoded view, rebuilt from the layout found when the record was read and verified.
    pub fn view(&self) -> RecordView<'_> {
        RecordView::with_layout(&self.bytes, &self.layout)
    }
    /// The encoded record.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// The body, sharing the mapping (no copy).
    pub fn body(&self) -> Bytes {
        self.bytes.slice(self.view().body_range())
    }
}

/// `bytes` as the record at `offset`, once its length, CRC and fields check out.
fn verified(bytes: Bytes, offset: u64) -> Result<StoredRecord, ReadError> {
    match RecordView::parse(&bytes) {
        Ok(view) if view.len() == bytes.len() && view.commitlog_offset() == offset => {
            let layout = view.layout();
            Ok(StoredRecord { bytes, layout })
        }
        Ok(_) => Err(ReadError::Corrupt { offset, source: DecodeError::BadLength(bytes.len()) }),
        Err(source) => Err(ReadError::Corrupt { offset, source }),
    }
}

/// Reads records one after another, as a pull page does: it takes one handle on a
/// segment's published bytes and slices each record from it, looking a segment up
/// only when a record lies outside the one it holds. A segment that retention removes
/// meanwhile stays readable through the handle.
pub struct CommitLogReader<'a> {
    log: &'a CommitLog,
    /// The segment read last: its starting offset and its published bytes.
    published: Option<(u64, Bytes)>,
}

impl CommitLogReader<'_> {
    /// Reads and verifies the record at `offset`, expected to be `size` bytes.
    pub fn read(&mut self, offset: u64, size: u32) -> Result<StoredRecord, ReadError> {
        let end = offset.checked_add(size.into()).ok_or(ReadError::OffsetOutOfRange(offset))?;
        let covered = |(start, bytes): &(u64, Bytes)| offset >= *start && end <= start + bytes.len() as u64;
        if !self.published.as_ref().is_some_and(covered) {
            let segment = self.log.segment_at(offset).ok_or(ReadError::OffsetOutOfRange(offset))?;
            let published = segment.bytes(0, segment.published()).expect("the published bytes are published");
            self.published = Some((segment.start(), published));
        }
        let (start, published) = self.published.as_ref().expect("just set");
        let local = (offset - start) as usize;
        let bytes = published.get(local..local + size as usize).ok_or(ReadError::OffsetOutOfRange(offset))?;
        verified(published.slice_ref(bytes), offset)
    }
}

/// What lies at a CommitLog position.
#[derive(Debug)]
pub enum Step {
    /// A valid record; the next one starts at `next`.
    Record {
        /// The record.
        record: StoredRecord,
        /// Offset of the following slot.
        next: u64,
    },
    /// Padding; continue at `next` (the next segment).
    Skip {
        /// Offset of the next segment.
        next: u64,
    },
    /// No further written data.
    End,
    /// Invalid bytes.
    Corrupt(DecodeError),
}

/// A record placed by the appender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Where the appender put it.
    pub placement: Placement,
    /// Encoded length.
    pub size: u32,
}

/// State owned by the single appender.
#[derive(Debug)]
struct Appender {
    writer: FileWriter,
    /// Next queue offset per topic and queue id.
    queue_offsets: HashMap<String, HashMap<u32, u64>>,
    /// Last store timestamp handed out; timestamps never go backwards.
    last_timestamp: i64,
    /// How far into the active segment warming has been asked for.
    warm_requested: usize,
}

/// The CommitLog of one store.
#[derive(Debug)]
pub struct CommitLog {
    dir: PathBuf,
    segment_size: u64,
    segments: RwLock<Vec<Arc<MappedFile>>>,
    appender: Mutex<Option<Appender>>,
    /// Global offset up to which records are published.
    committed: AtomicU64,
    /// Records appended since the log was opened.
    appended_records: AtomicU64,
    preallocator: Arc<Preallocator>,
    warmer: Arc<Warmer>,
    /// The preallocator's and the warmer's threads, joined on close.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Outcome of verifying the CommitLog on open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRecovery {
    /// Offset where verified data ends; new records go here.
    pub valid_end: u64,
    /// Records verified.
    pub records: u64,
    /// Bytes of data discarded after `valid_end`.
    pub truncated_bytes: u64,
}

impl CommitLog {
    /// Opens the CommitLog in `dir`, verifying records from `verify_from` and
    /// cutting off everything after the first invalid one.
    pub fn open(dir: &Path, segment_size: u64, verify_from: u64) -> std::io::Result<(Self, LogRecovery)> {
        std::fs::create_dir_all(dir)?;
        let mut writers = Vec::new();
        for (start, path) in list_files(dir)? {
            let contiguous = writers.last().is_none_or(|w: &FileWriter| w.file().end() == start);
            if start % segment_size != 0 || !contiguous {
                // A gap or a misplaced file: nothing after it can be trusted.
                tracing::error!(path = %path.display(), "CommitLog segment out of sequence; data from here on is dropped");
                break;
            }
            writers.push(MappedFile::open(&path, start, segment_size, Growth::Preallocated)?);
        }
        let recovery = Self::verify(&mut writers, verify_from)?;
        for stale in list_files(dir)?
            .into_iter()
            .filter(|(start, _)| *start >= recovery.valid_end && writers.iter().all(|w| w.file().start() != *start))
        {
            std::fs::remove_file(&stale.1)?;
        }
        let writer = match writers.pop() {
            Some(w) => w,
            None => {
                let writer = MappedFile::create(dir, 0, segment_size, Growth::Preallocated)?;
                sync_dir(dir)?;
                writer
            }
        };
        let mut segments: Vec<_> = writers.iter().map(|w| w.file().clone()).collect();
        segments.push(writer.file().clone());
        let committed = writer.file().start() + writer.pos() as u64;
        let preallocator = Arc::new(Preallocator::new(dir.to_owned(), segment_size));
        let warmer = Arc::new(Warmer::default());
        let threads = vec![preallocator.clone().spawn()?, warmer.clone().spawn()?];
        let log = Self {
            dir: dir.to_owned(),
            segment_size,
            segments: RwLock::new(segments),
            appender: Mutex::new(Some(Appender {
                writer,
                queue_offsets: HashMap::new(),
                last_timestamp: 0,
                warm_requested: 0,
            })),
            committed: AtomicU64::new(committed),
            appended_records: AtomicU64::new(0),
            preallocator,
            warmer,
            threads: Mutex::new(threads),
        };
        log.preallocator.request(log.active_end());
        log.keep_warm(log.appender.lock().as_mut().expect("just opened"));
        Ok((log, recovery))
    }

    /// Scans from `verify_from` (rounded down to its segment) to the first invalid
    /// slot, drops later segments and zeroes the tail of the one it stops in.
    fn verify(writers: &mut Vec<FileWriter>, verify_from: u64) -> std::io::Result<LogRecovery> {
        let mut report = LogRecovery::default();
        let Some(first) = writers.first() else { return Ok(report) };
        let first_start = first.file().start();
        let from = verify_from.clamp(first_start, writers.last().expect("non-empty").file().start());
        let mut index = writers.iter().rposition(|w| w.file().start() <= from).expect("clamped");
        for w in &mut writers[..index] {
            let size = w.file().size();
            w.truncate(size)?; // trusted: before the checkpoint's segment
        }
        loop {
            let has_next = index + 1 < writers.len();
            let w = &mut writers[index];
            let start = w.file().start();
            let mut pos = 0usize;
            let raw = w.raw_from(0);
            let sealed = loop {
                match record::read_slot(&raw[pos..], Check::Crc) {
                    Ok(Slot::Record(view)) if view.commitlog_offset() == start + pos as u64 => {
                        report.records += 1;
                        pos += view.len();
                    }
                    Ok(Slot::Blank) => break true,
                    Ok(Slot::End) if raw.len() - pos < record::MIN_HEADER_LEN => break true,
                    _ => break false,
                }
            };
            if sealed && has_next {
                let size = w.file().size();
                w.truncate(size)?;
                index += 1;
                continue;
            }
            if sealed {
                pos = raw.len();
            }
            report.truncated_bytes += w.truncate(pos)?;
            report.valid_end = start + pos as u64;
            for mut dropped in writers.drain(index + 1..) {
                report.truncated_bytes += dropped.data_len_from(0) as u64;
                std::fs::remove_file(dropped.file().path())?;
            }
            return Ok(report);
        }
    }

    /// Segment size.
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }
    /// Records appended since the log was opened.
    pub fn appended_records(&self) -> u64 {
        self.appended_records.load(Ordering::Acquire)
    }
    /// Offset one past the last published record.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }
    /// Offset of the oldest retained byte.
    pub fn min_offset(&self) -> u64 {
        self.segments.read().first().map_or(0, |s| s.start())
    }
    /// Bytes of all segment files.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.read().iter().map(|s| s.size() as u64).sum()
    }
    /// A snapshot of the segment list, oldest first.
    pub fn segments(&self) -> Vec<Arc<MappedFile>> {
        self.segments.read().clone()
    }

    fn active_end(&self) -> u64 {
        self.segments.read().last().map_or(0, |s| s.end())
    }

    /// Sets the next queue offset of every known queue (after recovery rebuilt the ConsumeQueues).
    pub fn set_queue_offsets(&self, offsets: impl IntoIterator<Item = (String, u32, u64)>) {
        let mut guard = self.appender.lock();
        let appender = guard.as_mut().expect("open");
        for (topic, queue_id, next) in offsets {
            appender.queue_offsets.entry(topic).or_default().insert(queue_id, next);
        }
    }

    /// Forgets the queue offsets of a deleted `topic` (its next message starts at queue
    /// offset 0) once `record(offset below which its records were written)` succeeds;
    /// no append runs in between. On an error nothing is forgotten.
    pub fn forget_topic<E>(&self, topic: &str, record: impl FnOnce(u64) -> Result<(), E>) -> Result<u64, E> {
        let mut guard = self.appender.lock();
        let dead_below = self.committed();
        record(dead_below)?;
        if let Some(appender) = guard.as_mut() {
            appender.queue_offsets.remove(topic);
        }
        Ok(dead_below)
    }

    /// Appends `messages` (with their pre-computed encoded lengths) as one
    /// contiguous run in one segment, and publishes them.
    pub fn append(&self, messages: &[(&Message, usize)], now_ms: i64) -> Result<Vec<Placed>, AppendError> {
        let total: usize = messages.iter().map(|(_, len)| len).sum();
        let mut guard = self.appender.lock();
        let appender = guard.as_mut().ok_or(AppendError::Closed)?;
        if appender.writer.remaining() < total {
            self.roll(appender)?;
        }
        let timestamp = now_ms.max(appender.last_timestamp);
        appender.last_timestamp = timestamp;
        let mut placed = Vec::with_capacity(messages.len());
        for &(msg, len) in messages {
            let queues = match appender.queue_offsets.get_mut(msg.topic.as_str()) {
                Some(queues) => queues,
                None => appender.queue_offsets.entry(msg.topic.clone()).or_default(),
            };
            let next = queues.entry(msg.queue_id).or_insert(0);
            let placement = Placement {
                queue_offset: *next,
                commitlog_offset: appender.writer.file().start() + appender.writer.pos() as u64,
                store_timestamp_ms: timestamp,
            };
            *next += 1;
            record::encode(appender.writer.reserve(len), msg, placement);
            appender.writer.advance(len);
            placed.push(Placed { placement, size: len as u32 });
        }
        appender.writer.publish();
        self.committed.store(appender.writer.file().start() + appender.writer.pos() as u64, Ordering::Release);
        self.appended_records.fetch_add(placed.len() as u64, Ordering::AcqRel);
        self.keep_warm(appender);
        Ok(placed)
    }

    /// Asks the warmer for the next window once fewer than [`WARM_LOW_WATER`] warmed
    /// bytes lie ahead of the write position: one request per few MiB appended.
    fn keep_warm(&self, appender: &mut Appender) {
        let (pos, size) = (appender.writer.pos(), appender.writer.file().size());
        if appender.warm_requested < size && pos + WARM_LOW_WATER > appender.warm_requested {
            appender.warm_requested = (pos + WARM_AHEAD).min(size);
            self.warmer.request(appender.writer.file(), pos, appender.warm_requested);
        }
    }

    /// Seals the active segment with a blank and switches to the next one.
    fn roll(&self, appender: &mut Appender) -> Result<(), AppendError> {
        let writer = &mut appender.writer;
        let start = writer.file().end();
        let next = self.preallocator.take(start).map_err(|source| AppendError::Segment {
            path: self.dir.join(crate::mapped_file::file_name(start)),
            source,
        })?;
        let rest = writer.remaining();
        if rest >= record::MIN_HEADER_LEN {
            record::encode_blank(writer.reserve(rest));
        }
        writer.advance(rest);
        writer.publish();
        self.segments.write().push(next.file().clone());
        *writer = next;
        // The preallocator warmed the new segment's first window.
        appender.warm_requested = WARM_AHEAD.min(writer.file().size());
        self.preallocator.request(start + self.segment_size);
        Ok(())
    }

    /// What lies at `offset`, checked as `check` says.
    pub fn step(&self, offset: u64, check: Check) -> Step {
        let Some(segment) = self.segment_at(offset) else { return Step::End };
        let bytes = segment.read_from((offset - segment.start()) as usize);
        let unpublished_tail = segment.published() < segment.size();
        match record::read_slot(bytes, check) {
            Ok(Slot::Record(view)) => {
                let local = (offset - segment.start()) as usize;
                let bytes = segment.bytes(local, view.len()).expect("published");
                let record = StoredRecord { bytes, layout: view.layout() };
                Step::Record { record, next: offset + view.len() as u64 }
            }
            Ok(Slot::Blank) => Step::Skip { next: segment.end() },
            Ok(Slot::End) if !unpublished_tail && segment.end() < self.committed() => {
                Step::Skip { next: segment.end() }
            }
            Ok(Slot::End) => Step::End,
            Err(err) => Step::Corrupt(err),
        }
    }

    /// Reads and verifies the record at `offset`, expected to be `size` bytes.
    pub fn read(&self, offset: u64, size: u32) -> Result<StoredRecord, ReadError> {
        self.reader().read(offset, size)
    }

    /// A reader for many records in a row (see [`CommitLogReader`]).
    pub fn reader(&self) -> CommitLogReader<'_> {
        CommitLogReader { log: self, published: None }
    }

    /// Reads the record at `offset` without knowing its size (lookup by message id).
    pub fn read_at(&self, offset: u64) -> Result<StoredRecord, ReadError> {
        match self.step(offset, Check::Crc) {
            Step::Record { record, .. } if record.view().commitlog_offset() == offset => Ok(record),
            Step::Corrupt(source) => Err(ReadError::Corrupt { offset, source }),
            _ => Err(ReadError::OffsetOutOfRange(offset)),
        }
    }

    fn segment_at(&self, offset: u64) -> Option<Arc<MappedFile>> {
        let segments = self.segments.read();
        let i = segments.partition_point(|s| s.start() <= offset).checked_sub(1)?;
        let segment = &segments[i];
        (offset < segment.end()).then(|| segment.clone())
    }

    /// Forces published bytes in `[from, to)` to disk.
    pub fn flush(&self, from: u64, to: u64) -> std::io::Result<()> {
        for segment in self.segments().iter().filter(|s| s.end() > from && s.start() < to) {
            let lo = from.saturating_sub(segment.start()) as usize;
            let hi = ((to - segment.start()) as usize).min(segment.published());
            segment.flush_range(lo, hi)?;
        }
        Ok(())
    }

    /// Deletes sealed segments, oldest first, while `expired(segment)` holds;
    /// never the active one. Returns the new minimum offset.
    pub fn delete_oldest_while(&self, mut expired: impl FnMut(&MappedFile) -> bool) -> std::io::Result<u64> {
        loop {
            let oldest = {
                let segments = self.segments.read();
                match segments.first() {
                    Some(first) if segments.len() > 1 && expired(first) => first.clone(),
                    _ => break,
                }
            };
            std::fs::remove_file(oldest.path())?;
            self.segments.write().retain(|s| s.start() != oldest.start());
            tracing::info!(segment = %oldest.path().display(), "deleted CommitLog segment");
        }
        Ok(self.min_offset())
    }

    /// Stops appending, the preallocator and the warmer; the segments stay readable.
    pub fn close(&self) {
        self.appender.lock().take();
        self.preallocator.shutdown();
        self.warmer.shutdown();
        for thread in std::mem::take(&mut *self.threads.lock()) {
            let _ = thread.join();
        }
    }
}

/// A CommitLog dropped without [`close`](CommitLog::close) (a store whose open failed
/// after the log opened) still stops its threads, which would otherwise keep segments mapped.
impl Drop for CommitLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Creates the next segment in the background.
#[derive(Debug)]
struct Preallocator {
    dir: PathBuf,
    size: u64,
    state: Mutex<PreallocState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
enum PreallocState {
    #[default]
    Idle,
    Requested(u64),
    Ready(u64, std::io::Result<FileWriter>),
    Shutdown,
}

impl Preallocator {
    fn new(dir: PathBuf, size: u64) -> Self {
        Self { dir, size, state: Mutex::new(PreallocState::Idle), changed: Condvar::new() }
    }

    /// Creates the segment at `start`, replacing a leftover file from an
    /// earlier run (recovery already removed every file holding data past the end),
    /// and warms its first window so the appender's first writes after a roll-over
    /// do not fault.
    fn create(&self, start: u64) -> std::io::Result<FileWriter> {
        let _ = std::fs::remove_file(self.dir.join(crate::mapped_file::file_name(start)));
        let writer = MappedFile::create(&self.dir, start, self.size, Growth::Preallocated)?;
        sync_dir(&self.dir)?;
        if let Err(error) = writer.file().populate(0, WARM_AHEAD) {
            tracing::debug!(%error, "cannot warm the new segment's first pages");
        }
        Ok(writer)
    }

    fn spawn(self: Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name("weir-prealloc".into()).spawn(move || {
            let mut state = self.state.lock();
            loop {
                match *state {
                    PreallocState::Shutdown => return,
                    PreallocState::Requested(start) => {
                        drop(state);
                        let created = self.create(start);
                        state = self.state.lock();
                        if matches!(*state, PreallocState::Requested(s) if s == start) {
                            *state = PreallocState::Ready(start, created);
                            self.changed.notify_all();
                        }
                    }
                    _ => self.changed.wait(&mut state),
                }
            }
        })
    }

    fn request(&self, start: u64) {
        let mut state = self.state.lock();
        if !matches!(*state, PreallocState::Shutdown) {
            *state = PreallocState::Requested(start);
            self.changed.notify_all();
        }
    }

    /// The segment starting at `start`: the one made in the background if it
    /// is ready or under way, else one created now.
    fn take(&self, start: u64) -> std::io::Result<FileWriter> {
        let mut state = self.state.lock();
        loop {
            match std::mem::take(&mut *state) {
                PreallocState::Ready(s, Ok(writer)) if s == start => return Ok(writer),
                PreallocState::Requested(s) if s == start => {
                    *state = PreallocState::Requested(s);
                    self.changed.wait(&mut state);
                }
                PreallocState::Shutdown => {
                    *state = PreallocState::Shutdown;
                    return Err(std::io::Error::other("store is closing"));
                }
                // Not requested, or the background attempt failed: try once more here.
                _ => return self.create(start),
            }
        }
    }

    fn shutdown(&self) {
        *self.state.lock() = PreallocState::Shutdown;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_an_unclosed_log_stops_its_threads() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = CommitLog::open(dir.path(), 1 << 20, 0).unwrap();
        let (preallocator, warmer) = (log.preallocator.clone(), log.warmer.clone());
        drop(log);
        assert_eq!(Arc::strong_count(&preallocator), 1, "the pre-allocator thread ended");
        assert_eq!(Arc::strong_count(&warmer), 1, "the warmer thread ended");
    }
}
