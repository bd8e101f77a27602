//! Pulls: resolve the subscription, fill a page through the filters'
//! [`ReadPath`], and hold the request (long polling) while nothing new matches.
//! A page is the matching records themselves; the front door encodes them.

use std::sync::Arc;
use std::time::Duration;

use weir_filters::{Expression, PageLimits, ReadPath, Subscription, TrafficRole};
use weir_storage::{ReadError, StoredRecord};

use super::{Core, CoreError, MemberRef};
use crate::meta::groups::Registered;

/// ConsumeQueue entries one filtered read looks at.
const FILTER_SCAN_ENTRIES: usize = 4096;
/// Most entries one page scans while filling itself (bounds the time a pull holds a worker).
const PAGE_SCAN_ENTRIES: u64 = 64 * 1024;
/// Entries one pull may scan without a match before answering with the next offset.
const MAX_SCAN_PER_PULL: u64 = 256 * 1024;

/// Which messages a pull wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullFilter {
    /// The group's registered subscription.
    Subscribed,
    /// This expression: registered for the group when it has none yet (ad hoc without a group).
    Expression(Expression),
}

/// One pull.
#[derive(Debug, Clone)]
pub struct PullArgs {
    /// The consumer group (empty: an ad-hoc read with its own expression).
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
    /// The first queue offset wanted.
    pub offset: u64,
    /// Most messages (clamped to the broker's `max_pull_messages`).
    pub max_messages: u32,
    /// Most record bytes the page may hold (the front door's frame budget).
    pub max_bytes: usize,
    /// Longest hold while nothing matches (clamped to the broker's `max_pull_wait_ms`).
    pub max_wait: Duration,
    /// Which messages.
    pub filter: PullFilter,
    /// The group member pulling, if the group is managed: a queue it does not own is refused.
    pub member: Option<MemberRef>,
}

/// Where a pull's scan got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Messages were found.
    Found,
    /// The offset is the queue's end: nothing new before the wait ran out.
    NoNewMessage,
    /// Entries were scanned and none matched; continue at `next_offset`.
    NoMatchedMessage,
    /// The offset is below the oldest retained message; continue at `next_offset`.
    OffsetMoved,
    /// The offset is past the queue's end; continue at `next_offset`.
    OffsetIllegal,
}

/// A page of a queue: where the scan got to and the matching records.
#[derive(Debug)]
pub struct PullPage {
    /// How the scan ended.
    pub status: PullStatus,
    /// The offset to pull from next.
    pub next_offset: u64,
    /// The queue's first retained offset.
    pub min_offset: u64,
    /// The queue's end.
    pub max_offset: u64,
    /// The matching records, in queue order.
    pub records: Vec<StoredRecord>,
}

impl Core {
    /// A filtered page of a queue, held up to the wait while nothing new matches.
    pub async fn pull(self: &Arc<Self>, args: PullArgs) -> Result<PullPage, CoreError> {
        self.readable_queue(&args.topic, args.queue_id)?;
        let mut membership = self.membership_watch();
        self.fence_pull(&args)?;
        let mut registered = self.resolve_subscription(&args).await?;
        let max = args.max_messages.clamp(1, self.config.max_pull_messages) as usize;
        let wait = args.max_wait.min(Duration::from_millis(self.config.max_pull_wait_ms.into()));
        let deadline = tokio::time::Instant::now() + wait;
        let mut shutting_down = self.shutting_down();
        let mut offset = args.offset;
        let mut scanned = 0;
        loop {
            let notify = self.arrivals.watch(&args.topic, args.queue_id);
            let arrived = notify.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let page = if registered.plugin.is_some() {
                // Plugin calls block for up to their CPU budget: keep them off the async workers.
                let (args, registered) = (args.clone(), registered.clone());
                self.blocking(move |core| core.read_page(&args, offset, max, &registered)).await?
            } else {
                self.read_page(&args, offset, max, &registered)?
            };
            scanned += page.next_offset.saturating_sub(offset);
            let out_of_time = tokio::time::Instant::now() >= deadline || *shutting_down.borrow();
            match page.status {
                // Nothing matched in this stretch: scan on while there is time, then
                // answer with the next offset so the consumer never re-reads the stretch.
                PullStatus::NoMatchedMessage if !out_of_time && scanned < MAX_SCAN_PER_PULL => {
                    offset = page.next_offset;
                    tokio::task::yield_now().await;
                }
                // Held: only a message that passes the filter answers the pull.
                PullStatus::NoNewMessage if !out_of_time => {
                    tokio::select! {
                        _ = &mut arrived => {}
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = shutting_down.changed() => {}
                        _ = membership.changed(), if args.member.is_some() => {}
                    }
                    // Deleted, or taken from this member, while held: it learns now.
                    self.readable_queue(&args.topic, args.queue_id)?;
                    self.fence_pull(&args)?;
                    // The group's subscription may have been replaced meanwhile.
                    if args.filter == PullFilter::Subscribed {
                        registered = self.resolve_subscription(&args).await?;
                    }
                }
                // Skipped to the end without a match: report how far the scan got.
                PullStatus::NoNewMessage if offset != args.offset => {
                    return Ok(PullPage { status: PullStatus::NoMatchedMessage, ..page });
                }
                _ => return Ok(page),
            }
        }
    }

    /// A member's pull must be for a queue it owns in its generation.
    fn fence_pull(&self, args: &PullArgs) -> Result<(), CoreError> {
        match &args.member {
            Some(member) => self.fence(&args.group, member, &args.topic, args.queue_id, false).map(drop),
            None => Ok(()),
        }
    }

    /// The subscription a pull filters with: the group's registered one, or the
    /// pull's own expression, registered for the group (an ad-hoc one without a group).
    async fn resolve_subscription(self: &Arc<Self>, args: &PullArgs) -> Result<Registered, CoreError> {
        let expression = match &args.filter {
            PullFilter::Subscribed => {
                return self.groups.subscription(&args.group, &args.topic).ok_or_else(|| {
                    CoreError::SubscriptionNotFound { group: args.group.clone(), topic: args.topic.clone() }
                });
            }
            PullFilter::Expression(expression) => expression.clone(),
        };
        if args.group.is_empty() {
            let subscription = Subscription::compile(expression, TrafficRole::Production, &self.index_shape)?;
            return Ok(Registered {
                subscription: Arc::new(subscription),
                version: 0,
                stats: Arc::default(),
                plugin: None,
            });
        }
        // The same expression as the registered subscription keeps it (and its plugin).
        if let Some(registered) = self.groups.subscription(&args.group, &args.topic)
            && *registered.subscription.expression() == expression
        {
            return Ok(registered);
        }
        let (group, topic) = (args.group.clone(), args.topic.clone());
        self.blocking(move |core| core.groups.subscribe(&group, &topic, expression, None)).await
    }

    /// One page of a queue, filtered and capped to `max` messages and the pull's byte budget.
    fn read_page(
        &self,
        args: &PullArgs,
        offset: u64,
        max: usize,
        registered: &Registered,
    ) -> Result<PullPage, CoreError> {
        let (topic, queue_id) = (args.topic.as_str(), args.queue_id);
        let (min_offset, max_offset) = self.store.queue_offsets(topic, queue_id);
        let empty = |status, next_offset| PullPage { status, next_offset, min_offset, max_offset, records: Vec::new() };
        if offset < min_offset {
            return Ok(empty(PullStatus::OffsetMoved, min_offset));
        }
        if offset > max_offset {
            return Ok(empty(PullStatus::OffsetIllegal, max_offset));
        }
        if offset == max_offset {
            return Ok(empty(PullStatus::NoNewMessage, offset));
        }
        let sub = &registered.subscription;
        // A subscription to everything skips only shadow traffic: read little ahead.
        let chunk =
            if *sub.expression() == Expression::All { max.saturating_mul(2) } else { FILTER_SCAN_ENTRIES.max(max) };
        let blooms = self.blooms.as_ref().and_then(|index| index.queue(topic, queue_id));
        let mut bytes_left = args.max_bytes;
        let mut page = empty(PullStatus::Found, offset);
        let mut reader = self.store.entry_reader();
        // Fill the page from as many chunks as it takes, within a scan budget.
        while page.next_offset < max_offset && page.records.len() < max && page.next_offset - offset < PAGE_SCAN_ENTRIES
        {
            let entries = match self.store.queue_entries(topic, queue_id, page.next_offset, chunk) {
                Ok(entries) => entries,
                Err(err) if page.records.is_empty() => return Err(err.into()),
                Err(_) => break, // deliver what was read; the next pull reports the failure
            };
            let path = ReadPath {
                subscription: sub,
                stats: &registered.stats,
                blooms: blooms.as_deref(),
                prefilter: self.config.prefilter,
                shadow_property: &self.config.shadow_property,
                limits: PageLimits { max_messages: max - page.records.len(), max_bytes: bytes_left },
            };
            let end = (page.next_offset + chunk as u64).min(max_offset);
            let result = path.run(page.next_offset, end, &entries, |entry| match reader.read(entry) {
                Ok(record) => Ok(Some(record)),
                // Retention removed the segment under us: skip, as RocketMQ does.
                Err(ReadError::OffsetOutOfRange(_)) => Ok(None),
                Err(err) => Err(err),
            });
            let filtered = match result {
                Ok(filtered) => filtered,
                Err(err) if page.records.is_empty() => return Err(err.into()),
                // Deliver what was read; the next pull reports the failure.
                Err(_) => break,
            };
            let full = filtered.next_offset < end;
            page.next_offset = filtered.next_offset.min(max_offset);
            bytes_left = bytes_left.saturating_sub(filtered.records.iter().map(|r| r.bytes().len()).sum());
            page.records.extend(filtered.records);
            if full {
                break;
            }
        }
        if page.records.is_empty() {
            page.status = PullStatus::NoMatchedMessage;
        }
        Ok(page)
    }
}
