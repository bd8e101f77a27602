//! Broker status: what `weir status` shows.
//!
//! The status is a list of numbered fields rather than a fixed struct, so brokers can
//! report more without a protocol version change: decoders skip field ids they do not
//! know and leave fields that are absent at their default.

use bytes::{Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::group::SubscriptionStats;
use crate::wire::{Reader, Wire, Writer};

/// When the broker acknowledges a send relative to fsync.
///
/// Format: `u8`: 0 async, 1 sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FlushMode {
    /// Acknowledge once in the page cache; flush periodically.
    #[default]
    Async,
    /// Acknowledge after the fsync that covers the message (group commit).
    Sync,
}

/// What the broker's store can do now.
///
/// Format: `u8`: 0 ok, 1 read_only, 2 failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StoreState {
    /// Reads and writes are served.
    #[default]
    Ok,
    /// Reads are served; writes are refused until the cause clears by itself.
    ReadOnly,
    /// A flush failed: reads are served, writes need a restart.
    Failed,
}

impl StoreState {
    /// `ok`, `read_only` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StoreState::Ok => "ok",
            StoreState::ReadOnly => "read_only",
            StoreState::Failed => "failed",
        }
    }
}

/// The store's health and disk figures, for operators and scripts.
///
/// Format: `u8` state ([`StoreState`]), string reason, `u32` disk_usage_ppm,
/// then `u64` each: disk_free_bytes, dispatch_lag_bytes, store_bytes,
/// consume_queue_bytes, index_bytes, queues, mapped_queue_files,
/// mapped_queue_files_limit, queue_file_evictions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StoreStatus {
    /// Whether the store takes writes.
    pub state: StoreState,
    /// Why it does not (empty when ok).
    pub reason: String,
    /// Usage of the data directory's file system, in parts per million.
    pub disk_usage_ppm: u32,
    /// Bytes free on that file system.
    pub disk_free_bytes: u64,
    /// Bytes of CommitLog not yet in the ConsumeQueues.
    pub dispatch_lag_bytes: u64,
    /// Bytes of every file the store writes.
    pub store_bytes: u64,
    /// Bytes of ConsumeQueue files.
    pub consume_queue_bytes: u64,
    /// Bytes of the key index and the bloom index.
    pub index_bytes: u64,
    /// Number of ConsumeQueues.
    pub queues: u64,
    /// Per-queue files mapped now.
    pub mapped_queue_files: u64,
    /// The most per-queue files mapped at once.
    pub mapped_queue_files_limit: u64,
    /// Per-queue files closed so far to stay within that limit.
    pub queue_file_evictions: u64,
}

impl Wire for StoreStatus {
    const MIN_LEN: usize = 1 + 4 + 4 + 9 * 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(self.state as u8);
        w.str("status.store.reason", &self.reason)?;
        w.u32(self.disk_usage_ppm);
        for n in [
            self.disk_free_bytes,
            self.dispatch_lag_bytes,
            self.store_bytes,
            self.consume_queue_bytes,
            self.index_bytes,
            self.queues,
            self.mapped_queue_files,
            self.mapped_queue_files_limit,
            self.queue_file_evictions,
        ] {
            w.u64(n);
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let state = match r.u8("status.store.state")? {
            0 => StoreState::Ok,
            1 => StoreState::ReadOnly,
            2 => StoreState::Failed,
            state => return Err(DecodeError::InvalidValue { field: "status.store.state", value: state.into() }),
        };
        Ok(StoreStatus {
            state,
            reason: r.str("status.store.reason")?,
            disk_usage_ppm: r.u32("status.store.disk_usage_ppm")?,
            disk_free_bytes: r.u64("status.store.disk_free_bytes")?,
            dispatch_lag_bytes: r.u64("status.store.dispatch_lag_bytes")?,
            store_bytes: r.u64("status.store.store_bytes")?,
            consume_queue_bytes: r.u64("status.store.consume_queue_bytes")?,
            index_bytes: r.u64("status.store.index_bytes")?,
            queues: r.u64("status.store.queues")?,
            mapped_queue_files: r.u64("status.store.mapped_queue_files")?,
            mapped_queue_files_limit: r.u64("status.store.mapped_queue_files_limit")?,
            queue_file_evictions: r.u64("status.store.queue_file_evictions")?,
        })
    }
}

/// Delayed messages: pending timers and what delivery did since the broker started.
///
/// Format: `u64` each: pending, next_due_ms (0: none), delivered, cancelled, dropped,
/// lost, stale, lateness_max_ms, lateness_mean_ms, log_bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TimerStatus {
    /// Delayed messages waiting (a cancelled one counts until its due tick is read).
    pub pending: u64,
    /// When the next one is due, Unix ms (at most a tick early); 0 for none.
    pub next_due_ms: u64,
    /// Delivered to their topics since the broker started.
    pub delivered: u64,
    /// Cancelled since the broker started.
    pub cancelled: u64,
    /// Dropped at their due time because their topic had been deleted.
    pub dropped: u64,
    /// Dropped because their stored record was gone (retention) or unreadable.
    pub lost: u64,
    /// Stale timers skipped (their record was cut by a crash before it was acknowledged).
    pub stale: u64,
    /// The latest a message was taken for delivery after its due time, in ms.
    pub lateness_max_ms: u64,
    /// The mean of the same.
    pub lateness_mean_ms: u64,
    /// Bytes of the timer log on disk.
    pub log_bytes: u64,
}

impl Wire for TimerStatus {
    const MIN_LEN: usize = 10 * 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        for n in [
            self.pending,
            self.next_due_ms,
            self.delivered,
            self.cancelled,
            self.dropped,
            self.lost,
            self.stale,
            self.lateness_max_ms,
            self.lateness_mean_ms,
            self.log_bytes,
        ] {
            w.u64(n);
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(TimerStatus {
            pending: r.u64("status.timers.pending")?,
            next_due_ms: r.u64("status.timers.next_due_ms")?,
            delivered: r.u64("status.timers.delivered")?,
            cancelled: r.u64("status.timers.cancelled")?,
            dropped: r.u64("status.timers.dropped")?,
            lost: r.u64("status.timers.lost")?,
            stale: r.u64("status.timers.stale")?,
            lateness_max_ms: r.u64("status.timers.lateness_max_ms")?,
            lateness_mean_ms: r.u64("status.timers.lateness_mean_ms")?,
            log_bytes: r.u64("status.timers.log_bytes")?,
        })
    }
}

/// The broker's state, for operators.
///
/// Built with `BrokerStatus::default()` and field assignment, so fields added later do
/// not break callers.
///
/// Format: `u32` count × (`u16` field id, `u32` length, value), values encoded as
/// elsewhere: 1 version (string), 2 uptime_ms (`u64`), 3 data_dir (string), 4 flush_mode
/// ([`FlushMode`]), 5 topic_count (`u32`), 6 commitlog_size_bytes (`u64`),
/// 7 commitlog_max_offset (`u64`), 8 connections (`u32`), 9 subscriptions
/// (list\<[`SubscriptionStats`]\>), 10 store ([`StoreStatus`]), 11 flushes (`u64`),
/// 12 timers ([`TimerStatus`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerStatus {
    /// The broker's software version.
    pub version: String,
    /// Time since the broker started, in milliseconds.
    pub uptime_ms: u64,
    /// The broker's data directory.
    pub data_dir: String,
    /// The broker's flush mode.
    pub flush_mode: FlushMode,
    /// Number of topics, system topics included.
    pub topic_count: u32,
    /// Bytes of CommitLog on disk.
    pub commitlog_size_bytes: u64,
    /// The CommitLog offset the next message will be written at.
    pub commitlog_max_offset: u64,
    /// Open client connections.
    pub connections: u32,
    /// Every registered subscription with its filter statistics.
    pub subscriptions: Vec<SubscriptionStats>,
    /// The store's health and disk figures.
    pub store: StoreStatus,
    /// CommitLog flushes (fsyncs) since the broker started: with the messages sent,
    /// how many messages each fsync covered.
    pub flushes: u64,
    /// Delayed messages: pending timers and deliveries.
    pub timers: TimerStatus,
}

const VERSION: u16 = 1;
const UPTIME_MS: u16 = 2;
const DATA_DIR: u16 = 3;
const FLUSH_MODE: u16 = 4;
const TOPIC_COUNT: u16 = 5;
const COMMITLOG_SIZE_BYTES: u16 = 6;
const COMMITLOG_MAX_OFFSET: u16 = 7;
const CONNECTIONS: u16 = 8;
const SUBSCRIPTIONS: u16 = 9;
const STORE: u16 = 10;
const FLUSHES: u16 = 11;
const TIMERS: u16 = 12;

/// One numbered status field with its still-encoded value.
///
/// Format: `u16` id, `u32`-length value.
struct StatusField {
    id: u16,
    value: Bytes,
}

impl StatusField {
    /// A field whose value `write` encodes.
    fn new(id: u16, write: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>) -> Result<Self, EncodeError> {
        let mut value = BytesMut::new();
        write(&mut Writer::new(&mut value))?;
        Ok(StatusField { id, value: value.freeze() })
    }
}

impl Wire for StatusField {
    const MIN_LEN: usize = 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(self.id);
        w.bytes("status.field", &self.value)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(StatusField { id: r.u16("status.field")?, value: r.bytes("status.field")? })
    }
}

impl Wire for BrokerStatus {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let fields = [
            StatusField::new(VERSION, |w| w.str("status.version", &self.version))?,
            StatusField::new(UPTIME_MS, |w| {
                w.u64(self.uptime_ms);
                Ok(())
            })?,
            StatusField::new(DATA_DIR, |w| w.str("status.data_dir", &self.data_dir))?,
            StatusField::new(FLUSH_MODE, |w| {
                w.u8(self.flush_mode as u8);
                Ok(())
            })?,
            StatusField::new(TOPIC_COUNT, |w| {
                w.u32(self.topic_count);
                Ok(())
            })?,
            StatusField::new(COMMITLOG_SIZE_BYTES, |w| {
                w.u64(self.commitlog_size_bytes);
                Ok(())
            })?,
            StatusField::new(COMMITLOG_MAX_OFFSET, |w| {
                w.u64(self.commitlog_max_offset);
                Ok(())
            })?,
            StatusField::new(CONNECTIONS, |w| {
                w.u32(self.connections);
                Ok(())
            })?,
            StatusField::new(SUBSCRIPTIONS, |w| w.list("status.subscriptions", &self.subscriptions))?,
            StatusField::new(STORE, |w| self.store.encode(w))?,
            StatusField::new(FLUSHES, |w| {
                w.u64(self.flushes);
                Ok(())
            })?,
            StatusField::new(TIMERS, |w| self.timers.encode(w))?,
        ];
        w.list("status.fields", &fields)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let mut status = BrokerStatus::default();
        for field in r.list::<StatusField>("status.fields")? {
            let mut value = Reader::new(field.value);
            match field.id {
                VERSION => status.version = value.str("status.version")?,
                UPTIME_MS => status.uptime_ms = value.u64("status.uptime_ms")?,
                DATA_DIR => status.data_dir = value.str("status.data_dir")?,
                FLUSH_MODE => {
                    status.flush_mode = match value.u8("status.flush_mode")? {
                        0 => FlushMode::Async,
                        1 => FlushMode::Sync,
                        mode => {
                            return Err(DecodeError::InvalidValue { field: "status.flush_mode", value: mode.into() });
                        }
                    }
                }
                TOPIC_COUNT => status.topic_count = value.u32("status.topic_count")?,
                COMMITLOG_SIZE_BYTES => {
                    status.commitlog_size_bytes = value.u64("status.commitlog_size_bytes")?;
                }
                COMMITLOG_MAX_OFFSET => {
                    status.commitlog_max_offset = value.u64("status.commitlog_max_offset")?;
                }
                CONNECTIONS => status.connections = value.u32("status.connections")?,
                SUBSCRIPTIONS => status.subscriptions = value.list("status.subscriptions")?,
                STORE => status.store = StoreStatus::decode(&mut value)?,
                FLUSHES => status.flushes = value.u64("status.flushes")?,
                TIMERS => status.timers = TimerStatus::decode(&mut value)?,
                _unknown => continue,
            }
            value.finish()?;
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{arb_broker_status, check_request, check_response, frame};
    use crate::{FrameKind, Request, RequestKind, Response};

    fn status_payload(fields: &[(u16, &[u8])]) -> Vec<u8> {
        let mut payload = (fields.len() as u32).to_le_bytes().to_vec();
        for (id, value) in fields {
            payload.extend_from_slice(&id.to_le_bytes());
            payload.extend_from_slice(&(value.len() as u32).to_le_bytes());
            payload.extend_from_slice(value);
        }
        payload
    }

    fn decode_status(payload: &[u8]) -> Result<Response, DecodeError> {
        Response::decode(frame(FrameKind::Response(RequestKind::Status), payload))
    }

    #[test]
    fn unknown_fields_are_skipped_and_missing_ones_default() {
        let payload =
            status_payload(&[(99, b"from a newer broker"), (CONNECTIONS, &7u32.to_le_bytes()), (FLUSH_MODE, &[1])]);
        let expected = BrokerStatus { connections: 7, flush_mode: FlushMode::Sync, ..BrokerStatus::default() };
        assert_eq!(decode_status(&payload), Ok(Response::Status(Box::new(expected))));
    }

    #[test]
    fn known_fields_must_have_their_exact_size() {
        let payload = status_payload(&[(UPTIME_MS, &[0; 9])]);
        assert_eq!(decode_status(&payload), Err(DecodeError::TrailingBytes { count: 1 }));
        let payload = status_payload(&[(TOPIC_COUNT, &[0; 3])]);
        assert_eq!(decode_status(&payload), Err(DecodeError::Truncated { field: "status.topic_count" }));
        let payload = status_payload(&[(FLUSH_MODE, &[2])]);
        assert_eq!(decode_status(&payload), Err(DecodeError::InvalidValue { field: "status.flush_mode", value: 2 }));
    }

    #[test]
    fn golden_status_request_frame() {
        let golden: &[u8] = &[b'W', b'E', b'I', b'R', 1, 0, 0x01, 0x07, 0, 0, 0, 0];
        check_request(&Request::Status, Some(golden)).unwrap();
    }

    proptest! {
        #[test]
        fn status_response_round_trips(status in arb_broker_status()) {
            check_response(&Response::Status(Box::new(status)), None)?;
        }
    }
}
