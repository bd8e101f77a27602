//! [`TimerConfig`]: the timer store's settings, checked into a [`Geometry`].

use crate::record;

/// Most wheel slots: 16 Mi slots take 512 MiB of memory and disk.
pub const MAX_SLOTS: u64 = 1 << 24;
/// Records per log segment must be a multiple of this (segments are whole pages).
pub const SEGMENT_ALIGN: u64 = 4096 / record::LEN as u64;
/// Most records per log segment (4 GiB segments).
pub const MAX_SEGMENT_RECORDS: u64 = 1 << 26;

/// Settings of a timer store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerConfig {
    /// Length of one wheel tick, in ms: timers due within one tick are delivered
    /// together, in due order, once the clock passes each one's due time.
    pub precision_ms: u64,
    /// The longest delay [`add`](crate::TimerStore::add) accepts, in ms.
    pub max_delay_ms: u64,
    /// Wheel slots; `None` derives twice the ticks of `max_delay_ms` (at least 4), so a
    /// timer is filed once, not rolled, while delivery keeps up with the clock.
    pub wheel_slots: Option<u64>,
    /// Records per timer-log segment (64 bytes each); a multiple of [`SEGMENT_ALIGN`].
    pub segment_records: u64,
}

impl Default for TimerConfig {
    /// 1 s ticks, delays up to 3 days (RocketMQ 5's defaults), 64 MiB segments.
    fn default() -> Self {
        Self { precision_ms: 1000, max_delay_ms: 3 * 24 * 3600 * 1000, wheel_slots: None, segment_records: 1 << 20 }
    }
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `precision_ms` is 0.
    #[error("precision_ms must be at least 1")]
    ZeroPrecision,
    /// `max_delay_ms` is 0.
    #[error("max_delay_ms must be at least 1")]
    ZeroMaxDelay,
    /// The wheel would have fewer than 4 or more than [`MAX_SLOTS`] slots.
    #[error("the wheel needs between 4 and {MAX_SLOTS} slots, not {0} (raise precision_ms or lower max_delay_ms)")]
    Slots(u64),
    /// `segment_records` is 0, not a multiple of [`SEGMENT_ALIGN`] or above [`MAX_SEGMENT_RECORDS`].
    #[error("segment_records must be a positive multiple of {SEGMENT_ALIGN} up to {MAX_SEGMENT_RECORDS}, not {0}")]
    SegmentRecords(u64),
}

/// A checked configuration (made only by [`TimerConfig::geometry`], so its values
/// always hold the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub(crate) precision_ms: u64,
    pub(crate) max_delay_ms: u64,
    pub(crate) slots: u64,
    pub(crate) segment_records: u64,
}

impl TimerConfig {
    /// Checks the settings and derives the wheel's size.
    pub fn geometry(&self) -> Result<Geometry, ConfigError> {
        if self.precision_ms == 0 {
            return Err(ConfigError::ZeroPrecision);
        }
        if self.max_delay_ms == 0 {
            return Err(ConfigError::ZeroMaxDelay);
        }
        let slots = match self.wheel_slots {
            Some(slots) => slots,
            None => self.max_delay_ms.div_ceil(self.precision_ms).saturating_mul(2).max(4),
        };
        if !(4..=MAX_SLOTS).contains(&slots) {
            return Err(ConfigError::Slots(slots));
        }
        let records = self.segment_records;
        if records == 0 || !records.is_multiple_of(SEGMENT_ALIGN) || records > MAX_SEGMENT_RECORDS {
            return Err(ConfigError::SegmentRecords(records));
        }
        Ok(Geometry {
            precision_ms: self.precision_ms,
            max_delay_ms: self.max_delay_ms,
            slots,
            segment_records: records,
        })
    }
}

impl Geometry {
    /// Tick length in ms (at least 1).
    pub fn precision_ms(&self) -> u64 {
        self.precision_ms
    }

    /// Longest accepted delay in ms.
    pub fn max_delay_ms(&self) -> u64 {
        self.max_delay_ms
    }

    /// Wheel slots (4 ..= [`MAX_SLOTS`]).
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Records per timer-log segment.
    pub fn segment_records(&self) -> u64 {
        self.segment_records
    }

    /// The tick a time falls in.
    pub fn tick(&self, ms: u64) -> u64 {
        ms / self.precision_ms
    }

    /// When a tick starts (never overflows: a tick comes from a `u64` time).
    pub fn tick_ms(&self, tick: u64) -> u64 {
        tick.saturating_mul(self.precision_ms)
    }

    /// The wheel slot a tick is filed in.
    pub fn slot(&self, tick: u64) -> usize {
        // `slots` is at most MAX_SLOTS, so the remainder fits any usize of 32 bits or more.
        (tick % self.slots) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(precision_ms: u64, max_delay_ms: u64, wheel_slots: Option<u64>) -> TimerConfig {
        TimerConfig { precision_ms, max_delay_ms, wheel_slots, segment_records: 1024 }
    }

    #[test]
    fn checks_and_derives() {
        let geometry = TimerConfig::default().geometry().expect("default is valid");
        assert_eq!(geometry.slots, 2 * 3 * 24 * 3600);
        assert_eq!(config(1000, 1, None).geometry().map(|g| g.slots), Ok(4), "at least 4 slots");
        assert_eq!(config(1000, 10_500, None).geometry().map(|g| g.slots), Ok(22), "ticks round up");
        assert_eq!(config(0, 1, None).geometry(), Err(ConfigError::ZeroPrecision));
        assert_eq!(config(1, 0, None).geometry(), Err(ConfigError::ZeroMaxDelay));
        assert_eq!(config(1, u64::MAX, None).geometry(), Err(ConfigError::Slots(u64::MAX)));
        assert_eq!(config(1, 1, Some(3)).geometry(), Err(ConfigError::Slots(3)));
        assert_eq!(config(1, 1, Some(MAX_SLOTS + 1)).geometry(), Err(ConfigError::Slots(MAX_SLOTS + 1)));
        for records in [0, 100, MAX_SEGMENT_RECORDS + SEGMENT_ALIGN] {
            let bad = TimerConfig { segment_records: records, ..config(1, 1, None) };
            assert_eq!(bad.geometry(), Err(ConfigError::SegmentRecords(records)));
        }
    }

    #[test]
    fn ticks_and_slots_never_overflow() {
        let g = config(7, 1000, None).geometry().expect("valid");
        assert_eq!(g.tick(u64::MAX), u64::MAX / 7);
        assert_eq!(g.tick_ms(g.tick(u64::MAX)), u64::MAX / 7 * 7);
        assert_eq!(g.tick_ms(u64::MAX), u64::MAX, "saturates");
        assert!(g.slot(u64::MAX) < g.slots as usize);
    }
}
