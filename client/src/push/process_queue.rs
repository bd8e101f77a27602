//! Per-queue bookkeeping of a push consumer: which pulled messages are not consumed yet
//! (for flow control), and the offset that is safe to commit.

use std::collections::BTreeMap;

/// When a queue's pulling pauses: while more than `max_messages` messages, or more than
/// `max_bytes` body bytes, are pulled and not yet consumed, or while the span from the
/// lowest unfinished offset to the highest pulled one exceeds `max_span` (one slow message
/// would otherwise let the queue run far ahead of what can be committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowLimits {
    pub(crate) max_messages: usize,
    pub(crate) max_bytes: u64,
    pub(crate) max_span: u64,
}

/// Messages of one queue pulled and not yet consumed, and how far the queue was pulled.
///
/// **Invariant:** every offset below [`pulled_up_to`](Self::pulled_up_to) was pulled
/// (or skipped by the broker's filter), and every pulled offset not in `in_flight` was
/// consumed. So the lowest in-flight offset, or `pulled_up_to` when none is in flight, is
/// the highest offset that can be committed without losing a message.
#[derive(Debug)]
pub(crate) struct ProcessQueue {
    /// Pulled, not yet consumed: queue offset → body size in bytes.
    in_flight: BTreeMap<u64, usize>,
    cached_bytes: u64,
    pulled_up_to: u64,
}

impl ProcessQueue {
    /// A queue that will be pulled from `offset`.
    pub(crate) fn new(offset: u64) -> Self {
        ProcessQueue { in_flight: BTreeMap::new(), cached_bytes: 0, pulled_up_to: offset }
    }

    /// The offset the next pull starts from.
    pub(crate) fn pulled_up_to(&self) -> u64 {
        self.pulled_up_to
    }

    /// Records a pull's messages (offset and body size each) and the offset to pull from
    /// next.
    pub(crate) fn pulled(&mut self, messages: impl IntoIterator<Item = (u64, usize)>, next_offset: u64) {
        for (offset, size) in messages {
            if let Some(previous) = self.in_flight.insert(offset, size) {
                self.cached_bytes -= previous as u64;
            }
            self.cached_bytes += size as u64;
        }
        self.pulled_up_to = next_offset;
    }

    /// Records that the message at `offset` was consumed.
    pub(crate) fn consumed(&mut self, offset: u64) {
        if let Some(size) = self.in_flight.remove(&offset) {
            self.cached_bytes -= size as u64;
        }
    }

    /// The offset to commit: the lowest offset not yet consumed.
    pub(crate) fn commit_offset(&self) -> u64 {
        self.in_flight.keys().next().copied().unwrap_or(self.pulled_up_to)
    }

    /// Whether pulling must pause until messages are consumed.
    pub(crate) fn is_over(&self, limits: FlowLimits) -> bool {
        self.in_flight.len() > limits.max_messages
            || self.cached_bytes > limits.max_bytes
            || self.pulled_up_to - self.commit_offset() > limits.max_span
    }

    /// Messages pulled and not yet consumed.
    pub(crate) fn cached_messages(&self) -> usize {
        self.in_flight.len()
    }

    /// Body bytes pulled and not yet consumed.
    pub(crate) fn cached_bytes(&self) -> u64 {
        self.cached_bytes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    const LIMITS: FlowLimits = FlowLimits { max_messages: 2, max_bytes: 100, max_span: 1000 };

    #[test]
    fn flow_control_pauses_above_either_limit() {
        let mut queue = ProcessQueue::new(0);
        queue.pulled([(0, 10), (1, 10)], 2);
        assert!(!queue.is_over(LIMITS), "at the limit is not over it");
        queue.pulled([(2, 10)], 3);
        assert!(queue.is_over(LIMITS), "three messages");
        queue.consumed(0);
        assert!(!queue.is_over(LIMITS));
        queue.pulled([(3, 81)], 4);
        assert_eq!(queue.cached_bytes(), 101);
        assert!(queue.is_over(LIMITS), "101 bytes");
        queue.consumed(3);
        assert_eq!((queue.cached_messages(), queue.cached_bytes()), (2, 20));
        assert!(!queue.is_over(LIMITS));
    }

    #[test]
    fn one_slow_message_pauses_the_queue_past_the_span() {
        let limits = FlowLimits { max_messages: 1000, max_bytes: 1 << 20, max_span: 10 };
        let mut queue = ProcessQueue::new(0);
        queue.pulled((0..5).map(|offset| (offset, 1)), 5);
        (1..5).for_each(|offset| queue.consumed(offset));
        queue.pulled((5..10).map(|offset| (offset, 1)), 10);
        (5..10).for_each(|offset| queue.consumed(offset));
        assert!(!queue.is_over(limits), "a span of 10 is at the limit");
        queue.pulled([(10, 1)], 11);
        assert!(queue.is_over(limits), "offset 0 is still unfinished, 11 offsets back");
        queue.consumed(0);
        assert!(!queue.is_over(limits));
    }

    #[test]
    fn consuming_twice_or_unknown_offsets_changes_nothing() {
        let mut queue = ProcessQueue::new(5);
        queue.pulled([(5, 7)], 6);
        queue.consumed(5);
        queue.consumed(5);
        queue.consumed(99);
        assert_eq!((queue.cached_messages(), queue.cached_bytes(), queue.commit_offset()), (0, 0, 6));
    }

    #[test]
    fn commit_offset_waits_for_the_lowest_unfinished_message() {
        let mut queue = ProcessQueue::new(10);
        assert_eq!(queue.commit_offset(), 10);
        queue.pulled([(10, 1), (11, 1), (12, 1)], 13);
        queue.consumed(12);
        queue.consumed(11);
        assert_eq!(queue.commit_offset(), 10);
        queue.consumed(10);
        assert_eq!(queue.commit_offset(), 13);
    }

    /// A pull of `len` offsets of which those with `skipped` set were filtered out by the
    /// broker, then consumption of pulled messages in an arbitrary order.
    #[derive(Debug, Clone)]
    enum Step {
        Pull { len: u64, skipped: Vec<bool> },
        Consume { pick: usize },
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1..8u64, proptest::collection::vec(any::<bool>(), 8))
                .prop_map(|(len, skipped)| Step::Pull { len, skipped }),
            any::<usize>().prop_map(|pick| Step::Consume { pick }),
        ]
    }

    proptest! {
        #[test]
        fn commit_offset_is_the_lowest_unfinished_offset(start in 0..1000u64, steps in proptest::collection::vec(arb_step(), 0..60)) {
            let mut queue = ProcessQueue::new(start);
            let mut unfinished: BTreeSet<u64> = BTreeSet::new();
            let mut next = start;
            let mut last_commit = queue.commit_offset();
            for step in steps {
                match step {
                    Step::Pull { len, skipped } => {
                        let pulled: Vec<(u64, usize)> = (next..next + len)
                            .filter(|offset| !skipped[(offset - next) as usize])
                            .map(|offset| (offset, (offset % 13) as usize))
                            .collect();
                        unfinished.extend(pulled.iter().map(|(offset, _)| offset));
                        next += len;
                        queue.pulled(pulled, next);
                    }
                    Step::Consume { pick } => {
                        if unfinished.is_empty() {
                            continue;
                        }
                        let offset = *unfinished.iter().nth(pick % unfinished.len()).unwrap();
                        unfinished.remove(&offset);
                        queue.consumed(offset);
                    }
                }
                let expected = unfinished.first().copied().unwrap_or(next);
                prop_assert_eq!(queue.commit_offset(), expected);
                prop_assert!(queue.commit_offset() >= last_commit, "commit offsets never go back");
                last_commit = queue.commit_offset();
                prop_assert_eq!(queue.cached_messages(), unfinished.len());
                prop_assert_eq!(queue.cached_bytes(), unfinished.iter().map(|offset| offset % 13).sum::<u64>());
                prop_assert_eq!(queue.pulled_up_to(), next);
            }
        }
    }
}
