//! A million pending timers: memory stays O(slots), not O(timers). The timers live
//! in the timer log (file-backed pages: `RssFile`/`RssShmem`, which the kernel can
//! drop), the process's anonymous memory holds the wheel. Alone in its binary, so no
//! other test allocates in the process meanwhile.

mod support;

use weir_timer::{Payload, TimerConfig, TimerStore};

const TIMERS: u64 = 1_000_000;

/// The process's resident anonymous memory (heap, stacks), in bytes.
fn rss_anon() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("RssAnon:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn a_million_pending_timers_cost_the_wheel_not_the_timers() {
    let dir = support::tempdir();
    // One-second ticks, delays up to an hour: 7 200 slots (225 KiB).
    let config = TimerConfig { precision_ms: 1000, max_delay_ms: 3_600_000, ..TimerConfig::default() };
    let now = 1_700_000_000_000u64;
    let before = rss_anon();
    let (mut store, _) = TimerStore::open(dir.path(), &config, now).expect("open");
    for n in 0..TIMERS {
        // Spread over the hour, in no order.
        let due = now + 1000 + (n * 7_919) % 3_599_000;
        store.add(now, due, Payload { commitlog_offset: n, size: 100 }).expect("add");
    }
    store.sync().expect("sync");
    assert_eq!(store.pending(), TIMERS);
    let heap = store.heap_bytes();
    assert!(heap < 1 << 20, "the store holds {heap} bytes");
    let grown = rss_anon().zip(before).map(|(after, before)| after.saturating_sub(before));
    // Holding the timers would take at least 24 MB (due, id, offset); the wheel takes 225 KiB.
    if let Some(grown) = grown {
        assert!(grown < 8 << 20, "anonymous memory grew by {grown} bytes for {TIMERS} timers");
    }

    // Reopened after a crash (no checkpoint since the adds): the wheel is replayed from
    // the log, and the timers come out in order, tick by tick.
    drop(store);
    let (mut store, report) = TimerStore::open(dir.path(), &config, now).expect("reopen");
    assert_eq!((report.pending, report.replayed), (TIMERS, TIMERS));
    let mut last = 0;
    let mut taken = 0;
    for second in 1..=10 {
        let batch = store.take_due(now + second * 1000, usize::MAX).expect("take");
        for due in &batch.dues {
            assert!(due.due_ms >= last && due.due_ms <= now + second * 1000);
            last = due.due_ms;
        }
        taken += batch.dues.len() as u64;
        store.commit_delivered(batch.mark).expect("commit");
    }
    assert!(taken > 2_000, "{taken} timers in the first ten seconds");
    assert_eq!(store.pending(), TIMERS - taken);
    let grown = rss_anon().zip(before).map(|(after, before)| after.saturating_sub(before));
    if let Some(grown) = grown {
        assert!(grown < 8 << 20, "anonymous memory grew by {grown} bytes after reopening");
    }
}
