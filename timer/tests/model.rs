//! The timer store against a model: random adds (edges included), clocks that
//! creep and jump, takes of any size, commits, cancels, syncs and restarts (a drop,
//! as a crash, or a close). Checked after every step:
//! - never early: every timer returned is due at or before the `now_ms` it was taken at;
//! - exactly once within an opening; after a restart, exactly the timers returned
//!   under a tick the checkpoint had not committed come back (at least once), the
//!   others never;
//! - complete: a take that is neither blocked nor cut short by `max` leaves nothing
//!   due behind; a final drain returns every timer not cancelled;
//! - in order: within a call, by tick, then by due time;
//! - cancelled timers are never returned; a cancel is refused exactly when the timer
//!   was already returned.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

mod support;

use proptest::prelude::*;
use weir_timer::{AddError, CancelError, DeliveryMark, Payload, TimerConfig, TimerId, TimerStore};

#[derive(Debug, Clone)]
enum Op {
    /// Add a timer due `offset` ms from now (clamped at 0).
    Add(i64),
    /// Move the clock forward.
    Advance(u64),
    /// Take at most this many (0: no limit).
    Take(usize),
    /// Commit the mark of a take of this opening: the n-th from the last (modulo).
    Commit(usize),
    /// Cancel the n-th timer added (modulo how many there are).
    Cancel(usize),
    Sync,
    Checkpoint,
    /// Drop the store (a crash as far as the wheel and checkpoint go) and reopen.
    Crash,
    /// Close (checkpoint) and reopen.
    Restart,
}

const MAX_DELAY: u64 = 100;

fn op() -> impl Strategy<Value = Op> {
    let max = MAX_DELAY as i64;
    prop_oneof![
        8 => prop_oneof![
            Just(0i64),
            Just(max),
            Just(max + 1),
            Just(-1),
            Just(i64::MIN / 2),
            -300..=max + 20,
        ].prop_map(Op::Add),
        5 => prop_oneof![4 => 0u64..30, 2 => 0u64..300, 1 => 500u64..3000].prop_map(Op::Advance),
        4 => prop_oneof![Just(0usize), 1usize..4].prop_map(Op::Take),
        3 => prop_oneof![3 => Just(0usize), 1 => 0usize..4].prop_map(Op::Commit),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::Sync),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

fn config() -> impl Strategy<Value = TimerConfig> {
    // 10 ms ticks; a wheel twice the maximum delay, or a small one that rolls often.
    prop_oneof![Just(None), Just(Some(6u64)), Just(Some(13))].prop_map(|wheel_slots| TimerConfig {
        precision_ms: 10,
        max_delay_ms: MAX_DELAY,
        wheel_slots,
        segment_records: 64,
    })
}

#[derive(Default)]
struct Model {
    now: u64,
    /// Every timer added: id -> (due, payload number).
    added: BTreeMap<u64, (u64, u64)>,
    /// Added, not returned yet, not cancelled.
    pending: HashSet<u64>,
    /// Returned before a restart under a tick the checkpoint had not committed: must come again.
    again: HashSet<u64>,
    /// The tick each returned timer was last returned under.
    returned_tick: HashMap<u64, u64>,
    /// Returned since the store was opened.
    this_opening: HashSet<u64>,
    /// The takes of this opening: their marks and what each returned.
    takes: Vec<(DeliveryMark, Vec<u64>)>,
    /// Returned and confirmed by a commit (of a mark at or after their take).
    confirmed: HashSet<u64>,
    cancelled: HashSet<u64>,
}

fn open(dir: &Path, config: &TimerConfig, now: u64) -> (TimerStore, weir_timer::RecoveryReport) {
    TimerStore::open(dir, config, now).expect("open")
}

fn check_take(
    model: &mut Model,
    store: &mut TimerStore,
    max: usize,
) -> Result<weir_timer::DeliveryMark, TestCaseError> {
    let now = model.now;
    let taken = store.take_due(now, if max == 0 { usize::MAX } else { max }).expect("take");
    if max != 0 {
        prop_assert!(taken.dues.len() <= max);
    }
    let mut previous = (0u64, 0u64);
    for due in &taken.dues {
        let id = due.id.0;
        prop_assert!(due.due_ms <= now, "{due:?} returned early at {now}");
        prop_assert!(due.tick_ms <= now);
        prop_assert!((due.tick_ms, due.due_ms) >= previous, "out of order: {due:?} after {previous:?}");
        previous = (due.tick_ms, due.due_ms);
        let &(due_ms, n) = model.added.get(&id).expect("a timer that was added");
        prop_assert_eq!(due.due_ms, due_ms);
        prop_assert_eq!(due.payload, Payload { commitlog_offset: n, size: n as u32 });
        prop_assert!(!model.cancelled.contains(&id), "cancelled timer {id} returned");
        prop_assert!(model.this_opening.insert(id), "timer {id} returned twice in one opening");
        prop_assert!(
            model.pending.remove(&id) || model.again.remove(&id),
            "timer {id} returned again though its tick was committed"
        );
        model.returned_tick.insert(id, due.tick_ms);
    }
    if !taken.blocked && (max == 0 || taken.dues.len() < max) {
        for id in model.pending.iter().chain(&model.again) {
            let (due_ms, _) = model.added[id];
            prop_assert!(due_ms > now, "timer {id} due at {due_ms} left behind at {now}");
        }
    }
    model.takes.push((taken.mark, taken.dues.iter().map(|due| due.id.0).collect()));
    Ok(taken.mark)
}

fn reopen(model: &mut Model, config: &TimerConfig, dir: &Path) -> Result<TimerStore, TestCaseError> {
    let (store, report) = open(dir, config, model.now);
    prop_assert!(report.wheel_rebuilt.is_none(), "{report:?}");
    prop_assert_eq!(report.truncated, 0);
    // Whatever was returned and not confirmed comes again: its tick is not committed.
    for id in model.this_opening.difference(&model.confirmed) {
        prop_assert!(
            model.returned_tick[id] >= report.committed_until_ms,
            "timer {id} was not confirmed, yet its tick is committed"
        );
    }
    model.takes.clear();
    model.confirmed.clear();
    for (&id, &tick_ms) in &model.returned_tick {
        if tick_ms >= report.committed_until_ms && !model.cancelled.contains(&id) {
            model.again.insert(id);
        }
    }
    model.returned_tick.retain(|_, &mut tick_ms| tick_ms >= report.committed_until_ms);
    model.this_opening.clear();
    prop_assert!(store.pending() >= (model.pending.len() + model.again.len()) as u64);
    Ok(store)
}

fn run(config: TimerConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = support::tempdir();
    let mut model = Model { now: 1_000_000, ..Model::default() };
    let (mut store, _) = open(dir.path(), &config, model.now);
    for op in ops {
        match op {
            Op::Add(offset) => {
                let due = model.now.saturating_add_signed(offset);
                let n = model.added.len() as u64;
                let payload = Payload { commitlog_offset: n, size: n as u32 };
                match store.add(model.now, due, payload) {
                    Ok(TimerId(id)) => {
                        prop_assert!(due <= model.now + MAX_DELAY);
                        prop_assert!(model.added.insert(id, (due, n)).is_none(), "id {id} given twice");
                        model.pending.insert(id);
                    }
                    Err(AddError::BeyondMaxDelay { .. }) => prop_assert!(due > model.now + MAX_DELAY),
                    Err(err) => return Err(TestCaseError::fail(format!("add: {err}"))),
                }
            }
            Op::Advance(ms) => model.now += ms,
            Op::Take(max) => {
                check_take(&mut model, &mut store, max)?;
            }
            Op::Commit(back) => {
                let Some(last) = model.takes.len().checked_sub(1) else { continue };
                let at = last - back.min(last);
                store.commit_delivered(model.takes[at].0).expect("commit");
                let ids: Vec<u64> = model.takes[..=at].iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
                model.confirmed.extend(ids);
            }
            Op::Cancel(n) => {
                let Some(&id) = model.added.keys().nth(n % model.added.len().max(1)) else { continue };
                match store.cancel(TimerId(id)) {
                    Ok(()) => {
                        prop_assert!(!model.this_opening.contains(&id), "cancelled {id} after returning it");
                        prop_assert!(
                            model.pending.contains(&id) || model.again.contains(&id) || model.cancelled.contains(&id),
                            "cancelled {id}, which was delivered"
                        );
                        model.pending.remove(&id);
                        model.again.remove(&id);
                        model.cancelled.insert(id);
                    }
                    Err(CancelError::AlreadyDelivered(_)) => {
                        prop_assert!(!model.pending.contains(&id), "cancel of pending {id} refused");
                    }
                    Err(err) => return Err(TestCaseError::fail(format!("cancel {id}: {err}"))),
                }
            }
            Op::Sync => store.sync().expect("sync"),
            Op::Checkpoint => store.checkpoint().expect("checkpoint"),
            Op::Crash => {
                drop(store);
                store = reopen(&mut model, &config, dir.path())?;
            }
            Op::Restart => {
                store.close().expect("close");
                store = reopen(&mut model, &config, dir.path())?;
            }
        }
    }
    // Drain: everything not cancelled comes out, never early.
    for _ in 0..400 {
        if model.pending.is_empty() && model.again.is_empty() {
            break;
        }
        let mark = check_take(&mut model, &mut store, 0)?;
        store.commit_delivered(mark).expect("commit");
        model.now += 25;
    }
    prop_assert!(
        model.pending.is_empty() && model.again.is_empty(),
        "never returned: {:?} {:?}",
        model.pending,
        model.again
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_the_model(config in config(), ops in proptest::collection::vec(op(), 1..120)) {
        run(config, ops)?;
    }
}
