//! Per-(group, topic) counters of the read-path pipeline.
//!
//! Every ConsumeQueue entry the pipeline covers is `examined` and ends in
//! exactly one of: a skip before the body is read (`skipped_by_block`,
//! `skipped_shadow`, `skipped_by_tag`, `skipped_by_bloom`), or a body read
//! (`body_reads`). A read body is then delivered, or rejected by the exact tag
//! or shadow re-check (counted under the same skip names), by SQL92
//! (`sql_false`, `sql_errors`) or by the plugin stage (`plugin_rejected`,
//! `plugin_errors`).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$doc:meta] $name:ident,)*) => {
        /// Live counters, updated with relaxed atomics by concurrent pulls.
        #[derive(Debug, Default)]
        pub struct FilterStats {
            $(#[$doc] pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`FilterStats`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct FilterCounts {
            $(#[$doc] pub $name: u64,)*
        }

        impl FilterStats {
            /// Reads every counter.
            pub fn snapshot(&self) -> FilterCounts {
                FilterCounts { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        /// Sums counters (of several topics, say), saturating rather than wrapping.
        impl std::ops::AddAssign for FilterCounts {
            fn add_assign(&mut self, other: FilterCounts) {
                $(self.$name = self.$name.saturating_add(other.$name);)*
            }
        }
    };
}

counters! {
    /// ConsumeQueue entries the pipeline covered.
    examined,
    /// Skipped on the tag hash, or on the exact tag after a hash collision.
    skipped_by_tag,
    /// Skipped because the message's bloom filter cannot satisfy the subscription.
    skipped_by_bloom,
    /// Skipped with their whole block, on the block summary.
    skipped_by_block,
    /// Shadow traffic kept from a production group, or production traffic from a shadow group.
    skipped_shadow,
    /// Bodies read from the CommitLog.
    body_reads,
    /// SQL92 evaluations.
    evaluated_sql,
    /// SQL92 evaluations that were FALSE or NULL.
    sql_false,
    /// SQL92 evaluations that failed (not delivered).
    sql_errors,
    /// Messages a filter plugin rejected.
    plugin_rejected,
    /// Filter plugin calls that failed (not delivered).
    plugin_errors,
    /// Messages delivered.
    delivered,
}

impl FilterStats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl FilterCounts {
    /// Share of SQL evaluations that did not match: the bloom stage's observed
    /// false-positive rate for exact conditions such as `region = 'SH'` (an
    /// upper bound of it when the condition only needs a property present).
    pub fn bloom_false_positive_rate(&self) -> f64 {
        if self.evaluated_sql == 0 { 0.0 } else { self.sql_false as f64 / self.evaluated_sql as f64 }
    }
}
