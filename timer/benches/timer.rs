//! Timer store figures (a plain binary: `cargo bench -p weir-timer --bench timer`).
//!
//! 100 000 timers due within the same minute (1 s ticks, 1 667 per tick):
//! - add throughput: batched (one sync at the end), group-synced every 100 adds,
//!   and synced after every add (the first 2 000 only);
//! - delivery: the clock passes each tick's end and the time `take_due` takes to
//!   return the tick (read its chain from the log, sort it) is the lateness the store
//!   adds; then the commit (a checkpoint) that follows each tick.
//!
//! Reports figures; asserts nothing about timings. `TMPDIR` picks the disk.

use std::time::{Duration, Instant};

use weir_timer::{Payload, TimerConfig, TimerStore};

const TIMERS: u64 = 100_000;
const NOW: u64 = 1_700_000_000_000;

fn config() -> TimerConfig {
    TimerConfig { precision_ms: 1000, max_delay_ms: 3_600_000, ..TimerConfig::default() }
}

fn due(n: u64) -> u64 {
    // The next minute, in no order.
    NOW + 1 + (n * 7_919) % 60_000
}

fn add_all(sync_every: Option<u64>, count: u64) -> (Duration, tempfile::TempDir, TimerStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) = TimerStore::open(dir.path(), &config(), NOW).expect("open");
    let start = Instant::now();
    for n in 0..count {
        store.add(NOW, due(n), Payload { commitlog_offset: n * 512, size: 512 }).expect("add");
        if sync_every.is_some_and(|every| (n + 1) % every == 0) {
            store.sync().expect("sync");
        }
    }
    store.sync().expect("sync");
    (start.elapsed(), dir, store)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    println!("weir-timer: {TIMERS} timers due within one minute (1 s ticks), {}", std::env::temp_dir().display());
    for (label, every, count) in [
        ("batched, one sync", None, TIMERS),
        ("sync every 100 adds", Some(100), TIMERS),
        ("sync every add", Some(1), 2_000),
    ] {
        let (elapsed, _dir, _store) = add_all(every, count);
        println!(
            "  add, {label:<20} {count:>7} timers in {:>8.1} ms: {:>9.0} adds/s, {:>6.2} us/add",
            elapsed.as_secs_f64() * 1e3,
            count as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / count as f64
        );
    }

    let (_, dir, mut store) = add_all(None, TIMERS);
    store.checkpoint().expect("checkpoint");
    let mut takes = Vec::new();
    let mut commits = Vec::new();
    let mut returned = 0;
    for second in 1..=61 {
        let now = NOW + second * 1000;
        let start = Instant::now();
        let taken = store.take_due(now, usize::MAX).expect("take");
        takes.push(start.elapsed());
        returned += taken.dues.len() as u64;
        let start = Instant::now();
        store.commit_delivered(taken.mark).expect("commit");
        commits.push(start.elapsed());
    }
    assert_eq!(returned, TIMERS, "every timer returned");
    for (what, mut times) in [("take_due per tick (~1 667 timers)", takes), ("commit per tick (checkpoint)", commits)] {
        times.sort();
        println!(
            "  {what:<36} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            times.last().expect("ticks").as_secs_f64() * 1e3
        );
    }
    let stats = store.stats();
    println!(
        "  log {} records, {} KiB on disk; store memory {} KiB",
        stats.log_records,
        stats.log_bytes >> 10,
        stats.heap_bytes >> 10
    );

    // Reopen after a crash: replay the whole minute's timers from the last checkpoint.
    drop(store);
    drop(dir);
    let (_, dir, store) = add_all(None, TIMERS);
    drop(store);
    let start = Instant::now();
    let (_store, report) = TimerStore::open(dir.path(), &config(), NOW).expect("reopen");
    println!(
        "  open after a crash: {} records verified and replayed in {:.1} ms",
        report.replayed,
        start.elapsed().as_secs_f64() * 1e3
    );
}
