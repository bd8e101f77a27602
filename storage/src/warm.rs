//! File warming: brings the active segment's pages into memory ahead of the appender.
//!
//! The first write into a page of the mapping faults, and the fault makes the kernel
//! read ahead a whole window of the file (zero-filled, since the segment was
//! pre-allocated but never written). With `read_ahead_kb` at 8 MiB, one append in
//! several thousand stalled for about 14 ms while the kernel filled 8 MiB: that was the
//! p999 of acknowledged sends. As RocketMQ's `warmMapedFileEnable` (the seed, §7.2.3), a
//! background thread does this work first: it populates pages writable
//! (`MADV_POPULATE_WRITE`, Linux 5.14) up to [`WARM_AHEAD`] bytes past the write
//! position, in steps of [`WARM_STEP`], so the appender only copies bytes. On kernels
//! without it the warmer logs once and stops; appends then fault as before.

use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::mapped_file::MappedFile;

/// How far past the write position pages are kept populated.
pub(crate) const WARM_AHEAD: usize = 16 << 20;

/// The appender asks for more warming once fewer than this many warmed bytes lie ahead.
pub(crate) const WARM_LOW_WATER: usize = WARM_AHEAD / 2;

/// Bytes populated per system call, so a new request or shutdown is seen quickly.
const WARM_STEP: usize = 1 << 20;

#[derive(Debug, Default)]
struct WarmState {
    /// The segment being warmed.
    file: Option<Arc<MappedFile>>,
    /// Populated up to here (position in `file`).
    warmed: usize,
    /// Requested up to here.
    wanted: usize,
    shutdown: bool,
}

/// The warming thread's shared state.
#[derive(Debug, Default)]
pub(crate) struct Warmer {
    state: Mutex<WarmState>,
    changed: Condvar,
}

impl Warmer {
    /// Starts the `weir-warm` thread.
    pub(crate) fn spawn(self: Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name("weir-warm".into()).spawn(move || self.run())
    }

    /// Asks for `file`'s bytes `[from, to)` to be populated; a request for another file
    /// replaces the current one (the appender rolled over).
    pub(crate) fn request(&self, file: &Arc<MappedFile>, from: usize, to: usize) {
        let mut state = self.state.lock();
        if !state.file.as_ref().is_some_and(|current| Arc::ptr_eq(current, file)) {
            state.file = Some(file.clone());
            state.warmed = from;
            state.wanted = from;
        }
        state.warmed = state.warmed.max(from);
        state.wanted = state.wanted.max(to.min(file.size()));
        self.changed.notify_one();
    }

    /// Stops the thread after its current step.
    pub(crate) fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.changed.notify_one();
    }

    fn run(&self) {
        let mut state = self.state.lock();
        loop {
            if state.shutdown {
                return;
            }
            let Some(file) = state.file.clone().filter(|_| state.warmed < state.wanted) else {
                self.changed.wait(&mut state);
                continue;
            };
            let (from, to) = (state.warmed, state.wanted.min(state.warmed + WARM_STEP));
            drop(state);
            if let Err(error) = file.populate(from, to) {
                tracing::info!(%error, "cannot warm CommitLog pages ahead of appends; first writes to a page will fault");
                return;
            }
            state = self.state.lock();
            if state.file.as_ref().is_some_and(|current| Arc::ptr_eq(current, &file)) {
                state.warmed = state.warmed.max(to);
            }
        }
    }

    /// How far the current file is populated (tests).
    #[cfg(test)]
    fn warmed(&self) -> usize {
        self.state.lock().warmed
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::mapped_file::Growth;

    #[test]
    fn warms_the_requested_range_in_steps_and_follows_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let size = 3 * WARM_STEP + 4096;
        let first = MappedFile::create(dir.path(), 0, size as u64, Growth::Preallocated).unwrap();
        let second = MappedFile::create(dir.path(), size as u64, size as u64, Growth::Preallocated).unwrap();
        let warmer = Arc::new(Warmer::default());
        let thread = warmer.clone().spawn().unwrap();
        let wait_for = |warmed: usize| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while warmer.warmed() != warmed {
                assert!(Instant::now() < deadline, "warmed {} of {warmed}", warmer.warmed());
                std::thread::sleep(Duration::from_millis(1));
            }
        };

        warmer.request(first.file(), 100, usize::MAX);
        wait_for(size);
        warmer.request(second.file(), 4096, 2 * WARM_STEP);
        wait_for(2 * WARM_STEP);
        warmer.shutdown();
        thread.join().unwrap();

        // Populating leaves the bytes as they were: zeroes, not yet published.
        assert_eq!(first.file().published(), 0);
        let mut first = first;
        assert_eq!(first.data_len_from(0), 0);
    }
}
