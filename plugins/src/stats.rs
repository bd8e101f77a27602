//! Call counters of a plugin: per subscription and per plugin.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Counters updated by every call; read with [`CallStats::snapshot`].
#[derive(Debug, Default)]
pub struct CallStats {
    calls: AtomicU64,
    errors: AtomicU64,
    total_nanos: AtomicU64,
    fuel: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StatsSnapshot {
    /// Calls made (successful or not; calls refused because the plugin is disabled are not counted).
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Total wall time of the calls, in nanoseconds.
    pub total_call_nanos: u64,
    /// Total fuel the calls consumed.
    pub fuel_used: u64,
}

impl StatsSnapshot {
    /// Mean wall time of a call (zero before the first).
    pub fn mean_call_time(&self) -> Duration {
        Duration::from_nanos(self.total_call_nanos.checked_div(self.calls).unwrap_or(0))
    }
}

impl CallStats {
    /// Records one call.
    pub fn record(&self, elapsed: Duration, fuel: u64, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(u64::from(failed), Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.fuel.fetch_add(fuel, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            total_call_nanos: self.total_nanos.load(Ordering::Relaxed),
            fuel_used: self.fuel.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_errors() {
        let stats = CallStats::default();
        assert_eq!(stats.snapshot().mean_call_time(), Duration::ZERO);
        stats.record(Duration::from_micros(1), 10, false);
        stats.record(Duration::from_micros(3), 30, true);
        let snapshot = stats.snapshot();
        assert_eq!((snapshot.calls, snapshot.errors, snapshot.fuel_used), (2, 1, 40));
        assert_eq!(snapshot.mean_call_time(), Duration::from_micros(2));
    }
}
