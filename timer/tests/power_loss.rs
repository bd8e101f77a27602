//! Power loss at any moment: a worker thread adds, syncs, takes, commits, cancels and
//! checkpoints while this thread takes crash images at random times
//! (`weir_storage::fault::Recording`: every synced byte, and each sector written
//! since either old or new), so images fall between any two file operations,
//! including in the middle of a checkpoint (the wheel written, the checkpoint not).
//!
//! Each image is opened and drained. What happened before the image began is
//! certain; what happened while it was taken may or may not be in it:
//! - every timer added before a completed sync (or checkpoint, or commit) and never
//!   cancelled comes out, unless it was returned under a tick a commit covered;
//! - no timer returned under a tick a completed commit covered comes out again;
//! - no timer whose cancel was synced comes out; none comes out before its due time;
//! - recovery never needs to rebuild the wheel: the wheel file is a checkpoint's.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use weir_storage::fault::Recording;
use weir_timer::{Payload, TimerConfig, TimerId, TimerStore};

#[derive(Debug, Clone)]
enum Event {
    Added {
        id: u64,
        due_ms: u64,
    },
    /// A sync or checkpoint completed: every record before it is durable.
    Synced,
    Taken(Vec<(u64, u64)>),
    /// A commit that moved the checkpoint completed: ticks before this time are done,
    /// and every record before it is durable. (One event: an image must never fall
    /// between its two halves.)
    Committed(u64),
    Cancelled(u64),
}

fn config() -> TimerConfig {
    TimerConfig { precision_ms: 10, max_delay_ms: 200, wheel_slots: Some(16), segment_records: 128 }
}

/// xorshift64*: reproducible per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn work(store: &mut TimerStore, seed: u64, events: &Mutex<Vec<Event>>, stop: &AtomicBool) {
    let mut rng = Rng(seed | 1);
    let mut now = 100_000u64;
    let mut ids = Vec::new();
    let log = |event: Event| events.lock().expect("events").push(event);
    for _ in 0..200_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match rng.below(100) {
            0..=54 => {
                let due_ms = (now + rng.below(260)).saturating_sub(40).min(now + 200);
                let n = ids.len() as u64;
                let TimerId(id) = store.add(now, due_ms, Payload { commitlog_offset: n, size: 1 }).expect("add");
                ids.push(id);
                log(Event::Added { id, due_ms });
            }
            55..=64 => now += rng.below(40),
            65..=71 => {
                store.sync().expect("sync");
                log(Event::Synced);
            }
            72..=83 => {
                let taken = store.take_due(now, 1 + rng.below(20) as usize).expect("take");
                for due in &taken.dues {
                    assert!(due.due_ms <= now, "early");
                }
                log(Event::Taken(taken.dues.iter().map(|d| (d.id.0, d.tick_ms)).collect()));
                if rng.below(3) > 0 {
                    let before = store.stats().committed_until_ms;
                    store.commit_delivered(taken.mark).expect("commit");
                    let after = store.stats().committed_until_ms;
                    if after > before {
                        log(Event::Committed(after)); // and synced: it checkpointed
                    }
                }
            }
            84..=91 if !ids.is_empty() => {
                let id = ids[rng.below(ids.len() as u64) as usize];
                if store.cancel(TimerId(id)).is_ok() {
                    log(Event::Cancelled(id));
                }
            }
            92..=95 => {
                store.checkpoint().expect("checkpoint");
                log(Event::Synced);
            }
            _ => std::thread::yield_now(),
        }
    }
}

/// What must and must not come out of an image taken while events `before..=after` happened.
struct Expect {
    must: HashSet<u64>,
    never: HashSet<u64>,
    due: HashMap<u64, u64>,
}

fn expect(events: &[Event], before: usize, after: usize) -> Expect {
    let certain = &events[..before.min(events.len())];
    let until_end = &events[..(after + 1).min(events.len())];
    let mut due = HashMap::new();
    let (mut synced, mut added_since_sync) = (HashSet::new(), Vec::new());
    let (mut cancel_durable, mut cancels_since_sync) = (HashSet::new(), Vec::new());
    let mut floor = 0; // committed for certain
    for event in certain {
        match event {
            Event::Added { id, .. } => added_since_sync.push(*id),
            Event::Cancelled(id) => cancels_since_sync.push(*id),
            Event::Synced | Event::Committed(_) => {
                synced.extend(added_since_sync.drain(..));
                cancel_durable.extend(cancels_since_sync.drain(..));
                if let Event::Committed(until) = event {
                    floor = floor.max(*until);
                }
            }
            Event::Taken(_) => {}
        }
    }
    let mut ceiling = floor; // committed, perhaps
    let mut cancelled = HashSet::new();
    let mut taken = HashMap::new();
    for event in until_end {
        match event {
            Event::Added { id, due_ms } => {
                due.insert(*id, *due_ms);
            }
            Event::Committed(until) => ceiling = ceiling.max(*until),
            Event::Cancelled(id) => {
                cancelled.insert(*id);
            }
            Event::Taken(dues) => {
                for &(id, tick_ms) in dues {
                    taken.insert(id, tick_ms);
                }
            }
            Event::Synced => {}
        }
    }
    let mut never = cancel_durable;
    for event in certain {
        if let Event::Taken(dues) = event {
            never.extend(dues.iter().filter(|&&(_, tick_ms)| tick_ms < floor).map(|&(id, _)| id));
        }
    }
    let must = synced
        .into_iter()
        .filter(|id| !cancelled.contains(id) && taken.get(id).is_none_or(|&tick_ms| tick_ms >= ceiling))
        .collect();
    Expect { must, never, due }
}

fn drain(dir: &Path) -> Vec<(u64, u64)> {
    let (mut store, report) = TimerStore::open(dir, &config(), 0).expect("open the image");
    assert!(report.wheel_rebuilt.is_none(), "{report:?}");
    let mut out = Vec::new();
    let mut now = report.committed_until_ms;
    for _ in 0..10_000 {
        let taken = store.take_due(now, usize::MAX).expect("take");
        assert!(taken.dues.iter().all(|d| d.due_ms <= now), "early");
        out.extend(taken.dues.iter().map(|d| (d.id.0, d.due_ms)));
        store.commit_delivered(taken.mark).expect("commit");
        if store.pending() == 0 && !taken.blocked {
            break;
        }
        now += 50;
    }
    out
}

#[test]
fn timers_survive_power_loss_at_any_moment() {
    let mut images_checked = 0;
    for seed in 1..=4u64 {
        let dir = support::tempdir();
        let root = dir.path().join("timer");
        std::fs::create_dir_all(&root).expect("mkdir");
        let recording = Recording::start(&root);
        let (mut store, _) = TimerStore::open(&root, &config(), 100_000).expect("open");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (events, stop) = (events.clone(), stop.clone());
            std::thread::spawn(move || work(&mut store, seed, &events, &stop))
        };
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut images = Vec::new();
        while !worker.is_finished() && images.len() < 24 {
            std::thread::sleep(std::time::Duration::from_micros(rng.below(400)));
            let into = dir.path().join(format!("image{}", images.len()));
            let before = events.lock().expect("events").len();
            let mut coin = Rng(rng.next() | 1);
            recording.crash_image(&into, || coin.below(2) == 0).expect("crash image");
            let after = events.lock().expect("events").len();
            images.push((into, before, after));
        }
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("worker");
        let events = events.lock().expect("events").clone();
        for (into, before, after) in images {
            let expect = expect(&events, before, after);
            let returned = drain(&into);
            let got: HashSet<u64> = returned.iter().map(|&(id, _)| id).collect();
            for &(id, due_ms) in &returned {
                assert_eq!(expect.due.get(&id), Some(&due_ms), "seed {seed} {}: unknown timer {id}", into.display());
            }
            let missing: Vec<_> = expect.must.difference(&got).collect();
            assert!(missing.is_empty(), "seed {seed} {}: lost {missing:?}", into.display());
            let again: Vec<_> = expect.never.intersection(&got).collect();
            assert!(again.is_empty(), "seed {seed} {}: returned again {again:?}", into.display());
            images_checked += usize::from(!expect.must.is_empty() && !expect.never.is_empty());
        }
    }
    assert!(images_checked >= 8, "only {images_checked} images with timers to find and timers to keep out");
}
