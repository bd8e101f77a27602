//! Retry and dead-letter decisions (SPEC §8).
//!
//! A message whose consumption failed goes to the group's retry topic
//! `%RETRY%<group>` after a delay that grows with the attempt, and after the
//! last attempt to the dead-letter topic `%DLQ%<group>`. RocketMQ's default
//! schedule uses delay level `3 + reconsume_times`: 10 s, 30 s, 1 min, 2 min,
//! … 2 h over 16 attempts.

use std::time::Duration;

use weir_filters::FilterInput;

/// RocketMQ's delay levels 1..=18: `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`.
pub const DELAY_LEVELS: [Duration; 18] = {
    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    [
        s(1),
        s(5),
        s(10),
        s(30),
        s(60),
        s(120),
        s(180),
        s(240),
        s(300),
        s(360),
        s(420),
        s(480),
        s(540),
        s(600),
        s(1200),
        s(1800),
        s(3600),
        s(7200),
    ]
};

/// The retry topic of a consumer group.
pub fn retry_topic(group: &str) -> String {
    format!("%RETRY%{group}")
}

/// The dead-letter topic of a consumer group.
pub fn dlq_topic(group: &str) -> String {
    format!("%DLQ%{group}")
}

/// A delivery that the consumer reported as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedDelivery<'a> {
    /// The consumer group that failed.
    pub group: &'a str,
    /// Why, as the consumer reported it (free text, may be empty).
    pub reason: &'a str,
    /// The message, on its original topic; `reconsume_times` is how many
    /// times it was already redelivered (0 on the first failure).
    pub message: FilterInput<'a>,
}

impl FailedDelivery<'_> {
    /// Which delivery failed, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.message.reconsume_times.saturating_add(1)
    }
}

/// What to do with a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Redeliver through the retry topic after this delay.
    RetryAfter(Duration),
    /// Move to the dead-letter topic now.
    DeadLetter,
    /// Drop the message (it is acknowledged without redelivery).
    Discard,
}

/// Decides the fate of failed deliveries. Implementations must be cheap and
/// must not block: the broker calls them on its request path.
pub trait DlqPolicy: Send + Sync {
    /// The decision for one failed delivery.
    fn decide(&self, failed: &FailedDelivery<'_>) -> RetryDecision;
}

/// RocketMQ's default: up to `max_reconsume_times` retries (default 16) on
/// delay levels `3 + reconsume_times`, then the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRetryPolicy {
    /// Redeliveries before the message goes to the dead-letter topic.
    pub max_reconsume_times: u32,
}

impl Default for DefaultRetryPolicy {
    fn default() -> Self {
        Self { max_reconsume_times: 16 }
    }
}

impl DlqPolicy for DefaultRetryPolicy {
    fn decide(&self, failed: &FailedDelivery<'_>) -> RetryDecision {
        let reconsume_times = failed.message.reconsume_times;
        if reconsume_times >= self.max_reconsume_times {
            return RetryDecision::DeadLetter;
        }
        // Level 3 + n is index 2 + n; later attempts stay at the longest delay.
        let index = (2 + reconsume_times as usize).min(DELAY_LEVELS.len() - 1);
        RetryDecision::RetryAfter(DELAY_LEVELS[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(reconsume_times: u32) -> FailedDelivery<'static> {
        let message = FilterInput {
            topic: "orders",
            queue_id: 0,
            queue_offset: 0,
            tag: "",
            keys: &[],
            properties: &[],
            body: b"",
            born_timestamp_ms: 0,
            reconsume_times,
        };
        FailedDelivery { group: "g", reason: "", message }
    }

    #[test]
    fn default_schedule_is_rocketmqs() {
        let policy = DefaultRetryPolicy::default();
        let delays: Vec<_> = (0..16)
            .map(|n| match policy.decide(&failed(n)) {
                RetryDecision::RetryAfter(d) => d.as_secs(),
                other => panic!("attempt {n}: {other:?}"),
            })
            .collect();
        assert_eq!(delays, [10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200]);
        assert_eq!(policy.decide(&failed(16)), RetryDecision::DeadLetter);
        let short = DefaultRetryPolicy { max_reconsume_times: 2 };
        assert_eq!(short.decide(&failed(2)), RetryDecision::DeadLetter);
        assert_eq!(
            DefaultRetryPolicy { max_reconsume_times: 40 }.decide(&failed(30)),
            RetryDecision::RetryAfter(Duration::from_secs(7200))
        );
    }

    #[test]
    fn attempt_counts_from_one() {
        assert_eq!(failed(0).attempt(), 1);
        assert_eq!(failed(u32::MAX).attempt(), u32::MAX);
    }

    #[test]
    fn system_topic_names() {
        assert_eq!(retry_topic("pay"), "%RETRY%pay");
        assert_eq!(dlq_topic("pay"), "%DLQ%pay");
    }
}
