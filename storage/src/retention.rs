//! Retention: deleting expired sealed segments (early when the disk fills up),
//! trimming the derived files after them, and forgetting tombstones of deleted
//! topics whose records are all gone. The disk watch decides when writes are
//! refused (see the `disk` module); this thread frees the space.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::SystemTime;

use crate::commitlog::CommitLog;
use crate::config::StoreConfig;
use crate::disk::DiskWatch;
use crate::dispatch::Dispatcher;

/// The retention pass and what it remembers between passes.
pub(crate) struct Cleaner {
    config: StoreConfig,
    log: Arc<CommitLog>,
    dispatcher: Arc<Dispatcher>,
    disk: Arc<DiskWatch>,
    /// The CommitLog minimum the derived files were last trimmed to: with many
    /// queues, trimming each costs a read, so it runs only when the minimum moved.
    trimmed_to: AtomicU64,
}

impl Cleaner {
    /// A cleaner over the store's parts.
    pub(crate) fn new(
        config: &StoreConfig,
        log: &Arc<CommitLog>,
        dispatcher: &Arc<Dispatcher>,
        disk: &Arc<DiskWatch>,
    ) -> Self {
        Self {
            config: config.clone(),
            log: log.clone(),
            dispatcher: dispatcher.clone(),
            disk: disk.clone(),
            trimmed_to: AtomicU64::new(u64::MAX),
        }
    }

    /// Starts the retention thread: a pass every `clean_interval`, or sooner when the
    /// disk watch sees the forced-clean mark crossed.
    pub(crate) fn spawn(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let cleaner = self.clone();
        std::thread::Builder::new().name("weir-clean".into()).spawn(move || {
            loop {
                if let Err(err) = cleaner.clean() {
                    tracing::error!(%err, "retention failed");
                }
                if cleaner.disk.wait(cleaner.config.clean_interval) {
                    return;
                }
            }
        })
    }

    /// One retention pass: delete expired sealed segments (and, above the forced-clean
    /// mark, the oldest ones regardless of age), trim derived files, re-read the disk.
    pub(crate) fn clean(&self) -> std::io::Result<()> {
        let (config, dispatcher) = (&self.config, &self.dispatcher);
        let space = self.disk.refresh()?;
        let mut usage = space.usage;
        let total = space.total.max(1) as f64;
        let now = SystemTime::now();
        let dispatched = dispatcher.dispatched();
        let min = self.log.delete_oldest_while(|segment| {
            // Never delete what the dispatcher has not indexed yet.
            if segment.end() > dispatched {
                return false;
            }
            let age =
                std::fs::metadata(segment.path()).and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
            let expired = age.is_some_and(|age| age >= config.retention);
            let forced = usage > config.disk_clean_forcibly;
            if forced && !expired {
                tracing::warn!(usage, segment = %segment.path().display(), "disk nearly full: deleting a segment before its retention time");
            }
            if expired || forced {
                usage -= segment.size() as f64 / total;
            }
            expired || forced
        })?;
        if self.trimmed_to.load(Ordering::Acquire) != min {
            for queue in dispatcher.queues().values() {
                queue.delete_below(min)?;
                for hook in dispatcher.hooks() {
                    hook.retain(queue.topic(), queue.queue_id(), queue.min_offset())?;
                }
            }
            dispatcher.index().delete_below(min)?;
            dispatcher.tombstones().prune(min)?;
            self.trimmed_to.store(min, Ordering::Release);
        }
        self.disk.refresh()?;
        Ok(())
    }
}
