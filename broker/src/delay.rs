//! Delay levels: the schedule a delayed send's level and a failed delivery's retry
//! follow (RocketMQ's `messageDelayLevel`), set with the `delay_levels` key.
//!
//! Written as durations separated by spaces, each a number and a unit (`ms`, `s`, `m`,
//! `h`, `d`): the default is RocketMQ's
//! `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`. Level 1 is the first
//! entry; a level beyond the list uses the last one. A failed delivery's first retry
//! uses level 3, each later one the next level (so 10 s, 30 s, 1 m … by default).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// RocketMQ's delay levels.
pub const DEFAULT_DELAY_LEVELS: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// The level of a failed delivery's first retry.
const FIRST_RETRY_LEVEL: u32 = 3;

/// A parsed `delay_levels` schedule: at least one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayLevels {
    levels: Vec<Duration>,
}

/// Why a `delay_levels` string is not a schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelayLevelsError {
    /// No level at all.
    #[error("delay_levels is empty: give at least one duration, e.g. \"1s 5s 10s\"")]
    Empty,
    /// A level is not a number followed by `ms`, `s`, `m`, `h` or `d`.
    #[error("delay level {0:?} is not a duration such as 500ms, 10s, 2m, 1h or 1d")]
    Invalid(String),
}

impl DelayLevels {
    /// The delay of `level` (1-based; 0 counts as 1, beyond the list as the last).
    pub fn delay(&self, level: u32) -> Duration {
        let index = (level.max(1) as usize - 1).min(self.levels.len() - 1);
        self.levels[index]
    }

    /// How long a failed delivery waits before its retry, after `reconsume_times`
    /// earlier retries: level 3 for the first, then one level more each time.
    pub fn retry_delay(&self, reconsume_times: u32) -> Duration {
        self.delay(FIRST_RETRY_LEVEL.saturating_add(reconsume_times))
    }

    /// How many levels the schedule has.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Always false: a schedule has at least one level.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

impl Default for DelayLevels {
    fn default() -> Self {
        DEFAULT_DELAY_LEVELS.parse().expect("the default delay levels parse")
    }
}

impl FromStr for DelayLevels {
    type Err = DelayLevelsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let levels = text.split_whitespace().map(parse_duration).collect::<Result<Vec<_>, _>>()?;
        if levels.is_empty() {
            return Err(DelayLevelsError::Empty);
        }
        Ok(Self { levels })
    }
}

impl fmt::Display for DelayLevels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&format_duration(*level))?;
        }
        Ok(())
    }
}

/// `500ms`, `10s`, `2m`, `1h`, `1d`: a whole number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, DelayLevelsError> {
    let invalid = || DelayLevelsError::Invalid(text.to_owned());
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    number.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(invalid)
}

/// The largest unit that divides `duration` exactly.
fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
        .into_iter()
        .find(|&(_, unit)| ms > 0 && ms.is_multiple_of(unit))
        .map_or_else(|| format!("{ms}ms"), |(name, unit)| format!("{}{name}", ms / unit))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn rocketmq_levels_and_retries() {
        let levels = DelayLevels::default();
        assert_eq!(levels.len(), 18);
        assert_eq!(levels.delay(1), Duration::from_secs(1));
        assert_eq!(levels.delay(0), Duration::from_secs(1), "level 0 counts as 1");
        assert_eq!(levels.delay(18), Duration::from_secs(7200));
        assert_eq!(levels.delay(u32::MAX), Duration::from_secs(7200), "beyond the list: the last level");
        assert_eq!(levels.retry_delay(0), Duration::from_secs(10));
        assert_eq!(levels.retry_delay(1), Duration::from_secs(30));
        assert_eq!(levels.retry_delay(15), Duration::from_secs(7200));
        assert_eq!(levels.retry_delay(u32::MAX), Duration::from_secs(7200));
        assert_eq!(levels.to_string(), DEFAULT_DELAY_LEVELS);
    }

    #[test]
    fn short_test_schedules_and_bad_ones() {
        let levels: DelayLevels = "1s".parse().expect("one level");
        assert_eq!(levels.retry_delay(0), Duration::from_secs(1));
        assert_eq!("250ms 1d".parse::<DelayLevels>().expect("units").delay(2), Duration::from_secs(86_400));
        assert_eq!("  ".parse::<DelayLevels>(), Err(DelayLevelsError::Empty));
        for bad in ["1", "s", "1x", "-1s", "1.5s", "99999999999999999999s", "18446744073709551615d"] {
            assert_eq!(bad.parse::<DelayLevels>(), Err(DelayLevelsError::Invalid(bad.to_owned())), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_schedule_prints_as_it_parses(ms in prop::collection::vec(0u64..10_000_000_000, 1..20)) {
            let text = ms.iter().map(|ms| format!("{ms}ms")).collect::<Vec<_>>().join(" ");
            let levels: DelayLevels = text.parse().expect("parses");
            let again: DelayLevels = levels.to_string().parse().expect("its display parses");
            prop_assert_eq!(again, levels);
        }
    }
}
