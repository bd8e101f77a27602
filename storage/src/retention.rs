//! Retention and the disk watch: deleting expired sealed segments (early when
//! the disk fills up), trimming the derived files after them, and refusing
//! writes above the disk high-water mark.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use parking_lot::{Condvar, Mutex};

use crate::commitlog::CommitLog;
use crate::config::StoreConfig;
use crate::dispatch::Dispatcher;

/// Disk-usage state shared by the cleaner and the append path.
#[derive(Debug, Default)]
pub(crate) struct DiskWatch {
    /// Usage fraction while writes are refused.
    refusing: Mutex<Option<f64>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl DiskWatch {
    /// The disk usage while writes are refused.
    pub(crate) fn refusing(&self) -> Option<f64> {
        *self.refusing.lock()
    }
    /// Stops the cleaner thread.
    pub(crate) fn stop(&self) {
        *self.stop.lock() = true;
        self.wake.notify_all();
    }
}

/// Starts the retention and disk-usage thread.
pub(crate) fn spawn_cleaner(
    config: &StoreConfig,
    log: &Arc<CommitLog>,
    dispatcher: &Arc<Dispatcher>,
    disk: &Arc<DiskWatch>,
) -> std::io::Result<JoinHandle<()>> {
    let (config, log, dispatcher, disk) = (config.clone(), log.clone(), dispatcher.clone(), disk.clone());
    std::thread::Builder::new().name("weir-clean".into()).spawn(move || {
        loop {
            if let Err(err) = clean(&config, &log, &dispatcher, &disk) {
                tracing::error!(%err, "retention failed");
            }
            let mut stop = disk.stop.lock();
            if !*stop {
                disk.wake.wait_for(&mut stop, config.clean_interval);
            }
            if *stop {
                return;
            }
        }
    })
}

/// Usable size and available bytes of the file system holding `dir`, as `df`
/// counts them: usable = used + available, so blocks reserved for root (or
/// otherwise unavailable) count neither as space nor as usage.
fn file_system_space(dir: &Path) -> std::io::Result<(f64, f64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `statvfs` is plain old data; zeroes are a valid initial value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let block = stat.f_frsize as f64;
    let used = stat.f_blocks.saturating_sub(stat.f_bfree) as f64 * block;
    let available = stat.f_bavail as f64 * block;
    Ok((used + available, available))
}

/// Fraction of the file system holding `dir` that is in use.
fn disk_usage(dir: &Path) -> std::io::Result<f64> {
    let (total, available) = file_system_space(dir)?;
    Ok(if total > 0.0 { 1.0 - available / total } else { 0.0 })
}

/// One retention pass: delete expired sealed segments (and, above the forced-clean
/// mark, the oldest ones regardless of age), trim derived files, and decide
/// whether writes must be refused.
pub(crate) fn clean(
    config: &StoreConfig,
    log: &CommitLog,
    dispatcher: &Dispatcher,
    disk: &DiskWatch,
) -> std::io::Result<()> {
    let mut usage = disk_usage(&config.data_dir)?;
    let total = file_system_space(&config.data_dir)?.0.max(1.0);
    let now = SystemTime::now();
    let dispatched = dispatcher.dispatched();
    let min = log.delete_oldest_while(|segment| {
        // Never delete what the dispatcher has not indexed yet.
        if segment.end() > dispatched {
            return false;
        }
        let age = std::fs::metadata(segment.path()).and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
        let expired = age.is_some_and(|age| age >= config.retention);
        let forced = usage >= config.disk_clean_forcibly;
        if forced && !expired {
            tracing::warn!(usage, segment = %segment.path().display(), "disk nearly full: deleting a segment before its retention time");
        }
        if expired || forced {
            usage -= segment.size() as f64 / total;
        }
        expired || forced
    })?;
    for queue in dispatcher.queues().all() {
        queue.delete_below(min)?;
        for hook in dispatcher.hooks() {
            hook.retain(queue.topic(), queue.queue_id(), queue.min_offset())?;
        }
    }
    dispatcher.index().delete_below(min)?;
    let usage = disk_usage(&config.data_dir)?;
    let mut refusing = disk.refusing.lock();
    match (*refusing, usage >= config.disk_high_water) {
        (None, true) => {
            tracing::error!(usage, limit = config.disk_high_water, "disk above the high-water mark: refusing writes")
        }
        (Some(_), false) => tracing::info!(usage, "disk usage back below the high-water mark: accepting writes"),
        _ => {}
    }
    *refusing = (usage >= config.disk_high_water).then_some(usage);
    Ok(())
}
