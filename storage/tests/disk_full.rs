//! The store on a small file system that fills up: many queues and messages, then a
//! filler file taking the last bytes. No acknowledged message may become unconsumable,
//! sends must be refused with a disk-full error first, a restart on the full disk must
//! serve reads, and freeing space must resume writes with nothing lost.
//!
//! The file system is a 24 MiB tmpfs the test mounts (2 000 queues of a page each
//! take 8 MiB of it), so it needs root, as CI has: without the mount it fails, it
//! does not skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use weir_storage::{AppendError, Message, ReadStatus, Store, StoreConfig, StoreState};

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallFileSystem {
    dir: tempfile::TempDir,
}

impl SmallFileSystem {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "weir-test", &dir.path().to_string_lossy()])
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root (CI runs as root)");
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Fills the file system to its last byte with a file at `path`.
    fn fill(&self, path: &Path) {
        let mut file = std::fs::File::create(path).expect("filler");
        let chunk = vec![0xAB; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        let mut byte = [0xAB];
        while file.write_all(&byte).is_ok() {
            byte[0] ^= 1;
        }
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Longer than the store's interval between free-space readings.
const SPACE_CHECK: Duration = Duration::from_millis(60);

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segment_size: 1 << 20,
        max_message_size: 16 << 10,
        index_slots: 1024,
        index_entries: 4096,
        // Only the reserve refuses writes here; retention must not delete unconsumed data.
        disk_reserve_bytes: 3 << 20,
        disk_high_water: 1.0,
        disk_clean_forcibly: 1.0,
        ..StoreConfig::new(dir)
    }
}

fn message(n: u32) -> Message {
    Message {
        topic: format!("t{}", n % 500),
        queue_id: (n / 500) % 4,
        tag: String::new(),
        keys: Vec::new(),
        properties: vec![("n".into(), n.to_string())],
        body: vec![b'x'; 900].into(),
        born_timestamp_ms: 1_700_000_000_000,
        born_host: "127.0.0.1:9000".parse().expect("addr"),
        flags: 0,
    }
}

/// Every `n` property readable from the store's queues, sorted.
fn consumable(store: &Store) -> Vec<u32> {
    let mut seen = Vec::new();
    for (topic, queue_id, _, _) in store.queues() {
        let mut offset = 0;
        loop {
            let page = store.read_queue(&topic, queue_id, offset, 64).expect("read");
            if page.status != ReadStatus::Found {
                break;
            }
            seen.extend(
                page.messages.iter().map(|m| m.record.view().property("n").expect("n").parse::<u32>().expect("n")),
            );
            offset = page.next_offset;
        }
    }
    seen.sort_unstable();
    seen
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_full_disk_refuses_sends_before_losing_any_and_recovers_by_itself() {
    let fs = SmallFileSystem::mount("24m");
    let dir = fs.path();
    // Space someone else holds, freed at the end.
    let ballast = fs.dir.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 6 << 20]).expect("ballast");
    let store = Store::open(config(&dir)).expect("open");

    // Many queues and messages until the store refuses even with nothing left to
    // dispatch (while the dispatcher lags, what it will still write counts against the
    // space, so a refusal may pass once it caught up): every acknowledged one counts.
    let mut acked = Vec::new();
    let mut refused_while_pending = 0;
    let refusal = loop {
        match store.append(&message(acked.len() as u32)) {
            Ok(_) => acked.push(acked.len() as u32),
            Err(err) => {
                let pending = store.stats().dispatch_lag_bytes() > 0;
                assert!(store.wait_dispatched(Duration::from_secs(10)), "the dispatcher catches up: {err}");
                if !pending {
                    break err;
                }
                refused_while_pending += 1;
                std::thread::sleep(SPACE_CHECK);
            }
        }
        assert!(acked.len() < 100_000, "a 24 MiB file system never filled");
    };
    assert!(matches!(refusal, AppendError::DiskFull { .. }), "refused with the disk-full error: {refusal}");
    assert!(
        acked.len() > 3_000,
        "only {} messages fit ({refused_while_pending} refusals while dispatching)",
        acked.len()
    );
    let indexed = store.wait_dispatched(Duration::from_secs(10));
    assert!(indexed, "every acknowledged message is indexed: {:?} {:?}", store.state(), store.stats());
    assert_eq!(consumable(&store), acked, "every acknowledged message is consumable");
    store.close().expect("close");
    drop(store);

    // The last bytes taken by someone else: a restart needs no new space and serves reads.
    let filler = fs.dir.path().join("filler");
    fs.fill(&filler);
    let store = Store::open(config(&dir)).expect("a restart on a full disk opens");
    assert_eq!(consumable(&store), acked);
    let state = store.state();
    assert_eq!(state.name(), "read_only", "{state:?}");
    assert!(state.reason().is_some_and(|r| r.contains("free")), "{state:?}");
    assert!(matches!(store.append(&message(0)), Err(AppendError::DiskFull { .. })));

    // Space returns: writes resume by themselves, nothing lost.
    std::fs::remove_file(&filler).expect("free the space");
    std::fs::remove_file(&ballast).expect("free the space");
    let mut more = Vec::new();
    wait_for("writes to resume", || {
        let n = acked.len() as u32 + more.len() as u32;
        match store.append(&message(n)) {
            Ok(_) => {
                more.push(n);
                true
            }
            Err(_) => false,
        }
    });
    assert_eq!(store.state(), StoreState::Ok);
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let mut expected: Vec<u32> = acked.iter().chain(&more).copied().collect();
    expected.sort_unstable();
    assert_eq!(consumable(&store), expected);
    store.close().expect("close");
}
