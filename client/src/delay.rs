//! Delayed delivery on a [`Message`]: [`DelayedDelivery`] sets when it becomes visible.

use std::num::NonZeroU8;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir_protocol::{Delivery, Message};

/// Builder methods that delay a [`Message`]: it is stored at once (acknowledged as
/// usual) but consumers see it only from its delivery time on, in its topic and queue,
/// with its tag, keys and properties. The send result's `msg_id` is the id to cancel it
/// with ([`Client::cancel_message`](crate::Client::cancel_message)) until then.
///
/// ```
/// use std::time::Duration;
/// use weir_client::{DelayedDelivery, Message};
///
/// let reminder = Message::new("reminders", "pay the invoice").with_delay(Duration::from_secs(30));
/// let at_noon = Message::new("reminders", "lunch").with_deliver_at(1_796_205_600_000);
/// let level_3 = Message::new("retries", "again").with_delay_level(3); // 10 s by default
/// # let _ = (reminder, at_noon, level_3);
/// ```
///
/// A time at or before the broker's clock is delivered at once; one further ahead than
/// the broker's `max_delay_ms` (3 days by default) is refused (`BAD_REQUEST`).
pub trait DelayedDelivery: Sized {
    /// Delivered `delay` from now (this machine's clock: the delivery time is what is
    /// sent). A zero delay is immediate.
    fn with_delay(self, delay: Duration) -> Self;
    /// Delivered at `unix_ms`, Unix time in milliseconds.
    fn with_deliver_at(self, unix_ms: u64) -> Self;
    /// Delivered after the broker's delay level `level` (1-based, `delay_levels`:
    /// RocketMQ's `1s 5s 10s 30s 1m …` by default; beyond the list, the last level).
    /// Level 0 is immediate.
    fn with_delay_level(self, level: u8) -> Self;
}

impl DelayedDelivery for Message {
    fn with_delay(mut self, delay: Duration) -> Self {
        self.delivery = if delay.is_zero() {
            Delivery::Immediate
        } else {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let at = now.saturating_add(delay).as_millis();
            Delivery::DeliverAtMs(u64::try_from(at).unwrap_or(u64::MAX))
        };
        self
    }

    fn with_deliver_at(mut self, unix_ms: u64) -> Self {
        self.delivery = Delivery::DeliverAtMs(unix_ms);
        self
    }

    fn with_delay_level(mut self, level: u8) -> Self {
        self.delivery = NonZeroU8::new(level).map_or(Delivery::Immediate, Delivery::DelayLevel);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_builder_sets_the_delivery() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
        let message = Message::new("t", "b").with_delay(Duration::from_secs(30));
        let Delivery::DeliverAtMs(at) = message.delivery else { panic!("{:?}", message.delivery) };
        assert!((before + 30_000..before + 31_000).contains(&at), "{at} vs {before}");
        assert_eq!(Message::new("t", "b").with_delay(Duration::ZERO).delivery, Delivery::Immediate);
        assert_eq!(Message::new("t", "b").with_deliver_at(7).delivery, Delivery::DeliverAtMs(7));
        assert_eq!(
            Message::new("t", "b").with_delay_level(3).delivery,
            Delivery::DelayLevel(NonZeroU8::new(3).unwrap())
        );
        assert_eq!(Message::new("t", "b").with_delay_level(0).delivery, Delivery::Immediate);
    }
}
