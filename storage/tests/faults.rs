//! The store under the faults a disk really has, injected through the storage seam
//! (`weir_storage::fault`): a failed fsync, a full disk at each place it can bite,
//! and power loss. After each, the store is reopened and verified as `weir store
//! check` does: every acknowledged message is there and nothing else is corrupt.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use support::{block_on, config, message, read_all};
use weir_storage::fault::{Fault, Op, Recording};
use weir_storage::{AppendError, AppendStatus, FlushMode, ReadStatus, RecoveryMode, Store, StoreConfig, StoreState};

fn sync_config(dir: &Path) -> StoreConfig {
    StoreConfig { flush: FlushMode::SYNC, ..config(dir) }
}

/// Reopens the store with full verification, as `weir store check` does, and checks
/// that nothing is corrupt and that each queue of `expected` holds exactly its
/// messages (by their `n` property, in order).
fn check(dir: &Path, expected: &BTreeMap<u32, Vec<String>>) -> Store {
    let store = Store::open(StoreConfig { recovery: RecoveryMode::Full, ..sync_config(dir) }).expect("reopen");
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let report = store.verify();
    assert_eq!(report.corrupt, 0, "{report:?}");
    for (&queue, want) in expected {
        let got: Vec<String> = read_all(&store, "t", queue).into_iter().map(|(_, n)| n).collect();
        assert_eq!(&got, want, "queue {queue}");
    }
    store
}

/// Appends message `n` to queue `n % 2` and records it in `acked`.
fn append_acked(store: &Store, n: usize, acked: &mut BTreeMap<u32, Vec<String>>) {
    let queue = (n % 2) as u32;
    let result = store.append(&message("t", queue, n)).expect("append");
    assert_eq!(result.status, AppendStatus::SendOk);
    acked.entry(queue).or_default().push(n.to_string());
}

/// fsync (msync) fails: the store fails stop. The append whose flush failed is not
/// acknowledged, later appends are refused with a typed error, the state says why,
/// reads serve nothing past what reached the disk; a reopen recovers.
#[test]
fn a_failed_fsync_stops_the_store_and_a_reopen_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked = BTreeMap::new();
    {
        let store = Store::open(sync_config(dir.path())).expect("open");
        (0..40).for_each(|n| append_acked(&store, n, &mut acked));
        let fault = Fault::inject(&dir.path().join("commitlog"), Op::Sync, libc::EIO);
        let err = store.append(&message("t", 0, 40)).expect_err("its flush failed");
        assert!(matches!(err, AppendError::Failed(_)), "{err}");
        assert!(fault.hits() >= 1);
        let (_, durable) = store.append_batch_deferred(&[message("t", 1, 41)]).map_or((Vec::new(), None), |r| r);
        assert!(durable.is_none_or(|d| block_on(d).is_err()), "never reported durable");
        let err = store.append(&message("t", 1, 42)).expect_err("stopped");
        assert!(matches!(err, AppendError::Failed(_)), "{err}");
        assert!(matches!(store.state(), StoreState::Failed { .. }), "{:?}", store.state());
        assert!(store.state().reason().expect("why").contains("reopen"));
        // Message 40 is in the page cache and may even be indexed, but is not durable.
        assert!(store.wait_dispatched(Duration::from_secs(5)));
        for (&queue, want) in &acked {
            let served: Vec<String> = read_all(&store, "t", queue).into_iter().map(|(_, n)| n).collect();
            assert_eq!(&served, want, "queue {queue} serves only what is durable");
            let entries = store.queue_entries("t", queue, 0, usize::MAX).expect("entries");
            assert_eq!(entries.len(), want.len());
        }
        let page = store.read_queue("t", 0, 20, 10).expect("read at the durable end");
        assert_eq!(page.status, ReadStatus::NoNewMessage);
        assert!(store.messages_by_key("t", "key-40", 10).is_empty());
        drop(fault);
        assert!(store.append(&message("t", 0, 43)).is_err(), "healing the disk does not restart a stopped store");
    }
    // The restart: every acknowledged message, nothing corrupt, writes accepted again.
    let store = check(dir.path(), &BTreeMap::new());
    for (&queue, want) in &acked {
        let got: Vec<String> = read_all(&store, "t", queue).into_iter().map(|(_, n)| n).collect();
        assert!(got.starts_with(want), "queue {queue} lost an acknowledged message: {got:?}");
    }
    assert_eq!(store.state(), StoreState::Ok);
    assert_eq!(store.append(&message("t", 0, 44)).expect("append").status, AppendStatus::SendOk);
}

/// A queue file's sync fails: the checkpoint does not advance, appends go on (the
/// CommitLog holds every message), and a reopen rebuilds the queue from the log.
#[test]
fn a_failed_queue_file_sync_only_delays_the_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked = BTreeMap::new();
    {
        let store = Store::open(sync_config(dir.path())).expect("open");
        (0..20).for_each(|n| append_acked(&store, n, &mut acked));
        let _fault = Fault::inject(&dir.path().join("consumequeue"), Op::Sync, libc::EIO);
        (20..60).for_each(|n| append_acked(&store, n, &mut acked));
        assert_eq!(store.state(), StoreState::Ok);
        assert!(store.close().is_err(), "the final checkpoint cannot be written");
    }
    check(dir.path(), &acked);
}

/// No space for the next CommitLog segment: the append that needs it is refused
/// with a disk-full error and nothing of it is written; once space returns the
/// same append succeeds, and nothing acknowledged is lost.
#[test]
fn no_space_at_segment_preallocation_refuses_the_append_until_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    {
        let store = Store::open(sync_config(dir.path())).expect("open");
        let fault = Fault::inject(&dir.path().join("commitlog"), Op::Allocate, libc::ENOSPC);
        let mut n = 0;
        let refused = loop {
            let before = store.stats().max_offset;
            match store.append(&message("t", (n % 2) as u32, n)) {
                Ok(result) => {
                    assert_eq!(result.status, AppendStatus::SendOk);
                    acked.entry((n % 2) as u32).or_default().push(n.to_string());
                    n += 1;
                }
                Err(err) => {
                    assert_eq!(store.stats().max_offset, before, "nothing of the refused append was written");
                    break err;
                }
            }
            assert!(n < 10_000, "the pre-allocated segments fill");
        };
        assert!(matches!(refused, AppendError::DiskFull { .. }), "{refused}");
        assert!(fault.hits() >= 1);
        drop(fault);
        append_acked(&store, n, &mut acked);
        (n + 1..n + 50).for_each(|n| append_acked(&store, n, &mut acked));
    }
    check(dir.path(), &acked);
}

/// No space to grow a queue file while indexing an appended message: the message is
/// durable (acknowledged) but not yet consumable, so the store turns read-only with a
/// disk-full reason; once space returns the dispatcher indexes it and writes resume.
#[test]
fn no_space_to_index_an_append_makes_the_store_read_only_until_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked = BTreeMap::new();
    {
        let store = Store::open(sync_config(dir.path())).expect("open");
        (0..10).for_each(|n| append_acked(&store, n, &mut acked));
        let fault = Fault::inject(&dir.path().join("consumequeue"), Op::Allocate, libc::ENOSPC);
        // A new queue needs a new file: its first message is stored, not indexed.
        assert_eq!(store.append(&message("t", 7, 10)).expect("durable").status, AppendStatus::SendOk);
        acked.entry(7).or_default().push("10".into());
        let refused = loop {
            match store.append(&message("t", 0, 11)) {
                Err(err) => break err,
                Ok(_) => std::thread::sleep(Duration::from_millis(5)), // the dispatcher has not tried yet
            }
        };
        assert!(matches!(refused, AppendError::ReadOnly { out_of_space: true, .. }), "{refused}");
        assert!(matches!(store.state(), StoreState::ReadOnly { .. }));
        drop(fault);
        assert!(store.wait_dispatched(Duration::from_secs(10)), "indexed once space returned");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.state() != StoreState::Ok {
            assert!(std::time::Instant::now() < deadline, "writable again: {:?}", store.state());
            std::thread::sleep(Duration::from_millis(10));
        }
        // Whatever of message 11 was accepted while the dispatcher caught up counts too.
        acked
            .get_mut(&0)
            .expect("queue 0")
            .extend(read_all(&store, "t", 0).into_iter().map(|(_, n)| n).filter(|n| n == "11"));
        (12..40).for_each(|n| append_acked(&store, n, &mut acked));
        assert_eq!(read_all(&store, "t", 7), [(0, "10".to_owned())]);
    }
    check(dir.path(), &acked);
}

/// No space for a metadata write: deleting a topic fails with the file system's
/// error and changes nothing; the checkpoint keeps its previous version whole; once
/// space returns both succeed.
#[test]
fn no_space_for_metadata_leaves_the_previous_version_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked = BTreeMap::new();
    {
        let store = Store::open(sync_config(dir.path())).expect("open");
        (0..30).for_each(|n| append_acked(&store, n, &mut acked));
        store.append(&message("gone", 0, 0)).expect("append");
        assert!(store.wait_dispatched(Duration::from_secs(5)));
        let checkpoint = std::fs::read(dir.path().join("checkpoint")).expect("checkpoint");
        let fault = Fault::inject(dir.path(), Op::Metadata, libc::ENOSPC);
        let err = store.delete_topic("gone").expect_err("no space for the tombstone");
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(read_all(&store, "gone", 0).len(), 1, "the topic is still whole");
        (30..40).for_each(|n| append_acked(&store, n, &mut acked));
        assert!(store.close().is_err(), "the final checkpoint cannot be written");
        assert!(fault.hits() >= 2);
        assert_eq!(std::fs::read(dir.path().join("checkpoint")).expect("checkpoint"), checkpoint);
    }
    let store = check(dir.path(), &acked);
    store.delete_topic("gone").expect("space returned");
    assert!(read_all(&store, "gone", 0).is_empty());
}

/// A simulated power loss while writers append under sync flush keeps every byte
/// that was synced and, of everything written since, any subset of sectors.
fn power_loss(writers: u32, acks_before: usize, seed: u64, keep_per_mille: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let image = dir.path().join("image");
    let recording = Recording::start(&live);
    let store = Arc::new(Store::open(sync_config(&live)).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(parking_lot::Mutex::new(BTreeMap::<u32, Vec<String>>::new()));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (store, stop, acked) = (store.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut n = w as usize;
                while !stop.load(Ordering::Acquire) {
                    // Each writer owns a queue, so its acknowledgements are in queue order.
                    match store.append(&message("t", w, n)) {
                        Ok(r) if r.status == AppendStatus::SendOk => {
                            acked.lock().entry(w).or_default().push(n.to_string())
                        }
                        other => panic!("append: {other:?}"),
                    }
                    n += writers as usize;
                }
            })
        })
        .collect();
    while acked.lock().values().map(Vec::len).sum::<usize>() < acks_before {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Acknowledged before the image: under sync flush, synced before it, so recorded.
    let mut rng = seed | 1;
    let acked_at_crash = {
        let before = acked.lock().clone();
        recording
            .crash_image(&image, || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % 1000 < keep_per_mille
            })
            .expect("crash image");
        before
    };
    stop.store(true, Ordering::Release);
    threads.into_iter().for_each(|t| t.join().expect("writer"));
    drop(store);

    let recovered = Store::open(sync_config(&image)).expect("recover");
    assert!(recovered.wait_dispatched(Duration::from_secs(10)));
    let report = recovered.verify();
    assert_eq!(report.corrupt, 0, "{report:?}");
    let mut served = BTreeMap::new();
    for w in 0..writers {
        let messages = read_all(&recovered, "t", w);
        let offsets: Vec<u64> = messages.iter().map(|(q, _)| *q).collect();
        assert_eq!(offsets, (0..messages.len() as u64).collect::<Vec<_>>(), "queue {w} has no gaps");
        let ns: Vec<String> = messages.into_iter().map(|(_, n)| n).collect();
        let sent: Vec<String> = (0..ns.len()).map(|i| (w as usize + i * writers as usize).to_string()).collect();
        assert_eq!(ns, sent, "queue {w} serves what was sent, in order, nothing invented");
        let want = acked_at_crash.get(&w).map_or(&[][..], Vec::as_slice);
        assert!(ns.starts_with(want), "queue {w} lost an acknowledged message");
        served.insert(w, recovered.queue_entries("t", w, 0, usize::MAX).expect("entries"));
    }
    assert_eq!(report.records as usize, served.values().map(Vec::len).sum::<usize>(), "no record left unserved");
    recovered.close().expect("close");
    drop(recovered);

    // The queues and the key index rebuilt from the CommitLog alone match.
    std::fs::remove_dir_all(image.join("consumequeue")).expect("remove queues");
    std::fs::remove_dir_all(image.join("index")).expect("remove index");
    std::fs::remove_file(image.join("checkpoint")).expect("remove checkpoint");
    let rebuilt = Store::open(sync_config(&image)).expect("rebuild");
    assert!(rebuilt.wait_dispatched(Duration::from_secs(10)));
    for (&w, entries) in &served {
        assert_eq!(&rebuilt.queue_entries("t", w, 0, usize::MAX).expect("entries"), entries, "queue {w}");
        if let Some((_, last)) = entries.last() {
            let id = weir_storage::MessageId { store_id: rebuilt.store_id(), commitlog_offset: last.commitlog_offset };
            let key = rebuilt.message_by_id(&id.to_string()).expect("by id").view().keys().next().map(str::to_owned);
            let key = key.expect("a key");
            assert_eq!(rebuilt.messages_by_key("t", &key, 4).len(), 1, "key {key} is indexed");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Power loss at any moment: every acknowledged message survives, nothing after the
    /// first invalid record is served, and the queues and indexes rebuild to match.
    #[test]
    fn power_loss_keeps_every_acknowledged_message(
        writers in 1u32..4,
        acks_before in 0usize..600,
        seed in any::<u64>(),
        keep_per_mille in prop_oneof![Just(0u64), Just(500), Just(1000), 0u64..1000],
    ) {
        power_loss(writers, acks_before, seed, keep_per_mille);
    }
}
