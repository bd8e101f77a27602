//! The read path: one pass over a stretch of ConsumeQueue entries that
//! yields the page of records a subscription delivers (SPEC §4, DESIGN "Pull").
//!
//! Stages, cheapest first, each on what the earlier ones let through:
//! 0. block summary: skip the rest of a block whose union of terms (or whose
//!    traffic role) cannot match, without looking at its entries;
//! 1. shadow flag and tag hash, from the index entry and ConsumeQueue entry;
//! 2. bloom: the subscription's necessary condition against the message's bloom;
//! 3. read the body (CRC-checked), re-check the exact tag and shadow property;
//! 4. SQL92 on the properties decoded in place;
//! 5. the subscription's [`MessageFilter`](crate::MessageFilter), if any.
//!
//! With `prefilter` off, stages 0-2 are skipped and every body is read: the
//! baseline that benchmarks compare against, and the reference for tests.

use std::sync::atomic::AtomicU64;

use weir_storage::{CqEntry, StoredRecord};

use crate::index::{BloomEntry, QueueBlooms, is_shadow};
use crate::message_filter::FilterInput;
use crate::stats::FilterStats;
use crate::subscription::{RecordProperties, Subscription, TrafficRole};

/// How much one page may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Most records.
    pub max_messages: usize,
    /// Most bytes of encoded records (at least one record is always allowed).
    pub max_bytes: usize,
}

/// What one pass delivered.
#[derive(Debug, Default)]
pub struct Page {
    /// Records delivered, in queue order.
    pub records: Vec<StoredRecord>,
    /// The queue offset to continue from: past every entry examined.
    pub next_offset: u64,
}

/// One pass of a subscription over a queue.
#[derive(Debug, Clone, Copy)]
pub struct ReadPath<'a> {
    /// The compiled subscription.
    pub subscription: &'a Subscription,
    /// Where the counters go.
    pub stats: &'a FilterStats,
    /// The queue's bloom index, if it has one.
    pub blooms: Option<&'a QueueBlooms>,
    /// Use stages 0-2 (off: read every body).
    pub prefilter: bool,
    /// The property that marks shadow traffic.
    pub shadow_property: &'a str,
    /// Page capacity.
    pub limits: PageLimits,
}

/// The pass's running state.
struct Pass<'p, F> {
    path: &'p ReadPath<'p>,
    read: F,
    page: Page,
    bytes: usize,
    /// Set when the page is full: the offset of the first entry not taken.
    stopped_at: Option<u64>,
}

impl ReadPath<'_> {
    /// Filters `entries` (non-filler ConsumeQueue entries in offset order,
    /// all in `[from, end)`) with `read` fetching a record (`Ok(None)`: it is
    /// gone, skip it). `end` is where the next pass starts if this one is
    /// not cut short by the page limits.
    pub fn run<E>(
        &self,
        from: u64,
        end: u64,
        entries: &[(u64, CqEntry)],
        read: impl FnMut(&CqEntry) -> Result<Option<StoredRecord>, E>,
    ) -> Result<Page, E> {
        let mut pass = Pass { path: self, read, page: Page::default(), bytes: 0, stopped_at: None };
        // Entries past `end` (dispatched since the caller looked) belong to the next pass.
        let mut rest = &entries[..entries.partition_point(|(q, _)| *q < end)];
        if let Some(blooms) = self.blooms.filter(|_| self.prefilter) {
            let indexed_end = blooms.max_offset().min(end);
            let per_block = blooms.block_entries();
            let mut at = from;
            while at < indexed_end && pass.stopped_at.is_none() {
                let chunk_end = (at / per_block + 1).saturating_mul(per_block).min(indexed_end);
                let split = rest.partition_point(|(q, _)| *q < chunk_end);
                let (chunk, after) = rest.split_at(split);
                rest = after;
                match self.block_skip(blooms, at / per_block) {
                    Some(counter) => {
                        FilterStats::add(&self.stats.examined, chunk.len() as u64);
                        FilterStats::add(counter, chunk.len() as u64);
                    }
                    None => pass.indexed_chunk(blooms, at, chunk_end, chunk)?,
                }
                at = chunk_end;
            }
        }
        for (queue_offset, entry) in rest {
            if pass.stopped_at.is_some() {
                break;
            }
            pass.step(*queue_offset, entry, None)?;
        }
        pass.page.next_offset = pass.stopped_at.unwrap_or(end);
        Ok(pass.page)
    }

    /// The counter to charge when the whole of block `number` can be skipped.
    fn block_skip(&self, blooms: &QueueBlooms, number: u64) -> Option<&AtomicU64> {
        let sub = self.subscription;
        blooms
            .block(number, |summary| {
                if !summary.is_known() {
                    return None;
                }
                let role_absent = match sub.role() {
                    TrafficRole::Production => !summary.any_production(),
                    TrafficRole::Shadow => !summary.any_shadow(),
                };
                if role_absent {
                    Some(&self.stats.skipped_shadow)
                } else if !sub.block_condition().may_match(summary.bloom()) {
                    Some(&self.stats.skipped_by_block)
                } else {
                    None
                }
            })
            .flatten()
    }
}

impl<F, E> Pass<'_, F>
where
    F: FnMut(&CqEntry) -> Result<Option<StoredRecord>, E>,
{
    /// Stages 1-5 over the entries of `[at, chunk_end)`, with their index entries.
    fn indexed_chunk(
        &mut self,
        blooms: &QueueBlooms,
        at: u64,
        chunk_end: u64,
        chunk: &[(u64, CqEntry)],
    ) -> Result<(), E> {
        let mut next = chunk.iter().peekable();
        let mut outcome = Ok(());
        blooms.scan(at, (chunk_end - at) as usize, |q, bloom| {
            if outcome.is_err() || self.stopped_at.is_some() {
                return;
            }
            // Entries the index no longer covers (retention trimmed it first) go unindexed.
            while let Some((eq, entry)) = next.next_if(|(eq, _)| *eq < q) {
                outcome = self.step(*eq, entry, None);
                if outcome.is_err() || self.stopped_at.is_some() {
                    return;
                }
            }
            if let Some((_, entry)) = next.next_if(|(eq, _)| *eq == q) {
                outcome = self.step(q, entry, Some(bloom));
            }
        });
        outcome?;
        for (q, entry) in next {
            if self.stopped_at.is_some() {
                break;
            }
            self.step(*q, entry, None)?;
        }
        Ok(())
    }

    /// Every stage for one entry.
    fn step(&mut self, queue_offset: u64, entry: &CqEntry, bloom: Option<BloomEntry<'_>>) -> Result<(), E> {
        let (path, stats) = (self.path, self.path.stats);
        let limits = path.limits;
        let size = entry.size as usize;
        if self.page.records.len() >= limits.max_messages
            || (!self.page.records.is_empty() && self.bytes.saturating_add(size) > limits.max_bytes)
        {
            self.stopped_at = Some(queue_offset);
            return Ok(());
        }
        FilterStats::add(&stats.examined, 1);
        let sub = path.subscription;
        if path.prefilter {
            let known = bloom.filter(|b| b.describes(entry.commitlog_offset));
            if known.is_some_and(|b| TrafficRole::of_message(b.is_shadow()) != sub.role()) {
                FilterStats::add(&stats.skipped_shadow, 1);
                return Ok(());
            }
            if !sub.tag().may_match_hash(entry.tag_hash) {
                FilterStats::add(&stats.skipped_by_tag, 1);
                return Ok(());
            }
            if known.is_some_and(|b| !sub.message_condition().may_match(b.bloom())) {
                FilterStats::add(&stats.skipped_by_bloom, 1);
                return Ok(());
            }
        }
        FilterStats::add(&stats.body_reads, 1);
        let Some(record) = (self.read)(entry)? else { return Ok(()) };
        if !self.accepts(&record) {
            return Ok(());
        }
        FilterStats::add(&stats.delivered, 1);
        self.bytes = self.bytes.saturating_add(size);
        self.page.records.push(record);
        Ok(())
    }

    /// Stages 3-5 on a record that was read.
    fn accepts(&self, record: &StoredRecord) -> bool {
        let (path, stats) = (self.path, self.path.stats);
        let sub = path.subscription;
        let view = record.view();
        if TrafficRole::of_message(is_shadow(&view, path.shadow_property)) != sub.role() {
            FilterStats::add(&stats.skipped_shadow, 1);
            return false;
        }
        if !sub.tag().matches(view.tag()) {
            FilterStats::add(&stats.skipped_by_tag, 1);
            return false;
        }
        if let Some(sql) = sub.sql() {
            FilterStats::add(&stats.evaluated_sql, 1);
            match sql.evaluate(&RecordProperties(view)) {
                Ok(weir_sql92::Truth::True) => {}
                Ok(_) => {
                    FilterStats::add(&stats.sql_false, 1);
                    return false;
                }
                Err(_) => {
                    FilterStats::add(&stats.sql_errors, 1);
                    return false;
                }
            }
        }
        if let Some(plugin) = sub.plugin() {
            let keys: Vec<&str> = view.keys().collect();
            let properties: Vec<(&str, &str)> = view.properties().collect();
            let input = FilterInput {
                topic: view.topic(),
                queue_id: view.queue_id(),
                queue_offset: view.queue_offset(),
                tag: view.tag(),
                keys: &keys,
                properties: &properties,
                body: view.body(),
                born_timestamp_ms: view.born_timestamp_ms(),
                reconsume_times: 0,
            };
            match plugin.decide(&input) {
                Ok(true) => {}
                Ok(false) => {
                    FilterStats::add(&stats.plugin_rejected, 1);
                    return false;
                }
                Err(_) => {
                    FilterStats::add(&stats.plugin_errors, 1);
                    return false;
                }
            }
        }
        true
    }
}
