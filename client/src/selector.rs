//! Choosing the queue a message is sent to: round-robin by default, by sharding key for
//! ordered sends.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use weir_protocol::Message;

/// Picks the queue for an ordered send: messages with the same sharding key must go to
/// the same queue so consumers see them in send order.
///
/// Used by [`Producer::send_ordered`](crate::Producer::send_ordered). The result must be
/// below `write_queues`; larger values wrap around (`% write_queues`).
pub trait QueueSelector: Send + Sync + fmt::Debug {
    /// The queue for `message`, sent with `sharding_key`, among `write_queues` queues.
    fn select(&self, message: &Message, sharding_key: &str, write_queues: NonZeroU32) -> u32;
}

/// The default [`QueueSelector`]: a stable hash of the sharding key modulo the number of
/// write queues.
///
/// The hash is 64-bit FNV-1a over the key's UTF-8 bytes, fixed across processes, builds
/// and Rust versions, so every producer maps a key to the same queue. Changing the
/// topic's write queue count remaps keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashSelector;

impl QueueSelector for HashSelector {
    fn select(&self, _message: &Message, sharding_key: &str, write_queues: NonZeroU32) -> u32 {
        (fnv1a(sharding_key.as_bytes()) % u64::from(write_queues.get())) as u32
    }
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

/// Spreads unordered sends over the write queues in turn.
#[derive(Debug, Default)]
pub(crate) struct RoundRobin {
    next: AtomicU32,
}

impl RoundRobin {
    /// The next queue among `write_queues`.
    pub(crate) fn next(&self, write_queues: NonZeroU32) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed) % write_queues.get()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn queues(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn fnv1a_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn hash_selector_spreads_keys_over_queues() {
        let message = Message::new("t", "");
        let mut counts = [0u32; 8];
        for key in 0..8000 {
            counts[HashSelector.select(&message, &format!("order-{key}"), queues(8)) as usize] += 1;
        }
        assert!(counts.iter().all(|&count| (800..1200).contains(&count)), "{counts:?}");
    }

    #[test]
    fn round_robin_visits_every_queue_in_turn() {
        let round_robin = RoundRobin::default();
        let picks: Vec<u32> = (0..7).map(|_| round_robin.next(queues(3))).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    proptest! {
        #[test]
        fn same_key_same_queue_within_range(key in "\\PC{0,20}", n in 1..64u32, topic in "[a-z]{1,5}") {
            let first = HashSelector.select(&Message::new(topic, "a"), &key, queues(n));
            let again = HashSelector.select(&Message::new("other", "b"), &key, queues(n));
            prop_assert!(first < n);
            prop_assert_eq!(first, again);
        }
    }
}
