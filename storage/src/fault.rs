//! The seam between the store and the file system's durability operations.
//!
//! Every operation that allocates blocks ([`allocate`]), makes written bytes durable
//! ([`sync`]) or durably writes a metadata file ([`metadata`]) goes through this
//! module. Built normally, each only runs the operation: the seam costs nothing.
//!
//! Built with the `fault-injection` feature (tests only), it also lets a test, for the
//! files under one directory (so tests running side by side do not disturb each other):
//! - make an operation fail as a disk would ([`Fault`]): a sync with `EIO`, an
//!   allocation or a metadata write with `ENOSPC`;
//! - record what each sync made durable ([`Recording`]) and build the image a power
//!   loss could leave at any moment: every byte synced, and for each 512-byte sector
//!   written since, either its new or its old contents.

#[cfg(not(feature = "fault-injection"))]
use std::{io, path::Path};

/// What a successful [`sync`] made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Synced {
    /// Bytes `[from, to)` of the file (`msync` of a range).
    Range(usize, usize),
    /// The whole file (`fsync`, `fdatasync`, `msync` of all of it).
    File,
    /// Every file under the directory (`syncfs`).
    Tree,
}

/// Runs `op`, which allocates blocks for the file at `path`.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn allocate(_path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    op()
}

/// Runs `op`, which makes `what` of the file (or directory) at `path` durable.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn sync(_path: &Path, _what: Synced, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    op()
}

/// Runs `op`, which durably writes (replaces or appends to) the metadata file at `path`.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn metadata(_path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    op()
}

#[cfg(feature = "fault-injection")]
pub use injection::{Fault, Op, Recording};
#[cfg(feature = "fault-injection")]
pub(crate) use injection::{allocate, metadata, sync};

#[cfg(feature = "fault-injection")]
mod injection {
    use std::collections::HashMap;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use parking_lot::Mutex;

    use super::Synced;

    /// A file operation a [`Fault`] can fail.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Op {
        /// Allocating blocks: segment pre-allocation, a queue or index file growing.
        Allocate,
        /// Making written bytes durable: `msync`, `fsync`, `syncfs`.
        Sync,
        /// Durably writing a metadata file: the store's (checkpoint, manifests,
        /// tombstones) or the broker's (topics journal, group files).
        Metadata,
    }

    /// An injected failure: while it lives, every `op` on a file under its directory
    /// fails with its OS error (e.g. `libc::EIO`, `libc::ENOSPC`). Dropping it heals.
    #[derive(Debug)]
    pub struct Fault {
        rule: Arc<Rule>,
    }

    #[derive(Debug)]
    struct Rule {
        scope: PathBuf,
        op: Op,
        errno: i32,
        hits: AtomicU64,
    }

    impl Fault {
        /// Fails every `op` under `scope` with OS error `errno` from now on.
        pub fn inject(scope: &Path, op: Op, errno: i32) -> Self {
            let rule = Arc::new(Rule { scope: scope.to_owned(), op, errno, hits: AtomicU64::new(0) });
            RULES.lock().push(rule.clone());
            Self { rule }
        }

        /// How many operations it failed so far.
        pub fn hits(&self) -> u64 {
            self.rule.hits.load(Ordering::Acquire)
        }
    }

    impl Drop for Fault {
        fn drop(&mut self) {
            RULES.lock().retain(|rule| !Arc::ptr_eq(rule, &self.rule));
        }
    }

    /// Records what every sync under a directory made durable, so that a test can
    /// build the image a power loss at this moment could leave ([`crash_image`](Self::crash_image)).
    #[derive(Debug)]
    pub struct Recording {
        inner: Arc<Recorded>,
    }

    #[derive(Debug)]
    struct Recorded {
        scope: PathBuf,
        /// The durable contents of each file synced so far. Held while a sync runs,
        /// so an image never sees a sync half done.
        durable: Mutex<HashMap<PathBuf, Vec<u8>>>,
    }

    /// Sector size: what a disk writes atomically.
    const SECTOR: usize = 512;

    impl Recording {
        /// Starts recording syncs under `scope`. Start it before the store opens, so
        /// that every sync is seen.
        pub fn start(scope: &Path) -> Self {
            let inner = Arc::new(Recorded { scope: scope.to_owned(), durable: Mutex::new(HashMap::new()) });
            RECORDINGS.lock().push(inner.clone());
            Self { inner }
        }

        /// Writes to `into` the files a power loss now could leave: for every file under
        /// the directory, each 512-byte sector holds what the last sync made durable or,
        /// where it was written since, its current contents when `keep_unsynced()` says
        /// so (zeroes where nothing was ever synced). Metadata written through the seam
        /// is durable whole once written. Syncs wait until the image is written.
        pub fn crash_image(&self, into: &Path, mut keep_unsynced: impl FnMut() -> bool) -> io::Result<()> {
            let durable = self.inner.durable.lock();
            for file in files_under(&self.inner.scope)? {
                let Ok(current) = std::fs::read(&file) else { continue }; // deleted meanwhile
                let old = durable.get(&file).map_or(&[][..], Vec::as_slice);
                let mut image = current;
                for (i, sector) in image.chunks_mut(SECTOR).enumerate() {
                    let at = i * SECTOR;
                    let before: Vec<u8> = (at..at + sector.len()).map(|j| old.get(j).copied().unwrap_or(0)).collect();
                    if sector != before.as_slice() && !keep_unsynced() {
                        sector.copy_from_slice(&before);
                    }
                }
                let target = into.join(file.strip_prefix(&self.inner.scope).expect("under the scope"));
                std::fs::create_dir_all(target.parent().expect("a file"))?;
                std::fs::write(target, image)?;
            }
            Ok(())
        }
    }

    impl Recorded {
        /// Copies what a sync of `what` at `path` made durable.
        fn record(&self, path: &Path, what: Synced, durable: &mut HashMap<PathBuf, Vec<u8>>) -> io::Result<()> {
            use std::os::unix::fs::FileExt;
            let files = match what {
                Synced::Tree => files_under(path)?,
                Synced::File | Synced::Range(..) => vec![path.to_owned()],
            };
            for file in files {
                let handle = std::fs::File::open(&file)?;
                let len = usize::try_from(handle.metadata()?.len()).map_err(io::Error::other)?;
                let (from, to) = match what {
                    Synced::Range(from, to) => (from.min(len), to.min(len)),
                    Synced::File | Synced::Tree => (0, len),
                };
                let copy = durable.entry(file).or_default();
                if copy.len() < to {
                    copy.resize(to, 0);
                }
                handle.read_exact_at(&mut copy[from..to], from as u64)?;
            }
            Ok(())
        }
    }

    impl Drop for Recording {
        fn drop(&mut self) {
            RECORDINGS.lock().retain(|r| !Arc::ptr_eq(r, &self.inner));
        }
    }

    static RULES: Mutex<Vec<Arc<Rule>>> = Mutex::new(Vec::new());
    static RECORDINGS: Mutex<Vec<Arc<Recorded>>> = Mutex::new(Vec::new());

    /// The injected error for `op` on `path`, if a fault covers it.
    fn injected(path: &Path, op: Op) -> io::Result<()> {
        let rules = RULES.lock();
        match rules.iter().find(|rule| rule.op == op && path.starts_with(&rule.scope)) {
            Some(rule) => {
                rule.hits.fetch_add(1, Ordering::AcqRel);
                Err(io::Error::from_raw_os_error(rule.errno))
            }
            None => Ok(()),
        }
    }

    fn recording(path: &Path) -> Option<Arc<Recorded>> {
        RECORDINGS.lock().iter().find(|r| path.starts_with(&r.scope)).cloned()
    }

    /// Every regular file under `dir`, recursively.
    fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        let mut dirs = vec![dir.to_owned()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue }; // deleted meanwhile
            for entry in entries {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if kind.is_file() {
                    files.push(entry.path());
                }
            }
        }
        Ok(files)
    }

    pub(crate) fn allocate(path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        injected(path, Op::Allocate)?;
        op()
    }

    pub(crate) fn sync(path: &Path, what: Synced, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        injected(path, Op::Sync)?;
        let Some(recording) = recording(path) else { return op() };
        let mut durable = recording.durable.lock();
        op()?;
        recording.record(path, what, &mut durable)
    }

    pub(crate) fn metadata(path: &Path, op: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        injected(path, Op::Metadata)?;
        let Some(recording) = recording(path) else { return op() };
        let mut durable = recording.durable.lock();
        op()?;
        recording.record(path, Synced::File, &mut durable)
    }
}
