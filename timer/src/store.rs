//! [`TimerStore`]: the timer log, the wheel over it, delivery and its checkpoint.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use weir_storage::{EntryFile, MapBudget};

use crate::checkpoint::{Checkpoint, Meta};
use crate::config::{Geometry, TimerConfig};
use crate::error::{AddError, CancelError, CommitError, Corrupt, OpenError, TakeError, WriteError};
use crate::record::payload_end;
use crate::record::{self, Kind, NONE, Record};
use crate::wheel::{Conflict, Wheel};
use crate::{CheckpointState, DeliveryMark, Due, Payload, RecoveryReport, Taken, TimerId, TimerStats};

/// Distinguishes the openings of stores in this process, so a [`DeliveryMark`]
/// cannot be committed to another one.
static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// Records read per batch when scanning the log.
const SCAN_BATCH: usize = 4096;

/// A persistent timer: timers filed in an append-only timer log and indexed by a
/// timing wheel, delivered by [`take_due`](Self::take_due) as the clock passes them.
///
/// Time is passed in (ms since the epoch, or any monotonic origin the caller keeps):
/// the store reads no clock. It is used from one thread (`&mut self`); the broker
/// owns it from a task or behind a mutex.
#[derive(Debug)]
pub struct TimerStore {
    dir: PathBuf,
    geometry: Geometry,
    log: EntryFile,
    wheel: Wheel,
    _lock: File,
    instance: u64,
    /// Every timer filed under a tick before this one was delivered and committed:
    /// the durable checkpoint's value. Ticks from here on are live: their slots are
    /// never reclaimed, so a restart can read them again.
    committed_tick: u64,
    /// The tick being delivered (loaded in `current`) or next to be read.
    cursor: u64,
    /// The tick at `cursor`, read from its chain: timers not yet returned, in due order.
    current: Option<Current>,
    /// Timers returned since open: the sequence a [`DeliveryMark`] counts in.
    returned: u64,
    /// Ticks closed since the last commit: `(returned when closed, tick after it)`.
    closes: VecDeque<(u64, u64)>,
    /// Timer records in the chains of ticks not yet read.
    unread: u64,
    /// The latest tick each log segment's records are needed until (see [`final_tick`]).
    segment_ticks: BTreeMap<u64, u64>,
    /// The last log segment whose directory entry is known durable.
    synced_segment: Option<u64>,
    poisoned: bool,
    /// The furthest `commitlog_offset + size` of any timer filed (see [`Self::payload_end`]).
    payload_end: u64,
    /// Delivery statistics since open.
    lateness_max_ms: u64,
    lateness_sum_ms: u128,
    rolled: u64,
}

#[derive(Debug)]
struct Current {
    tick: u64,
    queue: BTreeMap<(u64, u64), Payload>,
}

/// Internal failure of filing a record.
enum FileError {
    Write(WriteError),
    Corrupt(Corrupt),
}

impl From<FileError> for AddError {
    fn from(err: FileError) -> Self {
        match err {
            FileError::Write(err) => AddError::Write(err),
            FileError::Corrupt(err) => AddError::Corrupt(err),
        }
    }
}

impl From<FileError> for CancelError {
    fn from(err: FileError) -> Self {
        match err {
            FileError::Write(err) => CancelError::Write(err),
            FileError::Corrupt(err) => CancelError::Corrupt(err),
        }
    }
}

fn conflict(Conflict { tick, held }: Conflict, position: u64) -> Corrupt {
    Corrupt { position, reason: format!("tick {tick} maps to the wheel slot of live tick {held}") }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_owned();
    move |source| WriteError::Io { what, path, source }
}

fn open_io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpenError {
    let path = path.to_owned();
    move |source| OpenError::Io { what, path, source }
}

/// The last tick a record is needed until: a rolled record's timer lands on its due
/// tick in the end; any other record is read at the tick it is filed under.
fn final_tick(geometry: &Geometry, record: &Record) -> u64 {
    if record.rolled { geometry.tick(record.due_ms).max(record.tick) } else { record.tick }
}

/// Calls `f(position, decoded)` for the log's records in `[from, to)`, in order, until it returns false.
fn scan_records(
    log: &EntryFile,
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, Result<Record, record::RecordError>) -> bool,
) -> std::io::Result<()> {
    let mut at = from;
    while at < to {
        let batch = (to - at).min(SCAN_BATCH as u64) as usize;
        let mut go_on = true;
        let mut next = at;
        log.scan(at, batch, |position, bytes| {
            if go_on {
                go_on = f(position, Record::decode(bytes));
                next = position + 1;
            }
        })?;
        if !go_on || next == at {
            return Ok(()); // stopped, or the log ends early (a missing file)
        }
        at = next;
    }
    Ok(())
}

impl TimerStore {
    /// Opens (or creates) the timer store in `dir` and recovers it: the timer log's
    /// tail after the checkpoint is verified and cut at the first invalid record, and
    /// the wheel is brought up to the log's end (replayed from the checkpoint, or
    /// rebuilt from the whole log when its file is missing or damaged). `now_ms` sets
    /// where a new store's wheel starts.
    pub fn open(dir: impl AsRef<Path>, config: &TimerConfig, now_ms: u64) -> Result<(Self, RecoveryReport), OpenError> {
        let geometry = config.geometry()?;
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(open_io("create", &dir))?;
        let lock_path = dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(open_io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::Locked(dir)),
            Err(std::fs::TryLockError::Error(err)) => return Err(open_io("lock", &lock_path)(err)),
        }

        let log_dir = dir.join("log");
        let log_has_files = match std::fs::read_dir(&log_dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
            Err(err) => return Err(open_io("list", &log_dir)(err)),
        };
        let meta_path = dir.join("timer.meta");
        let configured = Meta::of(&geometry);
        match Meta::load(&meta_path).map_err(open_io("read", &meta_path))? {
            Some(Some(stored)) if stored != configured => return Err(OpenError::Geometry { stored, configured }),
            Some(Some(_)) => {}
            Some(None) => return Err(OpenError::Meta { path: meta_path, reason: "damaged" }),
            None if log_has_files => {
                return Err(OpenError::Meta { path: meta_path, reason: "missing while the timer log exists" });
            }
            None => configured.store(&meta_path).map_err(open_io("write", &meta_path))?,
        }

        let log = EntryFile::open(log_dir.clone(), record::LEN, geometry.segment_records, MapBudget::unlimited())
            .map_err(open_io("open the timer log in", &log_dir))?;
        let checkpoint_path = dir.join("checkpoint");
        let stored = Checkpoint::load(&checkpoint_path).map_err(open_io("read", &checkpoint_path))?;
        let mut report = RecoveryReport {
            checkpoint: match stored {
                Some(Some(_)) => CheckpointState::Found,
                Some(None) => CheckpointState::Damaged,
                None => CheckpointState::Missing,
            },
            ..RecoveryReport::default()
        };
        let checkpoint = stored.flatten();

        // The tail: verified from the checkpoint on (everything before it was synced),
        // cut at the first record that is not valid.
        let (min, found_end) = (log.min_offset(), log.max_offset());
        let verify_from = checkpoint.map_or(min, |c| c.log_end.clamp(min, found_end));
        let mut end = found_end;
        let mut max_tick = None::<u64>;
        let mut tail_payload_end = 0;
        scan_records(&log, verify_from, found_end, |position, record| match record {
            Ok(record) => {
                max_tick = max_tick.max(Some(record.tick));
                tail_payload_end = tail_payload_end.max(payload_end(&record));
                true
            }
            Err(_) => {
                end = position;
                false
            }
        })
        .map_err(open_io("read the timer log in", &log_dir))?;
        report.verified = end - verify_from;
        if end < found_end {
            tracing::warn!(dir = %dir.display(), end, found_end, "timer log: cutting an invalid tail");
            log.truncate(end).map_err(open_io("truncate the timer log in", &log_dir))?;
            report.truncated = found_end - end;
        }

        let fresh = checkpoint.is_none() && min == end;
        report.created = fresh && !log_has_files;
        let committed_tick = match checkpoint {
            Some(c) => c.committed_tick,
            None if fresh => geometry.tick(now_ms),
            // No checkpoint: every live tick lies within one window ending at the
            // latest tick filed, so starting that window there loses nothing (the
            // ticks before the true start are delivered again: at least once).
            None => max_tick.unwrap_or(0).saturating_sub(geometry.slots - 1),
        };

        let wheel_path = dir.join("wheel");
        let mut wheel = None;
        let mut rebuild_reason = None;
        if fresh {
            wheel = Some(Wheel::new(geometry));
        } else if let Some(c) = checkpoint {
            if c.log_end > end {
                rebuild_reason = Some(format!("the timer log ends at {end}, before the checkpoint's {}", c.log_end));
            } else {
                match Wheel::load(&wheel_path, geometry).map_err(open_io("read", &wheel_path))? {
                    Err(reason) => rebuild_reason = Some(reason),
                    Ok(loaded) => match loaded.check(committed_tick, end) {
                        Err(reason) => rebuild_reason = Some(reason),
                        Ok(()) => {
                            let mut loaded = loaded;
                            match replay(&log, &geometry, &mut loaded, committed_tick, c.log_end, end) {
                                Ok(replayed) => {
                                    report.replayed = replayed;
                                    wheel = Some(loaded);
                                }
                                Err(reason) => rebuild_reason = Some(reason),
                            }
                        }
                    },
                }
            }
        } else {
            rebuild_reason = Some("no valid checkpoint".into());
        }
        let rebuilt = wheel.is_none();
        let wheel = match wheel {
            Some(wheel) => wheel,
            None => {
                let reason = rebuild_reason.unwrap_or_default();
                tracing::warn!(dir = %dir.display(), %reason, "timer wheel: rebuilding from the timer log");
                let mut wheel = Wheel::new(geometry);
                let (replayed, damaged) = rebuild(&log, &geometry, &mut wheel, committed_tick, verify_from, end)
                    .map_err(|err| match err {
                        RebuildError::Io(source) => open_io("read the timer log in", &log_dir)(source),
                        RebuildError::Corrupt(corrupt) => OpenError::Corrupt(corrupt),
                    })?;
                report.replayed = replayed;
                report.damaged = damaged;
                report.wheel_rebuilt = Some(reason);
                wheel
            }
        };

        let last_segment = end.checked_sub(1).map(|last| last / geometry.segment_records);
        let mut store = Self {
            unread: wheel.count_from(committed_tick),
            dir,
            geometry,
            log,
            wheel,
            _lock: lock,
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            committed_tick,
            cursor: committed_tick,
            current: None,
            returned: 0,
            closes: VecDeque::new(),
            segment_ticks: BTreeMap::new(),
            synced_segment: last_segment,
            poisoned: false,
            // Every record after the checkpoint's `log_end` was scanned above (the whole
            // log without a checkpoint), so with the checkpoint's value this covers the log.
            payload_end: checkpoint.map_or(0, |c| c.payload_end).max(tail_payload_end),
            lateness_max_ms: 0,
            lateness_sum_ms: 0,
            rolled: 0,
        };
        // Make what recovery did durable, so the next open does not do it again.
        if fresh || rebuilt {
            let path = store.dir.join("wheel");
            store.wheel.write_all(&path).map_err(io("write", &path))?;
        }
        store.write_checkpoint(committed_tick)?;
        report.log_records = store.log.max_offset() - store.log.min_offset();
        report.pending = store.pending();
        report.committed_until_ms = geometry.tick_ms(committed_tick);
        Ok((store, report))
    }

    /// The geometry the store in `dir` was created with, if there is one (`None`: no
    /// store, or its `timer.meta` is damaged, which [`open`](Self::open) reports). A
    /// caller whose settings may change between runs opens with the stored geometry
    /// (the wheel size derives from the maximum delay, which may change).
    pub fn stored_meta(dir: impl AsRef<Path>) -> std::io::Result<Option<Meta>> {
        Ok(Meta::load(&dir.as_ref().join("timer.meta"))?.flatten())
    }

    /// Files a timer due at `due_ms` that delivers `payload`, at `now_ms`. A due time
    /// already past is due now (delivered with the tick being delivered); one later
    /// than `now_ms` plus the maximum delay is refused.
    ///
    /// The timer is in the log (and survives a process crash) on return; it survives a
    /// power loss once [`sync`](Self::sync) (or a checkpoint) returns after it.
    pub fn add(&mut self, now_ms: u64, due_ms: u64, payload: Payload) -> Result<TimerId, AddError> {
        self.check_poisoned()?;
        let latest_ms = now_ms.saturating_add(self.geometry.max_delay_ms);
        if due_ms > latest_ms {
            return Err(AddError::BeyondMaxDelay { due_ms, latest_ms });
        }
        let position = self.file(Kind::Timer, self.geometry.tick(due_ms), due_ms, None, payload)?;
        Ok(TimerId(position))
    }

    /// Returns up to `max` timers due at or before `now_ms`, tick by tick, each tick's
    /// in due order; each timer once (until a restart: see
    /// [`commit_delivered`](Self::commit_delivered)). A timer is never returned before
    /// its due time. Rolled timers met on the way are filed again, not returned.
    ///
    /// Delivery reads ticks up to the one before the window's last (the window starts
    /// at the last committed tick and spans the wheel); there it stops with
    /// [`Taken::blocked`] set until the caller commits.
    pub fn take_due(&mut self, now_ms: u64, max: usize) -> Result<Taken, TakeError> {
        self.check_poisoned()?;
        let now_tick = self.geometry.tick(now_ms);
        let mut dues = Vec::new();
        let mut blocked = false;
        loop {
            if let Some(current) = &mut self.current {
                let tick_ms = self.geometry.tick_ms(current.tick);
                while dues.len() < max {
                    let Some(entry) = current.queue.first_entry() else { break };
                    if entry.key().0 > now_ms {
                        break;
                    }
                    let ((due_ms, id), payload) = entry.remove_entry();
                    let lateness = now_ms - due_ms;
                    self.lateness_max_ms = self.lateness_max_ms.max(lateness);
                    self.lateness_sum_ms += u128::from(lateness);
                    self.returned += 1;
                    dues.push(Due { id: TimerId(id), due_ms, payload, tick_ms });
                }
                if current.queue.is_empty() && now_tick > current.tick {
                    self.current = None;
                    self.close_until(self.cursor + 1);
                    continue;
                }
                break;
            }
            if dues.len() >= max || self.cursor > now_tick {
                break;
            }
            let readable_end = self.committed_tick.saturating_add(self.geometry.slots - 1);
            if self.cursor >= readable_end {
                blocked = true;
                break;
            }
            // The tick `now_ms` falls in is opened even when empty, so a timer added
            // with a due time already past joins it and is returned at the next call.
            if self.wheel.get(self.cursor).is_some() || self.cursor == now_tick {
                if let Err(err) = self.load(self.cursor) {
                    if dues.is_empty() {
                        return Err(err);
                    }
                    break; // return what was taken; the error comes back on the next call
                }
            } else {
                let to = now_tick.min(readable_end);
                let next = self.wheel.next_live(self.cursor, to).unwrap_or(to);
                self.close_until(next);
            }
        }
        Ok(Taken { dues, mark: DeliveryMark { instance: self.instance, returned: self.returned }, blocked })
    }

    /// Confirms that every timer returned up to `mark` was handled: the ticks they
    /// were delivered under that are complete are recorded durably (a checkpoint), so
    /// a restart does not return them again, and log segments holding only delivered
    /// timers are deleted. Timers returned but not confirmed by a commit are returned
    /// again after a restart (at least once).
    pub fn commit_delivered(&mut self, mark: DeliveryMark) -> Result<(), CommitError> {
        self.check_poisoned()?;
        if mark.instance != self.instance {
            return Err(CommitError::StaleMark);
        }
        let mut upto = self.committed_tick;
        while let Some(&(returned, next)) = self.closes.front() {
            if returned > mark.returned {
                break;
            }
            upto = next;
            self.closes.pop_front();
        }
        if upto > self.committed_tick {
            self.write_checkpoint(upto)?;
            self.retire()?;
        }
        Ok(())
    }

    /// Cancels a timer not yet delivered: a cancel record is filed under the tick the
    /// timer will be read at, so it is never returned (after a restart too, once the
    /// cancel is synced).
    pub fn cancel(&mut self, id: TimerId) -> Result<(), CancelError> {
        self.check_poisoned()?;
        let position = id.0;
        if position >= self.log.max_offset() {
            return Err(CancelError::Unknown(id));
        }
        if position < self.log.min_offset() {
            return Err(CancelError::AlreadyDelivered(id)); // its segment was retired
        }
        let record = self.read_record(position)?;
        if record.kind != Kind::Timer || record.id != position {
            return Err(CancelError::NotATimer(id));
        }
        let tick = final_tick(&self.geometry, &record);
        if tick < self.cursor {
            return Err(CancelError::AlreadyDelivered(id));
        }
        if let Some(current) = &mut self.current
            && current.tick == tick
            && current.queue.remove(&(record.due_ms, position)).is_none()
        {
            return Err(CancelError::AlreadyDelivered(id));
        }
        self.file(Kind::Cancel, tick, record.due_ms, Some(position), Payload::default())?;
        Ok(())
    }

    /// Cancels the timers not yet delivered that deliver `payload` and are due at
    /// `due_ms` (what the caller filed with [`add`](Self::add), when it kept the payload
    /// rather than the [`TimerId`]): a cancel record is filed under the due tick, where
    /// such a timer is read, so none of them is returned (after a restart too, once the
    /// cancel is synced). It also covers a timer with that payload added later, unless
    /// its due time has passed by then.
    ///
    /// Refused with [`CancelError::PayloadCancelled`] when the same cancel is already
    /// filed where this one would go, and with [`CancelError::NotPending`] once the due
    /// tick was delivered (the timer was returned, or never added).
    pub fn cancel_payload(&mut self, payload: Payload, due_ms: u64) -> Result<(), CancelError> {
        self.check_poisoned()?;
        let tick = self.geometry.tick(due_ms);
        if let Some(current) = &mut self.current {
            // A timer added with a due time already past waits under the tick being
            // delivered, whatever its due tick.
            let waiting = current.queue.iter().find(|&(&(due, _), &p)| due == due_ms && p == payload).map(|(k, _)| *k);
            let current_tick = current.tick;
            if let Some(key) = waiting {
                current.queue.remove(&key);
                self.file(Kind::CancelPayload, current_tick, due_ms, Some(NONE), payload)?;
                return Ok(());
            }
            if tick <= current_tick {
                return Err(match self.payload_cancel_filed(current_tick, payload, due_ms)? {
                    true => CancelError::PayloadCancelled { due_ms },
                    false => CancelError::NotPending { due_ms },
                });
            }
        }
        if tick < self.cursor {
            return Err(CancelError::NotPending { due_ms });
        }
        let window_end = self.committed_tick.saturating_add(self.geometry.slots);
        let filed_under = if tick < window_end { tick } else { window_end - 1 };
        if self.payload_cancel_filed(filed_under, payload, due_ms)? {
            return Err(CancelError::PayloadCancelled { due_ms });
        }
        self.file(Kind::CancelPayload, tick, due_ms, Some(NONE), payload)?;
        Ok(())
    }

    /// Whether tick `tick`'s chain holds a cancel of `payload` due at `due_ms`.
    fn payload_cancel_filed(&self, tick: u64, payload: Payload, due_ms: u64) -> Result<bool, Corrupt> {
        let chain = self.read_chain(tick)?;
        Ok(chain.iter().any(|r| r.kind == Kind::CancelPayload && r.payload == payload && r.due_ms == due_ms))
    }

    /// The furthest end (`commitlog_offset + size`) of a payload filed in the timer log
    /// (0 for none), kept across restarts (in the checkpoint, and read back from the
    /// log's tail after a crash). A caller that files its payloads in CommitLog order
    /// (the broker, following the CommitLog) knows that every payload before it was
    /// filed, so replaying the CommitLog after a crash does not file them twice.
    pub fn payload_end(&self) -> u64 {
        self.payload_end
    }

    /// Makes every record written so far durable (timers added, cancels): one sync of
    /// the timer log, however many records it covers (group commit by batching).
    pub fn sync(&mut self) -> Result<(), WriteError> {
        self.check_poisoned()?;
        let result = self.sync_log();
        self.poison(result)
    }

    /// [`sync`](Self::sync), then writes the wheel's changed slots and the checkpoint,
    /// so the next open replays nothing before this point.
    pub fn checkpoint(&mut self) -> Result<(), WriteError> {
        self.check_poisoned()?;
        self.write_checkpoint(self.committed_tick)
    }

    /// Checkpoints and closes the store. Dropping it instead is a crash as far as the
    /// files are concerned (recovery replays the log after the last checkpoint).
    pub fn close(mut self) -> Result<(), WriteError> {
        self.checkpoint()
    }

    /// Timers waiting: filed under ticks not yet read, and read but not yet returned.
    /// A cancelled timer counts until its tick is read; a timer re-filed after a crash
    /// may count twice until then.
    pub fn pending(&self) -> u64 {
        self.unread + self.current.as_ref().map_or(0, |c| c.queue.len() as u64)
    }

    /// Where the store stands.
    pub fn stats(&self) -> TimerStats {
        let g = &self.geometry;
        let next_due_ms = match self.current.as_ref().and_then(|c| c.queue.keys().next()) {
            Some(&(due_ms, _)) => Some(due_ms),
            None => {
                let from = if self.current.is_some() { self.cursor + 1 } else { self.cursor };
                let to = self.committed_tick.saturating_add(g.slots);
                self.wheel.next_live(from, to).map(|tick| g.tick_ms(tick))
            }
        };
        TimerStats {
            pending: self.pending(),
            next_due_ms,
            committed_until_ms: g.tick_ms(self.committed_tick),
            delivering_tick_ms: g.tick_ms(self.cursor),
            returned: self.returned,
            lateness_max_ms: self.lateness_max_ms,
            lateness_mean_ms: if self.returned == 0 {
                0
            } else {
                (self.lateness_sum_ms / u128::from(self.returned)) as u64
            },
            rolled: self.rolled,
            log_records: self.log.max_offset() - self.log.min_offset(),
            log_bytes: self.log.disk_bytes(),
            heap_bytes: self.heap_bytes() as u64,
        }
    }

    /// Bytes of memory the store holds: the wheel, the tick being delivered and
    /// bookkeeping. Independent of the number of pending timers.
    pub fn heap_bytes(&self) -> usize {
        let queue =
            self.current.as_ref().map_or(0, |c| c.queue.len() * (size_of::<(u64, u64)>() + size_of::<Payload>()));
        self.wheel.heap_bytes()
            + queue
            + self.closes.capacity() * size_of::<(u64, u64)>()
            + self.segment_ticks.len() * 2 * size_of::<u64>()
    }

    /// The geometry the store runs with.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn check_poisoned(&self) -> Result<(), WriteError> {
        if self.poisoned { Err(WriteError::Poisoned) } else { Ok(()) }
    }

    fn poison<T>(&mut self, result: Result<T, WriteError>) -> Result<T, WriteError> {
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    /// Appends a record about timer `id` (a new timer when `None`) filed under the
    /// tick `target` asks for: that tick if it lies in the window, the tick being
    /// delivered if it was earlier, the window's last tick (rolled) if it is later.
    fn file(
        &mut self,
        kind: Kind,
        target: u64,
        due_ms: u64,
        id: Option<u64>,
        payload: Payload,
    ) -> Result<u64, FileError> {
        let position = self.log.max_offset();
        let window_end = self.committed_tick.saturating_add(self.geometry.slots);
        let (tick, rolled) = if target < self.cursor {
            (self.cursor, false)
        } else if target < window_end {
            (target, false)
        } else {
            (window_end - 1, true)
        };
        let live_from = self.committed_tick;
        let prev = self.wheel.prev_for(tick, live_from).map_err(|c| FileError::Corrupt(conflict(c, position)))?;
        let id = id.unwrap_or(position);
        let record = Record { kind, rolled, tick, due_ms, id, prev, payload };
        let appended = self.log.append(&record.encode()).map_err(io("append to the timer log in", &self.dir));
        self.poison(appended).map_err(FileError::Write)?;
        self.wheel
            .file(tick, live_from, position, kind == Kind::Timer)
            .map_err(|c| FileError::Corrupt(conflict(c, position)))?;

        let segment = position / self.geometry.segment_records;
        let needed_until = final_tick(&self.geometry, &record);
        if position.is_multiple_of(self.geometry.segment_records) {
            self.segment_ticks.insert(segment, needed_until);
        } else if let Some(latest) = self.segment_ticks.get_mut(&segment) {
            *latest = (*latest).max(needed_until);
        }
        if kind == Kind::Timer {
            self.payload_end = self.payload_end.max(payload_end(&record));
            self.rolled += u64::from(rolled);
            match &mut self.current {
                Some(current) if current.tick == tick => {
                    current.queue.insert((due_ms, id), payload);
                }
                _ => self.unread += 1,
            }
        }
        Ok(position)
    }

    /// Reads tick `tick`'s chain into `current`: cancels drop their timers, copies of
    /// one timer (re-filed twice across a restart) count once, rolled records are
    /// filed again further on.
    fn load(&mut self, tick: u64) -> Result<(), TakeError> {
        let chain = self.read_chain(tick).map_err(|source| TakeError::Corrupt { tick, source })?;
        let cancelled: HashSet<u64> = chain.iter().filter(|r| r.kind == Kind::Cancel).map(|r| r.id).collect();
        let cancelled_payloads: HashSet<Payload> =
            chain.iter().filter(|r| r.kind == Kind::CancelPayload && !r.rolled).map(|r| r.payload).collect();
        let mut queue = BTreeMap::new();
        let mut seen = HashSet::new();
        let mut refile = Vec::new();
        for record in chain {
            match record.kind {
                Kind::Timer
                    if cancelled.contains(&record.id)
                        || (!record.rolled && cancelled_payloads.contains(&record.payload))
                        || !seen.insert(record.id) => {}
                Kind::Timer if record.rolled => refile.push(record),
                Kind::Timer => {
                    queue.insert((record.due_ms, record.id), record.payload);
                }
                Kind::Cancel | Kind::CancelPayload if record.rolled => refile.push(record),
                Kind::Cancel | Kind::CancelPayload => {}
            }
        }
        let count = self.wheel.get(tick).map_or(0, |slot| u64::from(slot.count));
        self.unread = self.unread.saturating_sub(count);
        self.current = Some(Current { tick, queue });
        for record in refile {
            let target = self.geometry.tick(record.due_ms);
            self.file(record.kind, target, record.due_ms, Some(record.id), record.payload).map_err(
                |err| match err {
                    FileError::Write(err) => TakeError::Write(err),
                    FileError::Corrupt(source) => TakeError::Corrupt { tick, source },
                },
            )?;
        }
        Ok(())
    }

    /// The records filed under `tick`, oldest first (those in retired segments are
    /// delivered and left out).
    fn read_chain(&self, tick: u64) -> Result<Vec<Record>, Corrupt> {
        let Some(slot) = self.wheel.get(tick) else { return Ok(Vec::new()) };
        let min = self.log.min_offset();
        let mut chain = Vec::new();
        let mut position = slot.last;
        while position != NONE && position >= min {
            let record = self.read_record(position)?;
            if record.tick != tick {
                return Err(Corrupt { position, reason: format!("filed under tick {}, not {tick}", record.tick) });
            }
            if record.prev != NONE && record.prev >= position {
                return Err(Corrupt { position, reason: format!("links forward to {}", record.prev) });
            }
            chain.push(record);
            position = record.prev;
        }
        chain.reverse();
        Ok(chain)
    }

    fn read_record(&self, position: u64) -> Result<Record, Corrupt> {
        match self.log.read(position, Record::decode) {
            Ok(Some(Ok(record))) => Ok(record),
            Ok(Some(Err(err))) => Err(Corrupt { position, reason: err.to_string() }),
            Ok(None) => Err(Corrupt { position, reason: "not in the timer log".into() }),
            Err(err) => Err(Corrupt { position, reason: format!("unreadable: {err}") }),
        }
    }

    /// Moves the cursor to `next`, closing the ticks before it.
    fn close_until(&mut self, next: u64) {
        self.cursor = next;
        match self.closes.back_mut() {
            Some(last) if last.0 == self.returned => last.1 = next,
            _ => self.closes.push_back((self.returned, next)),
        }
    }

    fn sync_log(&mut self) -> Result<(), WriteError> {
        let log_dir = self.dir.join("log");
        self.log.flush().map_err(io("sync the timer log in", &log_dir))?;
        let last_segment = self.log.max_offset().checked_sub(1).map(|last| last / self.geometry.segment_records);
        if last_segment != self.synced_segment {
            if self.synced_segment.is_none() {
                weir_storage::durable::sync_dir(&self.dir).map_err(io("sync", &self.dir))?;
            }
            weir_storage::durable::sync_dir(&log_dir).map_err(io("sync", &log_dir))?;
            self.synced_segment = last_segment;
        }
        Ok(())
    }

    /// Syncs the log, writes the wheel's changed slots, then the checkpoint saying the
    /// wheel reflects the log up to its end and ticks before `committed_tick` are done.
    fn write_checkpoint(&mut self, committed_tick: u64) -> Result<(), WriteError> {
        let result = (|| {
            self.sync_log()?;
            let log_end = self.log.max_offset();
            let wheel_path = self.dir.join("wheel");
            self.wheel.write_dirty(&wheel_path).map_err(io("write", &wheel_path))?;
            let path = self.dir.join("checkpoint");
            Checkpoint { committed_tick, log_end, payload_end: self.payload_end }
                .store(&path)
                .map_err(io("write", &path))
        })();
        self.poison(result)?;
        self.committed_tick = committed_tick;
        Ok(())
    }

    /// Deletes the leading log segments whose records are all needed only until ticks
    /// before the committed one (never the last segment).
    fn retire(&mut self) -> Result<(), WriteError> {
        let per = self.geometry.segment_records;
        let Some(last) = self.log.max_offset().checked_sub(1) else { return Ok(()) };
        let (first, last) = (self.log.min_offset() / per, last / per);
        let mut stop = first;
        while stop < last {
            let needed_until = match self.segment_ticks.get(&stop) {
                Some(&tick) => tick,
                None => {
                    let tick = self.scan_segment(stop);
                    self.segment_ticks.insert(stop, tick);
                    tick
                }
            };
            if needed_until >= self.committed_tick {
                break;
            }
            stop += 1;
        }
        if stop == first {
            return Ok(());
        }
        let log_dir = self.dir.join("log");
        let deleted = self.log.delete_leading_files(|last_index, _| last_index / per < stop);
        self.poison(deleted.map_err(io("delete segments in", &log_dir)))?;
        self.segment_ticks = self.segment_ticks.split_off(&stop);
        Ok(())
    }

    /// The latest tick a sealed segment's records are needed until (kept forever if
    /// unreadable).
    fn scan_segment(&self, segment: u64) -> u64 {
        let per = self.geometry.segment_records;
        let mut latest = 0;
        let scanned = scan_records(&self.log, segment * per, (segment + 1) * per, |_, record| {
            latest = match record {
                Ok(record) => latest.max(final_tick(&self.geometry, &record)),
                Err(_) => u64::MAX,
            };
            latest != u64::MAX
        });
        if scanned.is_err() { u64::MAX } else { latest }
    }
}

/// Applies the records in `[from, to)` to a wheel loaded from its file (skipping what
/// it already holds); returns how many it read, or why the wheel cannot be used.
fn replay(log: &EntryFile, g: &Geometry, wheel: &mut Wheel, live_from: u64, from: u64, to: u64) -> Result<u64, String> {
    let mut failure = None;
    let mut replayed = 0;
    scan_records(log, from, to, |position, record| {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                failure = Some(format!("timer log record {position}: {err}"));
                return false;
            }
        };
        replayed += 1;
        if record.tick < live_from {
            return true;
        }
        if record.tick >= live_from.saturating_add(g.slots) {
            failure = Some(format!("timer log record {position} is filed beyond the window"));
            return false;
        }
        if let Err(c) = wheel.replay(record.tick, live_from, position, record.is_timer()) {
            failure = Some(conflict(c, position).to_string());
        }
        failure.is_none()
    })
    .map_err(|err| format!("reading the timer log: {err}"))?;
    match failure {
        Some(reason) => Err(reason),
        None => Ok(replayed),
    }
}

enum RebuildError {
    Io(std::io::Error),
    Corrupt(Corrupt),
}

/// Files every record of the log filed under a live tick into an empty wheel;
/// returns how many records it read and how many damaged ones before `verified_from`
/// it skipped.
fn rebuild(
    log: &EntryFile,
    g: &Geometry,
    wheel: &mut Wheel,
    live_from: u64,
    verified_from: u64,
    to: u64,
) -> Result<(u64, u64), RebuildError> {
    let (mut replayed, mut damaged) = (0, 0);
    let mut failure = None;
    scan_records(log, log.min_offset(), to, |position, record| {
        let record = match record {
            Ok(record) => record,
            Err(err) if position >= verified_from => {
                failure = Some(Corrupt { position, reason: err.to_string() });
                return false;
            }
            Err(_) => {
                damaged += 1; // below the verified tail: synced once, damaged since
                return true;
            }
        };
        replayed += 1;
        if record.tick < live_from {
            return true;
        }
        let outcome = if record.tick >= live_from.saturating_add(g.slots) {
            Err(Corrupt {
                position,
                reason: format!("filed under tick {}, beyond the window from {live_from}", record.tick),
            })
        } else {
            wheel.replay(record.tick, live_from, position, record.is_timer()).map_err(|c| conflict(c, position))
        };
        if let Err(corrupt) = outcome {
            failure = Some(corrupt);
        }
        failure.is_none()
    })
    .map_err(RebuildError::Io)?;
    match failure {
        Some(corrupt) => Err(RebuildError::Corrupt(corrupt)),
        None => Ok((replayed, damaged)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use crate::wheel;

    /// 10 ms ticks, delays up to 100 ms: a wheel of 20 slots (200 ms), 64-record segments.
    fn small() -> TimerConfig {
        TimerConfig { precision_ms: 10, max_delay_ms: 100, wheel_slots: None, segment_records: 64 }
    }

    fn open(dir: &Path, now_ms: u64) -> (TimerStore, RecoveryReport) {
        TimerStore::open(dir, &small(), now_ms).expect("open")
    }

    fn payload(n: u64) -> Payload {
        Payload { commitlog_offset: n, size: n as u32 + 1 }
    }

    /// The commitlog offsets (test payload numbers) taken at `now_ms`, committed.
    fn take(store: &mut TimerStore, now_ms: u64) -> Vec<u64> {
        let taken = store.take_due(now_ms, usize::MAX).expect("take");
        for due in &taken.dues {
            assert!(due.due_ms <= now_ms, "{due:?} returned early at {now_ms}");
        }
        store.commit_delivered(taken.mark).expect("commit");
        taken.dues.iter().map(|d| d.payload.commitlog_offset).collect()
    }

    #[test]
    fn delivers_each_tick_in_due_order_never_early_and_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, report) = open(dir.path(), 1000);
        assert!(report.created);
        for (n, due) in [(1, 1057), (2, 1051), (3, 1059), (4, 1050), (5, 1061)] {
            store.add(1000, due, payload(n)).expect("add");
        }
        assert_eq!(store.pending(), 5);
        assert_eq!(take(&mut store, 1049), Vec::<u64>::new());
        assert_eq!(store.stats().next_due_ms, Some(1050));
        assert_eq!(take(&mut store, 1051), vec![4, 2], "only those due, in due order");
        assert_eq!(take(&mut store, 1051), Vec::<u64>::new(), "once");
        assert_eq!(store.stats().next_due_ms, Some(1057));
        assert_eq!(take(&mut store, 1070), vec![1, 3, 5]);
        assert_eq!(store.pending(), 0);
        let stats = store.stats();
        assert_eq!((stats.returned, stats.lateness_max_ms), (5, 13));
    }

    #[test]
    fn max_limits_a_batch_and_the_rest_follows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        for n in 0..10 {
            store.add(0, 5 + n * 3, payload(n)).expect("add");
        }
        let first = store.take_due(100, 4).expect("take");
        assert_eq!(first.dues.iter().map(|d| d.payload.commitlog_offset).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert!(store.take_due(100, 0).expect("take").dues.is_empty());
        assert_eq!(take(&mut store, 100), vec![4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn edges_of_the_delay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 10_000);
        store.add(10_000, 10_000, payload(1)).expect("due now");
        store.add(10_000, 3, payload(2)).expect("due long ago");
        store.add(10_000, 0, payload(3)).expect("due at zero");
        store.add(10_000, 10_100, payload(4)).expect("exactly the maximum delay");
        assert!(matches!(
            store.add(10_000, 10_101, payload(5)),
            Err(AddError::BeyondMaxDelay { due_ms: 10_101, latest_ms: 10_100 })
        ));
        assert!(matches!(store.add(10_000, u64::MAX, payload(6)), Err(AddError::BeyondMaxDelay { .. })));
        // Past due times are due now: returned at once, earliest first.
        assert_eq!(take(&mut store, 10_000), vec![3, 2, 1]);
        assert_eq!(take(&mut store, 10_099), Vec::<u64>::new());
        assert_eq!(take(&mut store, 10_100), vec![4]);
    }

    #[test]
    fn times_near_the_end_of_u64_do_not_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = u64::MAX - 50;
        let (mut store, _) = open(dir.path(), now);
        store.add(now, u64::MAX, payload(1)).expect("the latest time there is");
        store.add(now, now, payload(2)).expect("now");
        assert_eq!(take(&mut store, u64::MAX), vec![2, 1]);
        assert_eq!(take(&mut store, u64::MAX), Vec::<u64>::new());
        drop(store);
        // The last tick of time never ends, so it is never committed: it comes back.
        let (mut store, _) = open(dir.path(), 0);
        assert_eq!(take(&mut store, u64::MAX), vec![1]);
    }

    #[test]
    fn a_timer_one_wheel_later_is_neither_early_nor_lost() {
        // The same slot, one round apart (apache/rocketmq#5376): the later one rolls or
        // waits for its own round, never delivered with the first.
        let dir = tempfile::tempdir().expect("tempdir");
        let config = TimerConfig { max_delay_ms: 300, wheel_slots: Some(20), ..small() };
        let (mut store, _) = TimerStore::open(dir.path(), &config, 0).expect("open");
        store.add(0, 55, payload(1)).expect("add");
        assert_eq!(take(&mut store, 60), vec![1]);
        store.add(60, 155, payload(2)).expect("tick 15: slot 15");
        store.add(60, 255, payload(3)).expect("tick 25: slot 5, the first timer's, one round on");
        assert_eq!(take(&mut store, 154), Vec::<u64>::new());
        assert_eq!(take(&mut store, 155), vec![2]);
        assert_eq!(take(&mut store, 254), Vec::<u64>::new());
        assert_eq!(take(&mut store, 255), vec![3]);
        // Two rounds ahead of the commit: rolled, then delivered in its own round.
        store.add(260, 555, payload(4)).expect("add");
        assert_eq!(store.stats().rolled, 1);
        let mut got = Vec::new();
        for now in (260..=560).step_by(5) {
            got.extend(take(&mut store, now).into_iter().map(|n| (n, now)));
        }
        assert_eq!(got, vec![(4, 555)]);
    }

    #[test]
    fn the_window_edges_and_rolled_timers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        // Ticks 0..20 are the window. Tick 19 is its last tick, tick 20 the first after it.
        store.add(100, 199, payload(1)).expect("last tick of the window");
        store.add(100, 200, payload(2)).expect("first tick after the window: rolled");
        assert_eq!(store.stats().rolled, 1);
        // Delivery without commits stops one tick short of the window's end.
        let taken = store.take_due(200, usize::MAX).expect("take");
        assert!(taken.dues.is_empty() && taken.blocked);
        assert_eq!(store.stats().delivering_tick_ms, 190);
        store.commit_delivered(taken.mark).expect("commit");
        let taken = store.take_due(200, usize::MAX).expect("take");
        assert_eq!(taken.dues.iter().map(|d| d.payload.commitlog_offset).collect::<Vec<_>>(), vec![1, 2]);
        assert!(!taken.blocked);
        store.commit_delivered(taken.mark).expect("commit");

        // A store that lags: the clock jumps three wheels ahead; timers added now are
        // beyond the window and roll, then arrive when their own round comes.
        store.add(900, 990, payload(3)).expect("rolled");
        store.add(900, 905, payload(4)).expect("rolled too");
        store.add(900, 100, payload(5)).expect("past due: the tick being delivered");
        let mut got = Vec::new();
        let mut now = 900;
        while got.len() < 3 && now < 2000 {
            let taken = store.take_due(now, usize::MAX).expect("take");
            for due in &taken.dues {
                assert!(due.due_ms <= now);
                got.push((due.payload.commitlog_offset, now));
            }
            store.commit_delivered(taken.mark).expect("commit");
            if !taken.blocked {
                now += 5;
            }
        }
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![5, 4, 3]);
        assert_eq!(got[1].1, 905, "delivered at its due time, once the wheel caught up");
        assert_eq!(got[2].1, 990);
        assert!(store.stats().rolled >= 3);
    }

    #[test]
    fn cancel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        let a = store.add(0, 50, payload(1)).expect("add");
        let b = store.add(0, 52, payload(2)).expect("add");
        let c = store.add(0, 57, payload(3)).expect("add");
        let far = store.add(0, 80, payload(4)).expect("add");
        store.cancel(a).expect("cancel a pending timer");
        assert_eq!(take(&mut store, 55), vec![2], "tick 5 is being delivered");
        store.cancel(c).expect("cancel in the tick being delivered");
        assert!(matches!(store.cancel(b), Err(CancelError::AlreadyDelivered(id)) if id == b));
        assert!(matches!(store.cancel(TimerId(1_000)), Err(CancelError::Unknown(_))));
        let cancel_record = TimerId(store.log.max_offset() - 1);
        assert!(matches!(store.cancel(cancel_record), Err(CancelError::NotATimer(_))));
        assert_eq!(take(&mut store, 79), Vec::<u64>::new());
        store.cancel(far).expect("cancel");
        store.cancel(far).expect("cancelling twice is harmless");
        assert_eq!(take(&mut store, 200), Vec::<u64>::new());
        assert!(matches!(store.cancel(far), Err(CancelError::AlreadyDelivered(_))));
    }

    #[test]
    fn cancel_follows_a_rolled_timer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        // Let the commit lag, so adds at 150 fall beyond the window (ticks 0..20).
        let kept = store.add(150, 240, payload(1)).expect("rolled");
        let gone = store.add(150, 245, payload(2)).expect("rolled");
        assert_eq!(store.stats().rolled, 2);
        let mut got = Vec::new();
        for now in (150..=300).step_by(5) {
            if now == 200 {
                store.cancel(gone).expect("cancel after its roll was read and re-filed");
            }
            got.extend(take(&mut store, now));
        }
        assert_eq!(got, vec![1]);
        assert!(matches!(store.cancel(kept), Err(CancelError::AlreadyDelivered(_))));
    }

    #[test]
    fn cancel_by_payload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        store.add(0, 50, payload(1)).expect("add");
        store.add(0, 52, payload(2)).expect("add");
        store.add(0, 57, payload(3)).expect("add");
        store.add(150, 240, payload(4)).expect("rolled");
        store.cancel_payload(payload(1), 50).expect("cancel a pending timer");
        assert!(matches!(store.cancel_payload(payload(1), 50), Err(CancelError::PayloadCancelled { due_ms: 50 })));
        store.cancel_payload(payload(9), 53).expect("a timer not added yet: covered when it comes");
        store.add(0, 53, payload(9)).expect("added after its cancel");
        assert_eq!(take(&mut store, 55), vec![2], "tick 5 is being delivered");
        store.cancel_payload(payload(3), 57).expect("cancel in the tick being delivered");
        assert!(matches!(store.cancel_payload(payload(3), 57), Err(CancelError::PayloadCancelled { .. })));
        assert!(matches!(store.cancel_payload(payload(2), 52), Err(CancelError::NotPending { due_ms: 52 })));
        assert!(matches!(store.cancel_payload(payload(8), 10), Err(CancelError::NotPending { .. })));
        // A timer added with its due time past waits under the tick being delivered.
        store.add(56, 30, payload(5)).expect("due long ago");
        store.cancel_payload(payload(5), 30).expect("cancel it there");
        store.cancel_payload(payload(4), 240).expect("cancel a rolled timer");
        assert!(matches!(store.cancel_payload(payload(4), 240), Err(CancelError::PayloadCancelled { .. })));
        let mut got = Vec::new();
        for now in (55..=300).step_by(5) {
            got.extend(take(&mut store, now));
        }
        assert_eq!(got, Vec::<u64>::new());
    }

    #[test]
    fn a_payload_cancel_survives_a_restart_in_the_tick_being_delivered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        store.add(0, 50, payload(1)).expect("add");
        store.add(0, 58, payload(2)).expect("add");
        assert_eq!(take(&mut store, 55), vec![1]);
        store.cancel_payload(payload(2), 58).expect("cancel");
        store.sync().expect("sync");
        drop(store); // a crash: tick 5 was not committed
        let (mut store, _) = open(dir.path(), 100);
        assert_eq!(take(&mut store, 100), vec![1], "the tick again, without the cancelled timer");
    }

    #[test]
    fn payload_end_is_kept_across_checkpoints_and_crashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        assert_eq!(store.payload_end(), 0);
        store.add(0, 50, payload(100)).expect("add");
        store.add(0, 20, payload(7)).expect("an earlier payload does not move it back");
        assert_eq!(store.payload_end(), 201);
        store.cancel_payload(payload(500), 60).expect("a cancel files no payload");
        assert_eq!(store.payload_end(), 201);
        store.close().expect("close");
        let (mut store, _) = open(dir.path(), 0);
        assert_eq!(store.payload_end(), 201, "from the checkpoint");
        assert_eq!(take(&mut store, 100), vec![7, 100]);
        store.add(100, 150, payload(300)).expect("add");
        drop(store); // a crash: the record is in the log's tail, after the checkpoint
        let (store, _) = open(dir.path(), 100);
        assert_eq!(store.payload_end(), 601, "from the log's tail");
        drop(store);
        std::fs::remove_file(dir.path().join("checkpoint")).expect("remove");
        let (store, _) = open(dir.path(), 100);
        assert_eq!(store.payload_end(), 601, "from the whole log");
    }

    #[test]
    fn a_restart_returns_what_was_not_committed_and_what_fell_due_meanwhile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        for n in 0..6 {
            store.add(0, 10 + n * 10, payload(n)).expect("add");
        }
        // Committed: tick 1 (timer 0); tick 2 (timer 1) is still open at 25 ms, so
        // the commit does not cover it.
        assert_eq!(take(&mut store, 25), vec![0, 1]);
        let uncommitted = store.take_due(45, usize::MAX).expect("take");
        assert_eq!(uncommitted.dues.len(), 2);
        drop(store); // a crash: no checkpoint since the commit
        let (mut store, report) = open(dir.path(), 1000);
        assert_eq!(report.checkpoint, CheckpointState::Found);
        assert_eq!(report.pending, 5);
        assert_eq!(report.committed_until_ms, 20);
        assert!(matches!(store.commit_delivered(uncommitted.mark), Err(CommitError::StaleMark)));
        assert_eq!(take(&mut store, 1000), vec![1, 2, 3, 4, 5], "again, and late");
        let (mut store, _) = {
            drop(store);
            open(dir.path(), 1000)
        };
        assert_eq!(take(&mut store, 1000), Vec::<u64>::new());
    }

    #[test]
    fn a_damaged_tail_is_cut_and_what_precedes_it_delivered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        for n in 0..5 {
            store.add(0, 10 + n, payload(n)).expect("add");
        }
        store.sync().expect("sync");
        drop(store);
        let segment = dir.path().join("log").join(format!("{:020}", 0));
        let mut bytes = std::fs::read(&segment).expect("read");
        bytes[3 * record::LEN + 20] ^= 0xff; // the fourth record
        std::fs::write(&segment, &bytes).expect("write");
        let (mut store, report) = open(dir.path(), 0);
        assert_eq!((report.truncated, report.log_records), (2, 3));
        assert_eq!(take(&mut store, 100), vec![0, 1, 2]);
    }

    #[test]
    fn the_wheel_is_rebuilt_when_missing_damaged_or_without_a_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        for n in 0..30 {
            store.add(0, 20 + n * 2, payload(n)).expect("add");
        }
        store.checkpoint().expect("checkpoint");
        assert_eq!(take(&mut store, 45), (0..=12).collect::<Vec<_>>());
        drop(store);
        // Tick 4 (40..50 ms) was open when committed: its timers 10..=12 come again.
        let expected: Vec<u64> = (10..30).collect();
        let damages: [Damage; 3] = [
            ("missing", |dir| std::fs::remove_file(dir.join("wheel")).expect("remove")),
            ("damaged", |dir| {
                let path = dir.join("wheel");
                let mut bytes = std::fs::read(&path).expect("read");
                bytes[wheel::HEADER_LEN + 9 * wheel::SLOT_LEN] ^= 1;
                std::fs::write(&path, bytes).expect("write");
            }),
            ("no checkpoint", |dir| std::fs::remove_file(dir.join("checkpoint")).expect("remove")),
        ];
        for (what, damage) in damages {
            let copy = tempfile::tempdir().expect("tempdir");
            copy_dir(dir.path(), copy.path());
            damage(copy.path());
            let (mut store, report) = open(copy.path(), 100);
            assert!(report.wheel_rebuilt.is_some(), "{what}: {report:?}");
            let got = take(&mut store, 200);
            if what == "no checkpoint" {
                // Without its committed tick the store delivers again what it cannot rule out.
                assert!(got.ends_with(&expected), "{what}: {got:?}");
            } else {
                assert_eq!(got, expected, "{what}");
            }
        }
    }

    /// A named way to damage a store directory.
    type Damage = (&'static str, fn(&Path));

    fn copy_dir(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).expect("list") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                std::fs::create_dir_all(&target).expect("mkdir");
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copy");
            }
        }
    }

    #[test]
    fn geometry_changes_and_a_second_opener_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = open(dir.path(), 0);
        assert!(matches!(TimerStore::open(dir.path(), &small(), 0), Err(OpenError::Locked(_))));
        drop(store);
        let other = TimerConfig { precision_ms: 20, ..small() };
        assert!(matches!(TimerStore::open(dir.path(), &other, 0), Err(OpenError::Geometry { .. })));
        let bad = TimerConfig { precision_ms: 0, ..small() };
        assert!(matches!(TimerStore::open(dir.path(), &bad, 0), Err(OpenError::Config(ConfigError::ZeroPrecision))));
        let longer = TimerConfig { max_delay_ms: 150, wheel_slots: Some(20), ..small() };
        TimerStore::open(dir.path(), &longer, 0).expect("the maximum delay may change with the same wheel");
    }

    #[test]
    fn delivered_segments_are_retired() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        let first = store.add(0, 5, payload(0)).expect("add");
        let late = store.add(0, 100, payload(1)).expect("one late timer keeps the first segment");
        let mut now = 0;
        for n in 2..300 {
            now = n / 3;
            store.add(now, now + 10, payload(n)).expect("add");
            take(&mut store, now);
        }
        let segments = || std::fs::read_dir(dir.path().join("log")).expect("list").count();
        assert!(segments() >= 5);
        assert_eq!(store.log.min_offset(), 0, "held by the timer due at 100");
        take(&mut store, now + 20);
        assert!(store.log.min_offset() > 0);
        assert!(segments() <= 2, "{} segments left", segments());
        assert!(matches!(store.cancel(first), Err(CancelError::AlreadyDelivered(_))));
        assert!(matches!(store.cancel(late), Err(CancelError::AlreadyDelivered(_))));
        drop(store);
        let (mut store, report) = open(dir.path(), now + 20);
        assert_eq!(report.pending, 0);
        assert_eq!(take(&mut store, now + 500), Vec::<u64>::new());
    }

    #[test]
    fn a_failed_sync_stops_writes_until_reopened() {
        use weir_storage::fault::{Fault, Op};
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = open(dir.path(), 0);
        store.add(0, 10, payload(1)).expect("add");
        let fault = Fault::inject(dir.path(), Op::Sync, libc_eio());
        assert!(matches!(store.sync(), Err(WriteError::Io { .. })));
        drop(fault);
        assert!(matches!(store.add(0, 20, payload(2)), Err(AddError::Write(WriteError::Poisoned))));
        assert!(matches!(store.take_due(100, 10), Err(TakeError::Write(WriteError::Poisoned))));
        drop(store);
        let (mut store, _) = open(dir.path(), 0);
        assert_eq!(take(&mut store, 100), vec![1]);
    }

    fn libc_eio() -> i32 {
        5 // EIO on Linux
    }
}
