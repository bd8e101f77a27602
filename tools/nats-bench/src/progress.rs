//! Once-a-second progress line on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// Prints `label` progress every second until dropped.
pub struct Progress {
    ticker: JoinHandle<()>,
}

impl Progress {
    /// Starts reporting `done` (out of `total`) every second, measured from `start`.
    pub fn start(label: &'static str, done: Arc<AtomicU64>, total: u64, start: Instant) -> Self {
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            interval.tick().await; // the first tick fires at once
            let mut last = 0;
            loop {
                interval.tick().await;
                let now = done.load(Ordering::Relaxed);
                eprintln!(
                    "[{:>4.0}s] {label}: {now}/{total} ({} msgs/s in the last second)",
                    start.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
            }
        });
        Self { ticker }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}
