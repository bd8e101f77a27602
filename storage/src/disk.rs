//! The disk watch and the store's state.
//!
//! One disk budget covers every file the store writes: the usage of the file system
//! holding the data directory, as `df` counts it, so the CommitLog, ConsumeQueues,
//! bloom index, key index and metadata all count. Writes are refused when usage
//! reaches the high-water mark **or** free space would fall below a reserve plus
//! what the messages not yet dispatched may still need (each counted with
//! [`DERIVED_BYTES_PER_MESSAGE`]). That is what lets every acknowledged message
//! become consumable: the dispatcher always has room to grow the queue and index
//! files of the messages already accepted.
//! The append path re-reads the file system every [`SPACE_CHECK_INTERVAL`], and
//! sooner once the messages appended since the last reading could have used an
//! eighth of the reserve (each counted with [`DERIVED_BYTES_PER_MESSAGE`] for the
//! queue and index pages it may add), so the refusal starts (and ends, once space
//! returns) in time, not at the next retention pass.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::config::StoreConfig;

/// How often the append path re-reads the file system's free space.
pub const SPACE_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Derived bytes a message may cost at most, for deciding when to re-read the free
/// space: the first message of a queue makes its ConsumeQueue and bloom-index files,
/// a page each.
pub const DERIVED_BYTES_PER_MESSAGE: u64 = 8 << 10;

/// What a store can do right now (`weir status` shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreState {
    /// Reads and writes are served.
    Ok,
    /// Reads are served; writes are refused until the cause clears, which the store
    /// notices by itself (space freed, a queue file that can grow again).
    ReadOnly {
        /// Why, for operators.
        reason: String,
    },
    /// A flush failed (fail-stop): reads are served, writes need a reopen.
    Failed {
        /// Why, for operators.
        reason: String,
    },
}

impl StoreState {
    /// `ok`, `read_only` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            StoreState::Ok => "ok",
            StoreState::ReadOnly { .. } => "read_only",
            StoreState::Failed { .. } => "failed",
        }
    }
    /// Why the store is not `ok`.
    pub fn reason(&self) -> Option<&str> {
        match self {
            StoreState::Ok => None,
            StoreState::ReadOnly { reason } | StoreState::Failed { reason } => Some(reason),
        }
    }
}

/// The file system's space, as last read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Space {
    /// Fraction in use (0 to 1).
    pub usage: f64,
    /// Bytes available to the store.
    pub free: u64,
    /// Bytes of the file system usable by the store (used + available).
    pub total: u64,
}

/// Disk-usage state shared by the cleaner and the append path.
#[derive(Debug)]
pub(crate) struct DiskWatch {
    dir: PathBuf,
    high_water: f64,
    clean_forcibly: f64,
    reserve: u64,
    last_check_ms: AtomicI64,
    /// Bytes appended (with their possible derived bytes) since the last reading.
    since_check: AtomicU64,
    space: Mutex<Space>,
    refusing: AtomicBool,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl DiskWatch {
    /// A watch over the file system holding `config.data_dir`, read once now.
    pub(crate) fn new(config: &StoreConfig) -> std::io::Result<Self> {
        let watch = Self {
            dir: config.data_dir.clone(),
            high_water: config.disk_high_water,
            clean_forcibly: config.disk_clean_forcibly,
            reserve: config.disk_reserve_bytes,
            last_check_ms: AtomicI64::new(0),
            since_check: AtomicU64::new(0),
            space: Mutex::new(Space::default()),
            refusing: AtomicBool::new(false),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        };
        watch.refresh()?;
        Ok(watch)
    }

    /// Reads the file system now and, above the forced-clean mark, wakes the cleaner
    /// for an early pass.
    pub(crate) fn refresh(&self) -> std::io::Result<Space> {
        self.last_check_ms.store(crate::now_ms(), Ordering::Relaxed);
        self.since_check.store(0, Ordering::Relaxed);
        let space = file_system_space(&self.dir)?;
        *self.space.lock() = space;
        if space.usage > self.clean_forcibly {
            self.wake.notify_all();
        }
        Ok(space)
    }

    /// The append path's check before appending `messages` of `bytes` in all, with
    /// `pending` messages not yet dispatched: re-reads the file system when due (see
    /// the module doc); returns the space while writes are refused.
    pub(crate) fn refusal(&self, messages: usize, bytes: u64, pending: u64) -> Option<Space> {
        let weight = bytes + messages as u64 * DERIVED_BYTES_PER_MESSAGE;
        let used = self.since_check.fetch_add(weight, Ordering::Relaxed) + weight;
        let now = crate::now_ms();
        let last = self.last_check_ms.load(Ordering::Relaxed);
        let due = now - last >= SPACE_CHECK_INTERVAL.as_millis() as i64 || used >= self.reserve / 8;
        if due
            && self.last_check_ms.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            && let Err(err) = self.refresh()
        {
            tracing::warn!(%err, "cannot read the file system's free space");
        }
        let space = *self.space.lock();
        let free = space.free.saturating_sub(self.since_check.load(Ordering::Relaxed));
        let needed = self.reserve.saturating_add(pending.saturating_mul(DERIVED_BYTES_PER_MESSAGE));
        let refuse = space.usage >= self.high_water || free < needed;
        match (self.refusing.swap(refuse, Ordering::AcqRel), refuse) {
            (false, true) => tracing::error!(
                usage = space.usage,
                free_bytes = space.free,
                high_water = self.high_water,
                reserve_bytes = self.reserve,
                pending_messages = pending,
                "disk nearly full: refusing writes"
            ),
            (true, false) => {
                tracing::info!(
                    usage = space.usage,
                    free_bytes = space.free,
                    "disk space available again: accepting writes"
                )
            }
            _ => {}
        }
        refuse.then_some(space)
    }

    /// The space as last read.
    pub(crate) fn space(&self) -> Space {
        *self.space.lock()
    }

    /// The configured high-water mark and reserve.
    pub(crate) fn limits(&self) -> (f64, u64) {
        (self.high_water, self.reserve)
    }

    /// Waits up to `timeout` for a stop or an early-clean request; true once stopped.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let mut stop = self.stop.lock();
        if !*stop {
            self.wake.wait_for(&mut stop, timeout);
        }
        *stop
    }

    /// Stops the cleaner thread.
    pub(crate) fn stop(&self) {
        *self.stop.lock() = true;
        self.wake.notify_all();
    }
}

/// The usage and free bytes of the file system holding `dir`, as `df` counts them:
/// usable = used + available, so blocks reserved for root (or otherwise unavailable)
/// count neither as space nor as usage.
fn file_system_space(dir: &Path) -> std::io::Result<Space> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `statvfs` is plain old data; zeroes are a valid initial value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = stat.f_frsize;
    let used = stat.f_blocks.saturating_sub(stat.f_bfree) * block;
    let free = stat.f_bavail * block;
    let total = used + free;
    Ok(Space { usage: if total > 0 { used as f64 / total as f64 } else { 0.0 }, free, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_below_the_reserve_and_accepts_again_when_it_is_met() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = StoreConfig::new(dir.path());
        config.disk_reserve_bytes = u64::MAX;
        let watch = DiskWatch::new(&config).expect("watch");
        assert!(watch.refusal(1, 100, 0).is_some(), "no file system has that much free");
        let mut config = StoreConfig::new(dir.path());
        config.disk_reserve_bytes = 0;
        config.disk_high_water = 1.0;
        let watch = DiskWatch::new(&config).expect("watch");
        assert!(watch.refusal(1, 100, 0).is_none());
        assert!(watch.refusal(1, 100, u64::MAX).is_some(), "undispatched messages count against the space");
        assert!(watch.space().free > 0);
    }
}
