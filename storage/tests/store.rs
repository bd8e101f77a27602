//! The store through its public API: append, read, look up, recover, retain.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use support::{block_on, config, message, read_all};
use weir_storage::{AppendError, AppendStatus, FlushMode, ReadStatus, RecoveryMode, Store, StoreConfig, tag_hash};

#[test]
fn round_trip_across_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ids = Vec::new();
    {
        let store = Store::open(config(dir.path())).expect("open");
        for n in 0..600 {
            let result = store.append(&message("orders", (n % 3) as u32, n)).expect("append");
            assert_eq!(result.status, AppendStatus::SendOk);
            assert_eq!(result.queue_offset, (n / 3) as u64);
            ids.push(result.msg_id.to_string());
        }
        assert!(store.wait_dispatched(Duration::from_secs(5)));
        assert!(store.stats().commitlog_bytes > 64 * 1024, "segments rolled");
        store.close().expect("close");
    }
    let store = Store::open(config(dir.path())).expect("reopen");
    assert!(store.recovery().clean_shutdown);
    for q in 0..3u32 {
        let got = read_all(&store, "orders", q);
        let want: Vec<_> =
            (0..600).filter(|n| n % 3 == q as usize).enumerate().map(|(i, n)| (i as u64, n.to_string())).collect();
        assert_eq!(got, want);
    }
    let record = store.message_by_id(&ids[123]).expect("by id");
    let view = record.view();
    assert_eq!((view.topic(), view.queue_id(), view.queue_offset()), ("orders", 0, 41));
    assert_eq!(view.to_message(), message("orders", 0, 123));
    assert_eq!(&record.body()[..], view.body());
    // Appends continue at the recovered queue offsets.
    assert_eq!(store.append(&message("orders", 1, 600)).expect("append").queue_offset, 200);
}

/// An entry reader serves the same records as one-off reads, across segments and
/// while appends keep publishing more of the segment it holds.
#[test]
fn an_entry_reader_follows_appends_and_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    let mut reader = store.entry_reader();
    let mut next = 0;
    for round in 0..6 {
        for n in 0..100 {
            store.append(&message("t", 0, round * 100 + n)).expect("append");
        }
        assert!(store.wait_dispatched(Duration::from_secs(5)));
        for (_, entry) in store.queue_entries("t", 0, next, usize::MAX).expect("entries") {
            assert_eq!(reader.read(&entry).expect("read"), store.read_entry(&entry).expect("read"));
            next += 1;
        }
    }
    assert_eq!(next, 600);
    assert!(store.stats().commitlog_bytes > 64 * 1024, "segments rolled");
    let (_, last) = store.queue_entries("t", 0, 599, 1).expect("entries")[0];
    let past_the_end = weir_storage::CqEntry { commitlog_offset: last.commitlog_offset + u64::from(last.size), ..last };
    assert!(matches!(reader.read(&past_the_end), Err(weir_storage::ReadError::OffsetOutOfRange(_))));
}

#[test]
fn entries_carry_tag_hashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    for n in 0..4 {
        store.append(&message("t", 0, n)).expect("append");
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    let hashes: Vec<u64> =
        store.queue_entries("t", 0, 0, 10).expect("entries").iter().map(|(_, e)| e.tag_hash).collect();
    assert_eq!(hashes, [tag_hash("even"), tag_hash("odd"), tag_hash("even"), tag_hash("odd")]);
    assert_ne!(tag_hash("even"), tag_hash("odd"));
    assert_eq!(tag_hash(""), 0);
}

#[test]
fn lookups_by_key_and_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    let mut stamps = Vec::new();
    for n in 0..300 {
        let mut m = message("pay", 0, n);
        m.keys.push("shared".into());
        stamps.push(store.append(&m).expect("append").store_timestamp_ms);
        if n == 150 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    let found = store.messages_by_key("pay", "key-77", 10);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].view().property("n"), Some("77"));
    assert_eq!(store.messages_by_key("pay", "shared", 5).len(), 5);
    assert!(store.messages_by_key("other", "key-77", 10).is_empty());
    assert_eq!(
        store.offset_at_time("pay", 0, stamps[151]),
        stamps.iter().position(|&s| s >= stamps[151]).expect("found") as u64
    );
    assert_eq!(store.offset_at_time("pay", 0, 0), 0);
    assert_eq!(store.offset_at_time("pay", 0, i64::MAX), 300);
}

#[test]
fn read_statuses_at_the_queue_edges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    assert_eq!(store.read_queue("none", 0, 0, 10).expect("read").status, ReadStatus::NoSuchQueue);
    store.append(&message("t", 0, 1)).expect("append");
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    assert_eq!(store.read_queue("t", 0, 1, 10).expect("read").status, ReadStatus::NoNewMessage);
    let overflow = store.read_queue("t", 0, 5, 10).expect("read");
    assert_eq!((overflow.status, overflow.next_offset), (ReadStatus::OffsetOverflow, 1));
}

#[test]
fn invalid_messages_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    let mut big = message("t", 0, 0);
    big.body = vec![0u8; 8 * 1024 + 1].into();
    let err = store.append(&big).expect_err("too large");
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
    let batch = [message("t", 0, 1), message("../x", 0, 2)];
    assert!(matches!(store.append_batch(&batch), Err(AppendError::Invalid(_))));
    assert_eq!(store.stats().max_offset, 0);
}

#[test]
fn concurrent_sync_appends_share_flushes_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(StoreConfig { flush: FlushMode::SYNC, ..config(dir.path()) }).expect("open"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..50).map(|n| store.append(&message("t", t, n)).expect("append").status).collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        assert!(thread.join().expect("join").iter().all(|s| *s == AppendStatus::SendOk));
    }
    assert!(store.stats().flushed_offset >= store.stats().max_offset);
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    for q in 0..8 {
        assert_eq!(read_all(&store, "t", q).len(), 50);
    }
}

/// Deferred appends from many threads: each batch's future resolves once its bytes
/// are flushed, the flushes are shared, and a future dropped unawaited withdraws.
#[test]
fn deferred_sync_appends_resolve_once_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(StoreConfig { flush: FlushMode::SYNC, ..config(dir.path()) }).expect("open"));
    let (results, durable) = store.append_batch_deferred(&[]).expect("empty batch");
    assert!(results.is_empty() && durable.is_none(), "an empty batch appends nothing");
    assert!(store.append_batch(&[]).expect("empty batch").is_empty(), "and does not wait either");
    drop(store.append_batch_deferred(&[message("t", 0, 0)]).expect("append").1);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    let (results, durable) = store.append_batch_deferred(&[message("t", t, n)]).expect("append");
                    block_on(durable.expect("sync flush gives a future")).expect("durable");
                    let end = results[0].msg_id.commitlog_offset;
                    assert!(store.stats().flushed_offset > end, "resolved only once flushed");
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().expect("join"));
    let async_store = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(async_store.path())).expect("open");
    assert!(store.append_batch_deferred(&[message("t", 0, 0)]).expect("append").1.is_none(), "async: no wait");
}

#[test]
fn a_second_process_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = Store::open(config(dir.path())).expect("open");
    let err = Store::open(config(dir.path())).expect_err("locked");
    assert!(err.to_string().contains("locked"), "{err}");
}

#[test]
fn refuses_writes_above_the_disk_high_water_mark() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Any real file system is fuller than 0.0001 %.
    let store = Store::open(StoreConfig { disk_high_water: 0.000_001, disk_clean_forcibly: 1.0, ..config(dir.path()) })
        .expect("open");
    store.clean().expect("clean");
    let err = store.append(&message("t", 0, 0)).expect_err("disk full");
    assert!(matches!(err, AppendError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("high-water mark"));
}

#[test]
fn retention_deletes_expired_sealed_segments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StoreConfig { retention: Duration::ZERO, ..config(dir.path()) }).expect("open");
    for n in 0..600 {
        store.append(&message("t", 0, n)).expect("append");
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    let before = store.stats();
    store.clean().expect("clean");
    let after = store.stats();
    assert!(after.min_offset > before.min_offset, "old segments deleted");
    assert!(after.max_offset == before.max_offset, "active segment kept");
    let remaining = read_all(&store, "t", 0);
    assert!(!remaining.is_empty() && remaining.len() < 600);
    assert_eq!(remaining.last().map(|(_, n)| n.as_str()), Some("599"));
    let (min, max) = store.queue_offsets("t", 0);
    assert_eq!((min, max), (remaining[0].0, 600));
}

/// Writes `count` messages over 3 queues, closes cleanly, returns the CommitLog bytes.
/// Appends `count` messages to three queues; returns each record's CommitLog range, in order.
fn populate(dir: &Path, count: usize) -> Vec<(u64, u64)> {
    let store = Store::open(config(dir)).expect("open");
    for n in 0..count {
        store.append(&message("t", (n % 3) as u32, n)).expect("append");
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    let mut spans: Vec<(u64, u64)> = (0..3)
        .flat_map(|q| store.queue_entries("t", q, 0, usize::MAX).expect("entries"))
        .map(|(_, entry)| (entry.commitlog_offset, entry.commitlog_offset + u64::from(entry.size)))
        .collect();
    spans.sort_unstable();
    store.close().expect("close");
    spans
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> =
        std::fs::read_dir(dir.join("commitlog")).expect("dir").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate,
    Zero,
    Garbage(Vec<u8>),
}

fn apply(path: &Path, at: u64, damage: &Damage) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).expect("open");
    let len = file.metadata().expect("meta").len();
    match damage {
        Damage::Truncate => file.set_len(at).expect("truncate"),
        Damage::Zero => {
            file.seek(SeekFrom::Start(at)).expect("seek");
            file.write_all(&vec![0; (len - at) as usize]).expect("zero");
        }
        Damage::Garbage(bytes) => {
            file.seek(SeekFrom::Start(at)).expect("seek");
            file.write_all(&bytes[..bytes.len().min((len - at) as usize)]).expect("garbage");
        }
    }
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::Truncate),
        Just(Damage::Zero),
        prop::collection::vec(any::<u8>(), 1..600).prop_map(Damage::Garbage),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Damage anywhere: a full-verification reopen keeps every record before
    /// the damage and serves nothing after it.
    #[test]
    fn recovery_keeps_the_prefix_before_any_damage(fraction in 0.0f64..1.0, damage in arb_damage()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let spans = populate(dir.path(), 400);
        let offsets: Vec<u64> = spans.iter().map(|&(start, _)| start).collect();
        let files = segment_files(dir.path());
        let total_written = *offsets.last().expect("written");
        let at = (total_written as f64 * fraction) as u64;
        let segment = 64 * 1024;
        let path = &files[(at / segment) as usize];
        apply(path, at % segment, &damage);
        // Everything after the damaged segment must go too: remove nothing by hand.
        let store = Store::open(StoreConfig { recovery: RecoveryMode::Full, ..config(dir.path()) }).expect("reopen");
        let survivors: usize = (0..3).map(|q| read_all(&store, "t", q).len()).sum();
        // Records that end before the damage must survive; none that start at or after it may be
        // served, unless the damage hit only a segment's end padding past the blank's 8-byte header:
        // that holds no data, and recovery rightly skips it.
        let intact_before = offsets.iter().zip(offsets.iter().skip(1)).filter(|(_, next)| **next <= at).count();
        let starting_before = offsets.iter().filter(|&&o| o < at).count();
        prop_assert!(survivors >= intact_before, "lost records before the damage: {survivors} < {intact_before}");
        let in_padding = spans.iter().all(|&(start, end)| at < start || at >= end + 8);
        if !in_padding {
            prop_assert!(survivors <= starting_before.max(intact_before), "served records after the damage");
        }
        let report = store.verify();
        prop_assert_eq!(report.corrupt, 0);
        prop_assert_eq!(report.records as usize, survivors);
        // The store keeps working after recovery.
        let r = store.append(&message("t", 0, 9999)).expect("append after recovery");
        prop_assert_eq!(r.status, AppendStatus::SendOk);
    }

    /// The ConsumeQueues rebuilt from the CommitLog equal the ones written live.
    #[test]
    fn rebuilt_consume_queues_equal_live_ones(count in 1usize..500, queues in 1u32..5) {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = {
            let store = Store::open(config(dir.path())).expect("open");
            for n in 0..count {
                store.append(&message("t", n as u32 % queues, n)).expect("append");
            }
            prop_assert!(store.wait_dispatched(Duration::from_secs(5)));
            let live: BTreeMap<u32, _> = (0..queues).map(|q| (q, store.queue_entries("t", q, 0, usize::MAX))).collect();
            store.close().expect("close");
            live
        };
        std::fs::remove_dir_all(dir.path().join("consumequeue")).expect("remove queues");
        std::fs::remove_file(dir.path().join("checkpoint")).expect("remove checkpoint");
        let store = Store::open(config(dir.path())).expect("reopen");
        prop_assert!(store.recovery().replayed_from == 0);
        let rebuilt: BTreeMap<u32, _> = (0..queues).map(|q| (q, store.queue_entries("t", q, 0, usize::MAX))).collect();
        prop_assert_eq!(rebuilt, live);
    }
}

#[test]
fn a_queue_missing_entries_is_rebuilt_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path(), 200);
    // Lose one queue entirely; the checkpoint says everything was dispatched.
    std::fs::remove_dir_all(dir.path().join("consumequeue/t/1")).expect("remove");
    std::fs::write(dir.path().join("abort"), b"").expect("simulate crash");
    {
        let store = Store::open(config(dir.path())).expect("reopen");
        // New appends to queue 1 reveal the gap at the next open at the latest;
        // the replay from the checkpoint alone cannot see it, so nothing is lost either way.
        store.append(&message("t", 1, 1000)).expect("append");
    }
    let store = Store::open(config(dir.path())).expect("reopen");
    let q1 = read_all(&store, "t", 1);
    assert_eq!(q1.len(), 68);
    assert_eq!(q1[0], (0, "1".to_owned()));
}

#[test]
fn reopening_with_other_file_sizes_keeps_the_original_geometry() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path(), 300);
    let store =
        Store::open(StoreConfig { segment_size: 1 << 20, consume_queue_entries_per_file: 1000, ..config(dir.path()) })
            .expect("reopen");
    assert_eq!(store.config().segment_size, 64 * 1024);
    assert_eq!((0..3).map(|q| read_all(&store, "t", q).len()).sum::<usize>(), 300);
}

#[test]
fn refuses_a_directory_that_is_not_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("store.meta"), "something else\n").expect("write");
    let err = Store::open(config(dir.path())).expect_err("not a store");
    assert!(err.to_string().contains("not a version-1 Weir store"), "{err}");
}

#[test]
fn a_deleted_topic_is_never_served_again_and_its_name_starts_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    let old: Vec<_> = (0..5).map(|n| store.append(&message("t", 0, n)).expect("append")).collect();
    store.append(&message("other", 0, 99)).expect("append");
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    store.delete_topic("t").expect("delete");
    assert_eq!(store.queue_offsets("t", 0), (0, 0), "its queues are gone");
    assert!(!dir.path().join("consumequeue").join("t").exists(), "and their files");
    assert!(store.message_by_id(&old[0].msg_id.to_string()).is_err(), "not even by id");
    assert!(store.messages_by_key("t", "key-1", 10).is_empty(), "nor by key");
    let new = store.append(&message("t", 0, 100)).expect("append to the new topic");
    assert_eq!(new.queue_offset, 0, "the new topic starts at queue offset 0");
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    let expected = vec![(0, "100".to_owned())];
    assert_eq!(read_all(&store, "t", 0), expected);
    drop(store);

    // A reopen, and a rebuild of every queue from the CommitLog, still skip the old records.
    let store = Store::open(config(dir.path())).expect("reopen");
    assert_eq!(read_all(&store, "t", 0), expected);
    drop(store);
    std::fs::remove_dir_all(dir.path().join("consumequeue").join("other")).expect("lose a queue");
    let store = Store::open(config(dir.path())).expect("reopen");
    assert_eq!(store.recovery().replayed_from, 0, "a lost queue replays the whole CommitLog");
    assert_eq!(read_all(&store, "t", 0), expected);
    assert_eq!(read_all(&store, "other", 0), [(0, "99".to_owned())]);
    assert_eq!(store.append(&message("t", 0, 101)).expect("append").queue_offset, 1);
}

#[test]
fn many_queues_stay_within_the_map_budget_and_read_back_after_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StoreConfig { max_mapped_queue_files: 16, ..config(dir.path()) };
    let store = Store::open(config.clone()).expect("open");
    for round in 0..3 {
        for q in 0..100 {
            store.append(&message(&format!("t{}", q % 25), q / 25, round * 1000 + q as usize)).expect("append");
        }
        assert!(store.wait_dispatched(Duration::from_secs(5)));
        assert!(store.stats().mapped_queue_files.0 <= 16, "{:?}", store.stats().mapped_queue_files);
    }
    let expected = |q: usize| -> Vec<(u64, String)> {
        (0..3).map(|round| (round as u64, (round * 1000 + q).to_string())).collect()
    };
    for q in 0..100 {
        assert_eq!(read_all(&store, &format!("t{}", q % 25), (q / 25) as u32), expected(q));
    }
    assert!(store.stats().queue_file_evictions > 0, "reading 100 queues maps more than 16 files");
    // Three messages cost one page per queue file (here files hold 64 entries, 1 280
    // bytes, less than a page), not a preallocated file.
    assert_eq!(store.stats().consume_queue_bytes, 100 * 1280);
    drop(store);
    let store = Store::open(config).expect("reopen");
    assert_eq!(store.stats().mapped_queue_files.0, 0, "reopening maps nothing");
    for q in (0..100).rev() {
        assert_eq!(read_all(&store, &format!("t{}", q % 25), (q / 25) as u32), expected(q));
    }
    assert!(store.stats().mapped_queue_files.0 <= 16);
}

#[test]
fn a_replay_longer_than_its_time_at_open_finishes_while_the_store_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    populate(dir.path(), 1200);
    // Lose every queue: the open replays the whole CommitLog, with no time for it.
    std::fs::remove_dir_all(dir.path().join("consumequeue")).expect("remove");
    let config = StoreConfig { replay_at_open: Duration::ZERO, ..config(dir.path()) };
    let store = Store::open(config).expect("reopen");
    // The replay was left to the dispatcher thread (which may already have finished it).
    assert!(store.recovery().replay_deferred, "{:?}", store.recovery());
    // Appends go on meanwhile, at the right queue offsets.
    assert_eq!(store.append(&message("t", 0, 5000)).expect("append").queue_offset, 400);
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let q0 = read_all(&store, "t", 0);
    assert_eq!(q0.len(), 401);
    assert_eq!(q0[400], (400, "5000".to_owned()));
    assert!(q0.iter().enumerate().all(|(i, (offset, _))| *offset == i as u64));
    assert_eq!(read_all(&store, "t", 1).len() + read_all(&store, "t", 2).len(), 800);
}

/// The public read and lookup APIs take any input without panicking: zero counts,
/// unknown topics and queues, offsets past the end, extreme times, malformed ids.
#[test]
fn edge_inputs_are_answered_not_panicked_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).expect("open");
    for n in 0..3 {
        store.append(&message("t", 0, n)).expect("append");
    }
    assert!(store.wait_dispatched(Duration::from_secs(5)));
    assert!(store.queue_entries("t", 0, 0, 0).expect("zero entries").is_empty());
    assert!(store.queue_entries("t", 0, u64::MAX, 8).map(|e| e.is_empty()).unwrap_or(true));
    assert!(store.queue_entries("nope", 7, 0, 8).map(|e| e.is_empty()).unwrap_or(true));
    assert_eq!(store.read_queue("t", 0, 0, 0).expect("zero max").messages.len(), 0);
    assert_eq!(store.read_queue("t", 0, u64::MAX, 8).expect("past the end").messages.len(), 0);
    assert_eq!(store.read_queue("nope", u32::MAX, 0, 8).expect("no queue").messages.len(), 0);
    assert!(store.messages_by_key("t", "k", 0).len() <= 1);
    assert!(store.messages_by_key("", "", usize::MAX).is_empty());
    assert_eq!(store.queue_offsets("nope", u32::MAX), (0, 0));
    for time in [i64::MIN, -1, 0, i64::MAX] {
        assert!(store.offset_at_time("t", 0, time) <= 3);
        assert_eq!(store.offset_at_time("nope", 0, time), 0);
    }
    for id in ["", "0", "not-an-id", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "00000000000000000000000000000000"] {
        assert!(store.message_by_id(id).is_err(), "{id}");
    }
    assert!(store.append_batch(&[]).expect("empty batch").is_empty());
}
