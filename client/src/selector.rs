//! Choosing the queue a message is sent to: round-robin by default, by sharding key for
//! ordered sends.
//!
//! A producer keeps one round-robin per topic (RocketMQ keeps `sendWhichQueue` in each
//! topic's route), so messages sent to several topics in turn still spread over each
//! topic's queues. Each starts at a random queue (as `sendWhichQueue` does), so
//! short-lived producers, one process per message, spread over the queues instead of
//! all sending to queue 0.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

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

/// Spreads unordered sends over the write queues in turn, starting at a random queue.
#[derive(Debug)]
pub(crate) struct RoundRobin {
    next: AtomicU32,
}

impl Default for RoundRobin {
    /// A round-robin starting at a random position (RocketMQ's producer starts its
    /// `sendWhichQueue` at a random index too).
    fn default() -> Self {
        Self::starting_at(random_start())
    }
}

impl RoundRobin {
    /// A round-robin whose first pick is `start % write_queues`.
    pub(crate) fn starting_at(start: u32) -> Self {
        RoundRobin { next: AtomicU32::new(start) }
    }

    /// The next queue among `write_queues`.
    pub(crate) fn next(&self, write_queues: NonZeroU32) -> u32 {
        self.next.fetch_add(1, Ordering::Relaxed) % write_queues.get()
    }
}

/// A producer's round-robins, one per topic, created on the topic's first send.
#[derive(Debug, Default)]
pub(crate) struct RoundRobins {
    by_topic: Mutex<HashMap<String, Arc<RoundRobin>>>,
}

impl RoundRobins {
    /// The topic's round-robin.
    pub(crate) fn topic(&self, topic: &str) -> Arc<RoundRobin> {
        let mut by_topic = self.by_topic.lock().expect("round-robin map lock");
        if let Some(round_robin) = by_topic.get(topic) {
            return round_robin.clone();
        }
        by_topic.entry(topic.to_owned()).or_default().clone()
    }
}

/// A random start for a [`RoundRobin`], below 2^31 so that the counter wraps (and skips
/// or repeats a queue once) only after two billion sends. No dependency for randomness:
/// `RandomState`'s keys come from the OS once per thread and change for every new state;
/// the time, process id and a counter are hashed in as well.
fn random_start() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 33) as u32
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
        let round_robin = RoundRobin::starting_at(0);
        let picks: Vec<u32> = (0..7).map(|_| round_robin.next(queues(3))).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn a_random_start_still_visits_every_queue_in_turn() {
        for _ in 0..100 {
            let round_robin = RoundRobin::default();
            let picks: Vec<u32> = (0..17).map(|_| round_robin.next(queues(8))).collect();
            for pair in picks.windows(2) {
                assert_eq!(pair[1], (pair[0] + 1) % 8, "{picks:?}");
            }
            let mut first_eight = picks[..8].to_vec();
            first_eight.sort_unstable();
            assert_eq!(first_eight, (0..8).collect::<Vec<_>>(), "{picks:?}");
        }
    }

    #[test]
    fn fresh_round_robins_start_at_different_queues() {
        // One fresh producer per message (`weir send`) must not send everything to queue 0.
        let mut counts = [0u32; 8];
        for _ in 0..256 {
            counts[RoundRobin::default().next(queues(8)) as usize] += 1;
        }
        // Uniform starts put 32 on each queue; fewer than 4 on one has odds under 1e-9.
        assert!(counts.iter().all(|&count| count >= 4), "{counts:?}");
    }

    #[test]
    fn topics_sent_to_in_turn_each_visit_all_their_queues() {
        // A producer-wide counter would send every message of `a` to one queue and every
        // message of `b` to the other.
        let round_robins = RoundRobins::default();
        let mut counts: HashMap<&str, [u32; 2]> = HashMap::new();
        for _ in 0..100 {
            for topic in ["a", "b"] {
                counts.entry(topic).or_default()[round_robins.topic(topic).next(queues(2)) as usize] += 1;
            }
        }
        assert_eq!(counts, HashMap::from([("a", [50, 50]), ("b", [50, 50])]));
        assert!(Arc::ptr_eq(&round_robins.topic("a"), &round_robins.topic("a")));
    }

    #[test]
    fn random_start_leaves_room_before_wrapping() {
        assert!((0..1000).all(|_| random_start() < 1 << 31));
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
