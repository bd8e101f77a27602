//! [`MapBudget`]: how many per-queue files (ConsumeQueue, bloom index) may be open and
//! mapped at once.
//!
//! Every mapped file costs a file descriptor and a kernel mapping. A broker with
//! 40 000 queues would need 80 000 of each, past the default `vm.max_map_count`
//! (65 530) and most descriptor limits. So an [`EntryFile`](crate::EntryFile) maps its
//! files only while it is used: each use stamps it with a tick, and once more files
//! are mapped than the budget allows, the least recently used are closed in a batch
//! (down to seven eighths of the budget, so the cost of choosing is spread over many
//! opens). A closed file keeps its offsets in memory and reopens on its next use.
//!
//! Closing never waits: a file busy with its writer or a reader is skipped.
//!
//! The budget also knows the last file-system sync: when many queue files are dirty,
//! one `syncfs` costs less than a flush per file, and every file whose last write
//! came before that sync started counts as flushed without another system call.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// Something that can give its mappings back (an [`EntryFile`](crate::EntryFile)).
pub(crate) trait Mapped: Send + Sync {
    /// When it was last used (a [`MapBudget::tick`]).
    fn last_used(&self) -> u64;
    /// Unmaps its files unless busy; returns how many it closed.
    fn try_close(&self) -> usize;
}

/// The shared limit on mapped per-queue files.
pub struct MapBudget {
    limit: usize,
    mapped: AtomicUsize,
    clock: AtomicU64,
    /// Everything holding mapped files, in no order.
    open: Mutex<Vec<Weak<dyn Mapped>>>,
    evictions: AtomicU64,
    /// Writes stamped before this tick are on disk (a file-system sync covered them).
    synced_before: AtomicU64,
}

impl std::fmt::Debug for MapBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapBudget").field("limit", &self.limit).field("mapped", &self.mapped()).finish()
    }
}

impl MapBudget {
    /// A budget of `limit` mapped files (at least 2).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(2),
            mapped: AtomicUsize::new(0),
            clock: AtomicU64::new(1),
            open: Mutex::new(Vec::new()),
            evictions: AtomicU64::new(0),
            synced_before: AtomicU64::new(0),
        })
    }

    /// The budget `config.max_mapped_queue_files` asks for; when 0, half of what the
    /// process may have: the smaller of `vm.max_map_count` and the descriptor limit
    /// (each mapped file takes one of each), the other half left to the CommitLog,
    /// connections, the allocator and libraries.
    pub fn for_config(config: &crate::StoreConfig) -> Arc<Self> {
        if config.max_mapped_queue_files > 0 {
            return Self::new(config.max_mapped_queue_files);
        }
        let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|text| text.trim().parse::<usize>().ok())
            .unwrap_or(65_530);
        // SAFETY: `rlimit` is plain old data and `getrlimit` only writes into it.
        let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: a valid resource id and out-pointer.
        let descriptors = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
        } else {
            1024
        };
        Self::new(max_maps.min(descriptors) / 2)
    }

    /// A budget no test or tool will reach.
    pub fn unlimited() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// The most files mapped at once, before closing the least recently used.
    pub fn limit(&self) -> usize {
        self.limit
    }
    /// Files mapped now.
    pub fn mapped(&self) -> usize {
        self.mapped.load(Ordering::Relaxed)
    }
    /// Files closed to stay within the budget so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// A new use stamp.
    pub(crate) fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::AcqRel)
    }

    /// Writes stamped before this tick are durable.
    pub(crate) fn synced_before(&self) -> u64 {
        self.synced_before.load(Ordering::Acquire)
    }

    /// Makes everything written so far on the file system holding `dir` durable with
    /// one `syncfs`, and remembers that it covers every write stamped before it began.
    pub(crate) fn sync_file_system(&self, dir: &std::path::Path) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mark = self.tick();
        crate::fault::sync(dir, crate::fault::Synced::Tree, || {
            let dir = std::fs::File::open(dir)?;
            // SAFETY: plain FFI call on an open file descriptor.
            if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })?;
        self.synced_before.fetch_max(mark, Ordering::AcqRel);
        Ok(())
    }

    /// `files` more are mapped by an owner that already counts as open.
    pub(crate) fn grew(&self, files: usize) {
        self.mapped.fetch_add(files, Ordering::Relaxed);
    }
    /// `files` were unmapped.
    pub(crate) fn released(&self, files: usize) {
        self.mapped.fetch_sub(files, Ordering::Relaxed);
    }

    /// `owner` mapped files (already counted with [`grew`](Self::grew)): registers it
    /// and, over the limit, closes the least recently used others. Call without holding
    /// any of `owner`'s locks.
    pub(crate) fn opened(&self, owner: Weak<dyn Mapped>) {
        let mut open = self.open.lock();
        open.push(owner.clone());
        if self.mapped() <= self.limit {
            return;
        }
        let target = self.limit - self.limit / 8;
        let mut candidates: Vec<(u64, usize)> = Vec::with_capacity(open.len());
        open.retain(|weak| weak.strong_count() > 0);
        for (i, weak) in open.iter().enumerate() {
            if let Some(mapped) = weak.upgrade()
                && !Weak::ptr_eq(weak, &owner)
            {
                candidates.push((mapped.last_used(), i));
            }
        }
        candidates.sort_unstable();
        let mut closed = Vec::new();
        for (_, i) in candidates {
            if self.mapped() <= target {
                break;
            }
            let Some(mapped) = open[i].upgrade() else { continue };
            let files = mapped.try_close();
            if files > 0 {
                self.mapped.fetch_sub(files, Ordering::Relaxed);
                self.evictions.fetch_add(files as u64, Ordering::Relaxed);
                closed.push(i);
            }
        }
        closed.sort_unstable();
        for i in closed.into_iter().rev() {
            open.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    struct Fake {
        used: AtomicU64,
        files: usize,
        open: AtomicBool,
        busy: bool,
    }

    impl Mapped for Fake {
        fn last_used(&self) -> u64 {
            self.used.load(Ordering::Relaxed)
        }
        fn try_close(&self) -> usize {
            if self.busy || !self.open.swap(false, Ordering::Relaxed) { 0 } else { self.files }
        }
    }

    fn fake(budget: &MapBudget, busy: bool) -> Arc<Fake> {
        let f = Arc::new(Fake { used: AtomicU64::new(budget.tick()), files: 2, open: AtomicBool::new(true), busy });
        let weak: Weak<dyn Mapped> = Arc::downgrade(&(f.clone() as Arc<dyn Mapped>));
        budget.grew(2);
        budget.opened(weak);
        f
    }

    #[test]
    fn closes_the_least_recently_used_and_skips_busy_ones() {
        let budget = MapBudget::new(16);
        let owners: Vec<_> = (0..8).map(|i| fake(&budget, i == 0)).collect();
        assert_eq!(budget.mapped(), 16);
        owners[1].used.store(budget.tick(), Ordering::Relaxed); // used again: now the newest
        let newcomer = fake(&budget, false);
        // 18 mapped: down to 14 (16 - 16/8), so two owners close; owner 0 is busy.
        assert_eq!(budget.mapped(), 14);
        assert!(owners[0].open.load(Ordering::Relaxed), "busy: skipped");
        assert!(!owners[2].open.load(Ordering::Relaxed) && !owners[3].open.load(Ordering::Relaxed));
        assert!(owners[1].open.load(Ordering::Relaxed) && newcomer.open.load(Ordering::Relaxed));
        assert!(owners[4..].iter().all(|o| o.open.load(Ordering::Relaxed)));
        assert_eq!(budget.evictions(), 4);
    }
}
