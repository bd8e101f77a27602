//! Delayed delivery (SPEC §9, issue 18 §1) on the persistent timer `weir-timer`.
//!
//! The flow, RocketMQ 5's:
//!
//! 1. **Send** (`core::send`): a message due later is appended, on the normal append
//!    path (durable under sync flush before its ack), to the system topic
//!    [`TIMER_TOPIC`] queue 0, its real topic, queue and due time in reserved
//!    properties ([`REAL_TOPIC`], [`REAL_QUEUE`], [`DELIVER_AT`]). Its message id is
//!    the id to cancel it with.
//! 2. **Enqueue** ([`Timers`] is a `DispatchHook`): the dispatcher files a timer for
//!    each `%TIMER%` record (due time from its property, payload = its CommitLog offset
//!    and size). The timer store is synced and checkpointed by the hook's `flush`,
//!    before each store checkpoint, so the store's replay after a crash starts no later
//!    than the timers on disk; records below the timer store's `payload_end` are not
//!    filed again, so the replay adds no duplicate.
//! 3. **Deliver** (`deliver`): the `weir-timer` thread wakes every half tick, takes the
//!    timers due, reads their records, appends each to its real topic and queue (tag,
//!    keys, body, user properties and born time intact; reserved properties removed),
//!    and once that append is durable (under sync flush) commits the delivery.
//! 4. **Cancel** ([`Timers::cancel`]): by the `%TIMER%` record's message id: a cancel
//!    record for its payload under its due tick.
//!
//! The timer store is opened at start if `<data_dir>/timer/` exists, else created by
//! the first delayed message: a broker that never delays pays nothing for the wheel
//! (32 bytes a slot, 2 × `max_delay_ms / timer_precision_ms` slots).
//!
//! Delivery is at least once: after a crash, ticks returned but not committed are
//! delivered again. A timer never fires early: the record it points at must be a
//! `%TIMER%` record due exactly when the timer is (after a CommitLog cut, a timer may
//! point at a newer record at the same offset; it is dropped as stale).

mod deliver;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use weir_storage::{DispatchHook, Dispatched, RecordView};
use weir_timer::{CancelError, Payload, TimerConfig, TimerStore};

pub(crate) use deliver::DeliveryThread;

/// The system topic delayed messages wait in (queue 0), hidden from users.
pub const TIMER_TOPIC: &str = "%TIMER%";
/// Properties starting with this are reserved for the broker; sends carrying one are refused.
pub const RESERVED_PREFIX: &str = "__weir_";
/// Reserved property: the topic a delayed message is delivered to.
pub const REAL_TOPIC: &str = "__weir_real_topic";
/// Reserved property: the queue a delayed message is delivered to.
pub const REAL_QUEUE: &str = "__weir_real_queue";
/// Reserved property: when a delayed message is due, Unix ms.
pub const DELIVER_AT: &str = "__weir_deliver_at_ms";

/// Most wheel slots the broker creates (32 MiB of wheel); longer windows roll.
const MAX_WHEEL_SLOTS: u64 = 1 << 20;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(weir_storage::now_ms()).unwrap_or(0)
}

/// Where a `%TIMER%` record goes and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The real topic.
    pub topic: &'a str,
    /// The real queue.
    pub queue_id: u32,
    /// When it is due, Unix ms.
    pub deliver_at_ms: u64,
}

/// The target of a `%TIMER%` record, or `None` when its reserved properties are missing
/// or malformed (never written by this broker).
pub fn target<'a>(view: &RecordView<'a>) -> Option<Target<'a>> {
    Some(Target {
        topic: view.property(REAL_TOPIC)?,
        queue_id: view.property(REAL_QUEUE)?.parse().ok()?,
        deliver_at_ms: view.property(DELIVER_AT)?.parse().ok()?,
    })
}

/// `message` as it waits in [`TIMER_TOPIC`] until `deliver_at_ms`.
pub fn to_timer_record(mut message: weir_storage::Message, deliver_at_ms: u64) -> weir_storage::Message {
    let topic = std::mem::replace(&mut message.topic, TIMER_TOPIC.to_owned());
    message.properties.push((REAL_TOPIC.to_owned(), topic));
    message.properties.push((REAL_QUEUE.to_owned(), message.queue_id.to_string()));
    message.properties.push((DELIVER_AT.to_owned(), deliver_at_ms.to_string()));
    message.queue_id = 0;
    message
}

/// The message a `%TIMER%` record delivers to `topic`/`queue_id`: its tag, keys, body,
/// flags, born time and host, and its properties without the timer's (a retry copy's
/// reserved properties stay).
pub fn to_real_message(view: &RecordView<'_>, topic: &str, queue_id: u32) -> weir_storage::Message {
    weir_storage::Message {
        topic: topic.to_owned(),
        queue_id,
        tag: view.tag().to_owned(),
        keys: view.keys().map(str::to_owned).collect(),
        properties: view
            .properties()
            .filter(|(name, _)| ![REAL_TOPIC, REAL_QUEUE, DELIVER_AT].contains(name))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        body: bytes::Bytes::copy_from_slice(view.body()),
        born_timestamp_ms: view.born_timestamp_ms(),
        born_host: view.born_host(),
        flags: view.flags(),
    }
}

/// Why a cancel was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelRefused {
    /// No timer for it waits: it was delivered (or is being delivered), or cancelled
    /// before its tick was read.
    #[error("it is no longer pending (due at {deliver_at_ms} ms): delivered or being delivered")]
    NotPending {
        /// When it was due.
        deliver_at_ms: u64,
    },
    /// It was cancelled before.
    #[error("it is already cancelled")]
    AlreadyCancelled,
    /// The timer store failed.
    #[error("the timer store failed: {0}")]
    Failed(String),
}

/// What the timers have done since the broker started, and where they stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimerStatus {
    /// Delayed messages waiting (a cancelled one counts until its due tick is read).
    pub pending: u64,
    /// The next due time, Unix ms (the start of its tick when not yet read).
    pub next_due_ms: Option<u64>,
    /// Delayed messages delivered to their topics.
    pub delivered: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Dropped because their topic was deleted meanwhile.
    pub dropped: u64,
    /// Dropped because their CommitLog record was gone (retention) or unreadable.
    pub lost: u64,
    /// Stale timers skipped (pointing at a record cut by a crash).
    pub stale: u64,
    /// Latest a timer was taken after its due time, since start (ms).
    pub lateness_max_ms: u64,
    /// Mean of the same.
    pub lateness_mean_ms: u64,
    /// Bytes of the timer log on disk.
    pub log_bytes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    cancelled: AtomicU64,
    dropped: AtomicU64,
    lost: AtomicU64,
    stale: AtomicU64,
}

/// The timer store behind a mutex shared by the dispatcher (the hook, filing timers),
/// the delivery thread and cancels, plus what they need to agree on.
#[derive(Debug)]
pub struct Timers {
    dir: PathBuf,
    precision_ms: u64,
    max_delay_ms: u64,
    store: Mutex<Option<TimerStore>>,
    /// `%TIMER%` records below this CommitLog offset have their timer filed.
    enqueued_end: AtomicU64,
    /// Records filed or cancelled since the last checkpoint.
    dirty: AtomicBool,
    counters: Counters,
}

impl Timers {
    /// Timers kept in `<data_dir>/timer/`, with `precision_ms` ticks for a new store
    /// (an existing one keeps its own) and a wheel spanning twice `max_delay_ms`.
    pub fn new(data_dir: &Path, precision_ms: u64, max_delay_ms: u64) -> Self {
        Self {
            dir: data_dir.join("timer"),
            precision_ms,
            max_delay_ms,
            store: Mutex::new(None),
            enqueued_end: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    /// The tick length in use: the open store's, else the configured one.
    pub fn precision_ms(&self) -> u64 {
        self.store.lock().as_ref().map_or(self.precision_ms, |s| s.geometry().precision_ms())
    }

    /// `%TIMER%` records below this CommitLog offset have their timers filed.
    pub fn enqueued_end(&self) -> u64 {
        self.enqueued_end.load(Ordering::Acquire)
    }

    /// Opens the store: with its own geometry when it exists (a changed
    /// `timer_precision_ms` applies to new stores only), else a new one.
    fn open(&self) -> std::io::Result<TimerStore> {
        let config = match TimerStore::stored_meta(&self.dir)? {
            Some(meta) => {
                if meta.precision_ms != self.precision_ms {
                    tracing::warn!(
                        configured = self.precision_ms,
                        stored = meta.precision_ms,
                        dir = %self.dir.display(),
                        "timer_precision_ms differs from the timer store's; its own tick length stays"
                    );
                }
                TimerConfig {
                    precision_ms: meta.precision_ms,
                    max_delay_ms: u64::MAX,
                    wheel_slots: Some(meta.slots),
                    segment_records: meta.segment_records,
                }
            }
            None => {
                let slots = self.max_delay_ms.div_ceil(self.precision_ms).saturating_mul(2).clamp(4, MAX_WHEEL_SLOTS);
                // The broker checks the maximum delay at send time; the store files any
                // due time (a later one rolls), so a lowered maximum never refuses a timer
                // already acknowledged.
                TimerConfig {
                    precision_ms: self.precision_ms,
                    max_delay_ms: u64::MAX,
                    wheel_slots: Some(slots),
                    ..TimerConfig::default()
                }
            }
        };
        let (store, report) = TimerStore::open(&self.dir, &config, now_ms()).map_err(std::io::Error::other)?;
        tracing::info!(
            pending = report.pending,
            replayed = report.replayed,
            truncated = report.truncated,
            rebuilt = ?report.wheel_rebuilt,
            payload_end = store.payload_end(),
            "timer store open"
        );
        Ok(store)
    }

    /// Runs `f` on the store, opening (creating) it first if needed.
    fn with_store<T>(&self, f: impl FnOnce(&mut TimerStore) -> T) -> std::io::Result<T> {
        let mut slot = self.store.lock();
        if slot.is_none() {
            *slot = Some(self.open()?);
        }
        Ok(f(slot.as_mut().expect("opened above")))
    }

    /// Runs `f` on the store if it is open.
    fn with_open<T>(&self, f: impl FnOnce(&mut TimerStore) -> T) -> Option<T> {
        self.store.lock().as_mut().map(f)
    }

    /// Cancels the delayed message whose `%TIMER%` record is `payload`, due at
    /// `deliver_at_ms`, and makes the cancel durable.
    pub fn cancel(&self, payload: Payload, deliver_at_ms: u64) -> Result<(), CancelRefused> {
        let outcome = self.with_store(|store| {
            store.cancel_payload(payload, deliver_at_ms)?;
            store.sync().map_err(CancelError::from)
        });
        match outcome {
            Ok(Ok(())) => {
                self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(CancelError::NotPending { due_ms })) => Err(CancelRefused::NotPending { deliver_at_ms: due_ms }),
            Ok(Err(CancelError::PayloadCancelled { .. })) => Err(CancelRefused::AlreadyCancelled),
            Ok(Err(err)) => Err(CancelRefused::Failed(err.to_string())),
            Err(err) => Err(CancelRefused::Failed(err.to_string())),
        }
    }

    /// Where the timers stand.
    pub fn status(&self) -> TimerStatus {
        let stats = self.with_open(|store| store.stats());
        let c = &self.counters;
        TimerStatus {
            pending: stats.as_ref().map_or(0, |s| s.pending),
            next_due_ms: stats.as_ref().and_then(|s| s.next_due_ms),
            delivered: c.delivered.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            lateness_max_ms: stats.as_ref().map_or(0, |s| s.lateness_max_ms),
            lateness_mean_ms: stats.as_ref().map_or(0, |s| s.lateness_mean_ms),
            log_bytes: stats.as_ref().map_or(0, |s| s.log_bytes),
        }
    }

    /// Checkpoints and closes the store (releasing its directory lock), if open.
    pub fn close(&self) -> std::io::Result<()> {
        match self.store.lock().take() {
            Some(store) => store.close().map_err(std::io::Error::other),
            None => Ok(()),
        }
    }
}

impl DispatchHook for Timers {
    /// Files the timer of a `%TIMER%` record (once: records below the store's
    /// `payload_end` were filed before a crash).
    fn dispatch(&self, dispatched: &Dispatched<'_>) -> std::io::Result<()> {
        let view = dispatched.record.view();
        if view.topic() != TIMER_TOPIC {
            return Ok(());
        }
        let offset = view.commitlog_offset();
        let end = offset + view.len() as u64;
        if offset < self.enqueued_end() {
            return Ok(());
        }
        let Some(target) = target(&view) else {
            tracing::warn!(offset, "a %TIMER% record without its delivery properties: skipped");
            self.enqueued_end.store(end, Ordering::Release);
            return Ok(());
        };
        let payload = Payload { commitlog_offset: offset, size: dispatched.entry.size };
        self.with_store(|store| store.add(now_ms(), target.deliver_at_ms, payload))?.map_err(std::io::Error::other)?;
        self.dirty.store(true, Ordering::Release);
        self.enqueued_end.store(end, Ordering::Release);
        Ok(())
    }

    /// Syncs the timer log and checkpoints the wheel, when anything was filed since.
    fn flush(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let done = self.with_open(|store| store.checkpoint()).transpose().map_err(std::io::Error::other);
        if done.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        done.map(|_| ())
    }

    /// Opens an existing timer store and learns how far its timers reach; after a cut,
    /// records from `valid_end` on are new and get timers (older timers pointing there
    /// are stale and skipped at delivery).
    fn recover(&self, valid_end: u64, cut: bool) -> std::io::Result<Option<u64>> {
        if !self.dir.join("timer.meta").exists() {
            return Ok(None);
        }
        let store = self.open()?;
        let mut end = store.payload_end();
        if cut && valid_end < end {
            tracing::warn!(valid_end, payload_end = end, "the CommitLog was cut below timers' records");
            end = valid_end;
        }
        self.enqueued_end.store(end, Ordering::Release);
        *self.store.lock() = Some(store);
        // The store's checkpoint only advances past what `flush` made durable: its
        // replay covers every timer the crash may have taken.
        Ok(None)
    }

    fn disk_bytes(&self) -> u64 {
        self.with_open(|store| store.stats().log_bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn a_timer_record_carries_its_target_and_delivers_the_message_unchanged() {
        let message = weir_storage::Message {
            topic: "orders".into(),
            queue_id: 3,
            tag: "created".into(),
            keys: vec!["k1".into(), "k2".into()],
            properties: vec![("region".into(), "SH".into())],
            body: bytes::Bytes::from_static(b"hello"),
            born_timestamp_ms: 1234,
            born_host: SocketAddr::from(([10, 0, 0, 1], 4000)),
            flags: 0,
        };
        let record = to_timer_record(message.clone(), 99_000);
        assert_eq!((record.topic.as_str(), record.queue_id), (TIMER_TOPIC, 0));
        let mut buf = vec![0u8; weir_storage::record::encoded_len(&record, 1 << 20).expect("valid")];
        let placement = weir_storage::record::Placement { queue_offset: 0, commitlog_offset: 0, store_timestamp_ms: 5 };
        weir_storage::record::encode(&mut buf, &record, placement);
        let view = RecordView::parse(&buf).expect("parses");
        assert_eq!(target(&view), Some(Target { topic: "orders", queue_id: 3, deliver_at_ms: 99_000 }));
        assert_eq!(to_real_message(&view, "orders", 3), message);
    }
}
