//! Consumer offsets per (group, member, topic, queue), kept in the embedded
//! transactional store `<data_dir>/consumer_offsets.redb` (redb).
//!
//! Every commit is durable when it is acknowledged. One writer thread
//! (`weir-offsets`) takes whatever commits are waiting, writes them in one
//! transaction with one fsync, then updates the in-memory table and answers
//! each caller: concurrent commits share the fsync (group commit), no async
//! worker ever waits on the disk, and a failed write leaves memory as it was.
//! Reads are served from memory. After a failed write (a full disk, an I/O
//! error) redb refuses every transaction until reopened: the writer reopens it,
//! which rolls back to the last durable commit, so commits resume once the disk
//! recovers.
//!
//! Why redb and not a JSON file replaced atomically (what topics and
//! subscriptions use): an offset changes every few seconds per queue, and a
//! JSON file is rewritten whole, so each commit would cost the size of every
//! group's offsets plus two fsyncs. The figures are in the README ("Consumer
//! offsets").

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::json;
use super::redb_file::RedbFile;
use crate::core::CoreError;

/// The database file, in the data directory.
pub const FILE: &str = "consumer_offsets.redb";
/// The JSON file older brokers wrote; imported once, then removed.
const LEGACY_FILE: &str = "consumer_offsets.json";

/// (group, member, topic, queue id) → (offset, Unix ms of the commit).
const OFFSETS: TableDefinition<(&str, &str, &str, u32), (u64, u64)> = TableDefinition::new("consumer_offsets");

/// "epoch" → how many times a broker opened this store.
const BROKER: TableDefinition<&str, u64> = TableDefinition::new("broker");

/// Most commits written in one transaction.
const MAX_BATCH: usize = 4096;

/// Whose offset: a group's (clustering, `member` empty) or one member's (broadcasting).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    /// The consumer group.
    pub group: String,
    /// The member, for groups that keep offsets per member; empty otherwise.
    pub member: String,
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
}

/// A committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The next offset to consume.
    pub offset: u64,
    /// When it was committed, Unix ms.
    pub at_ms: u64,
}

type Table = BTreeMap<OffsetKey, Committed>;

/// A change for the writer thread.
enum Change {
    /// Set these offsets.
    Commit(Vec<(OffsetKey, u64)>),
    /// Forget every offset in a deleted topic.
    RemoveTopic(String),
}

struct Job {
    change: Change,
    done: oneshot::Sender<io::Result<()>>,
}

/// Every group's committed offsets.
#[derive(Debug)]
pub struct OffsetStore {
    table: Arc<RwLock<Table>>,
    epoch: u64,
    jobs: parking_lot::Mutex<Option<mpsc::Sender<Job>>>,
    writer: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl OffsetStore {
    /// Opens (or creates) the store in `data_dir`, importing a `consumer_offsets.json`
    /// left by an older broker, and starts its writer thread. Blocking.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(FILE);
        let db = open_db(&path)?;
        let legacy = data_dir.join(LEGACY_FILE);
        if legacy.try_exists()? {
            import_legacy(&db, &legacy)?;
            std::fs::remove_file(&legacy)?;
            weir_storage::durable::sync_dir(data_dir)?;
        }
        let table = Arc::new(RwLock::new(load(&db)?));
        let epoch = next_epoch(&db)?;
        let (jobs, queue) = mpsc::channel();
        let writer = {
            let table = table.clone();
            std::thread::Builder::new()
                .name("weir-offsets".into())
                .spawn(move || write_loop(Writer { path, db: Some(db) }, &table, &queue))?
        };
        Ok(Self {
            table,
            epoch,
            jobs: parking_lot::Mutex::new(Some(jobs)),
            writer: parking_lot::Mutex::new(Some(writer)),
        })
    }

    /// How many times a broker has opened this store, this time included: it grows
    /// with every start, so consumer group generations can start above any of an
    /// earlier run.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Durably sets `offsets`; memory changes only once they are on disk.
    pub async fn commit(&self, offsets: Vec<(OffsetKey, u64)>) -> Result<(), CoreError> {
        self.run(Change::Commit(offsets)).await.map_err(|err| CoreError::metadata("cannot commit offsets", err))
    }

    /// Durably forgets every offset in a deleted `topic`.
    pub async fn remove_topic(&self, topic: &str) -> Result<(), CoreError> {
        self.run(Change::RemoveTopic(topic.to_owned()))
            .await
            .map_err(|err| CoreError::metadata(format!("cannot remove the offsets of topic {topic}"), err))
    }

    async fn run(&self, change: Change) -> io::Result<()> {
        let (done, answer) = oneshot::channel();
        let sent = self.jobs.lock().as_ref().is_some_and(|jobs| jobs.send(Job { change, done }).is_ok());
        if !sent {
            return Err(io::Error::other("the offset store is closed"));
        }
        answer.await.unwrap_or_else(|_| Err(io::Error::other("the offset writer stopped")))
    }

    /// The committed offset, if any.
    pub fn fetch(&self, key: &OffsetKey) -> Option<Committed> {
        self.table.read().get(key).copied()
    }

    /// Every committed offset of `group` (and `topic`, if given), in key order.
    pub fn of_group(&self, group: &str, topic: Option<&str>) -> Vec<(OffsetKey, Committed)> {
        let table = self.table.read();
        table
            .range(first_key(group)..)
            .take_while(|(key, _)| key.group == group)
            .filter(|(key, _)| topic.is_none_or(|t| key.topic == t))
            .map(|(key, committed)| (key.clone(), *committed))
            .collect()
    }

    /// Whether `group` committed any offset.
    pub fn has_group(&self, group: &str) -> bool {
        self.table.read().range(first_key(group)..).next().is_some_and(|(key, _)| key.group == group)
    }

    /// Every group with a committed offset, by name.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self.table.read().keys().map(|key| key.group.clone()).collect();
        groups.dedup();
        groups
    }

    /// Stops the writer after the changes already queued. Blocking.
    pub fn close(&self) {
        self.jobs.lock().take();
        if let Some(writer) = self.writer.lock().take()
            && writer.join().is_err()
        {
            tracing::error!("the offset writer panicked");
        }
    }
}

impl Drop for OffsetStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// The lowest key a group's offsets can have.
fn first_key(group: &str) -> OffsetKey {
    OffsetKey { group: group.to_owned(), member: String::new(), topic: String::new(), queue_id: 0 }
}

/// Opens (creating if needed) the database at `path`.
fn open_db(path: &Path) -> io::Result<redb::Database> {
    redb::Database::builder().create_with_backend(RedbFile::open(path)?).map_err(redb_error)
}

/// A redb error as an I/O error, keeping the kind of an I/O cause (a full disk stays
/// `StorageFull`, which clients are told as `DISK_FULL`).
fn redb_error(err: impl Into<redb::Error>) -> io::Error {
    match err.into() {
        redb::Error::Io(err) => err,
        err => io::Error::other(err),
    }
}

/// The writer thread's database, reopened after a failed write.
struct Writer {
    path: PathBuf,
    /// `None` after a failed write until it reopens.
    db: Option<redb::Database>,
}

impl Writer {
    /// Writes `jobs` in one transaction; after a failure, drops the database so the
    /// next write reopens it.
    fn write(&mut self, jobs: &[Job], at_ms: u64) -> io::Result<()> {
        if self.db.is_none() {
            self.db = Some(open_db(&self.path)?);
        }
        let written = write(self.db.as_ref().expect("opened above"), jobs, at_ms);
        if let Err(err) = &written {
            tracing::warn!(%err, "cannot write consumer offsets; reopening the offset database");
            self.db = None;
        }
        written
    }
}

/// The writer thread: one transaction for every job waiting, then the answers.
fn write_loop(mut writer: Writer, table: &RwLock<Table>, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH
            && let Ok(job) = queue.try_recv()
        {
            jobs.push(job);
        }
        let at_ms = now_ms();
        let written = writer.write(&jobs, at_ms);
        if written.is_ok() {
            let mut table = table.write();
            for job in &jobs {
                apply(&mut table, &job.change, at_ms);
            }
        }
        for job in jobs {
            let result = match &written {
                Ok(()) => Ok(()),
                Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
            };
            let _ = job.done.send(result);
        }
    }
}

fn write(db: &redb::Database, jobs: &[Job], at_ms: u64) -> io::Result<()> {
    let txn = db.begin_write().map_err(redb_error)?;
    {
        let mut offsets = txn.open_table(OFFSETS).map_err(redb_error)?;
        for job in jobs {
            match &job.change {
                Change::Commit(entries) => {
                    for (key, offset) in entries {
                        let k = (key.group.as_str(), key.member.as_str(), key.topic.as_str(), key.queue_id);
                        offsets.insert(k, (*offset, at_ms)).map_err(redb_error)?;
                    }
                }
                Change::RemoveTopic(topic) => {
                    offsets.retain(|(_, _, t, _), _| t != topic.as_str()).map_err(redb_error)?;
                }
            }
        }
    }
    txn.commit().map_err(redb_error)
}

fn apply(table: &mut Table, change: &Change, at_ms: u64) {
    match change {
        Change::Commit(entries) => {
            for (key, offset) in entries {
                table.insert(key.clone(), Committed { offset: *offset, at_ms });
            }
        }
        Change::RemoveTopic(topic) => table.retain(|key, _| key.topic != *topic),
    }
}

fn load(db: &redb::Database) -> io::Result<Table> {
    let txn = db.begin_read().map_err(redb_error)?;
    let offsets = match txn.open_table(OFFSETS) {
        Ok(offsets) => offsets,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Table::new()),
        Err(err) => return Err(io::Error::other(err)),
    };
    let mut table = Table::new();
    for row in offsets.iter().map_err(redb_error)? {
        let (key, value) = row.map_err(redb_error)?;
        let (group, member, topic, queue_id) = key.value();
        let (offset, at_ms) = value.value();
        let key = OffsetKey { group: group.to_owned(), member: member.to_owned(), topic: topic.to_owned(), queue_id };
        table.insert(key, Committed { offset, at_ms });
    }
    Ok(table)
}

/// Counts this open in the `broker` table.
fn next_epoch(db: &redb::Database) -> io::Result<u64> {
    let txn = db.begin_write().map_err(redb_error)?;
    let epoch = {
        let mut broker = txn.open_table(BROKER).map_err(redb_error)?;
        let epoch = broker.get("epoch").map_err(redb_error)?.map_or(0, |v| v.value()) + 1;
        broker.insert("epoch", epoch).map_err(redb_error)?;
        epoch
    };
    txn.commit().map_err(redb_error)?;
    Ok(epoch)
}

/// group → topic → queue id → offset, as `consumer_offsets.json` held it.
#[derive(Debug, Default, serde::Deserialize)]
struct LegacyOffsets {
    groups: BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>,
}

fn import_legacy(db: &redb::Database, path: &Path) -> io::Result<()> {
    let legacy: LegacyOffsets = json::load(path)?;
    let txn = db.begin_write().map_err(redb_error)?;
    {
        let mut offsets = txn.open_table(OFFSETS).map_err(redb_error)?;
        for (group, topics) in &legacy.groups {
            for (topic, queues) in topics {
                for (queue_id, offset) in queues {
                    offsets
                        .insert((group.as_str(), "", topic.as_str(), *queue_id), (*offset, 0))
                        .map_err(redb_error)?;
                }
            }
        }
    }
    txn.commit().map_err(redb_error)?;
    tracing::info!(groups = legacy.groups.len(), "imported consumer_offsets.json into consumer_offsets.redb");
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, topic: &str, queue_id: u32) -> OffsetKey {
        OffsetKey { group: group.into(), member: String::new(), topic: topic.into(), queue_id }
    }

    #[tokio::test]
    async fn commits_survive_reopen_and_topic_removal_is_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let offsets = OffsetStore::open(dir.path()).expect("open");
        offsets.commit(vec![(key("g", "orders", 3), 42)]).await.expect("commit");
        offsets.commit(vec![(key("g", "orders", 3), 43), (key("g", "payments", 0), 7)]).await.expect("commit");
        assert_eq!(offsets.fetch(&key("g", "orders", 3)).map(|c| c.offset), Some(43));
        assert_eq!(offsets.fetch(&key("g", "orders", 2)), None);
        drop(offsets);
        let offsets = OffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(offsets.epoch(), 2, "each open counts");
        assert_eq!(offsets.fetch(&key("g", "orders", 3)).map(|c| c.offset), Some(43));
        offsets.remove_topic("orders").await.expect("remove");
        drop(offsets);
        let offsets = OffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(offsets.fetch(&key("g", "orders", 3)), None);
        assert_eq!(offsets.of_group("g", None).len(), 1);
        assert!(offsets.fetch(&key("g", "payments", 0)).is_some_and(|c| c.at_ms > 0));
    }

    #[tokio::test]
    async fn members_and_groups_are_kept_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let offsets = OffsetStore::open(dir.path()).expect("open");
        let member = OffsetKey { member: "m1".into(), ..key("b", "t", 0) };
        offsets.commit(vec![(key("a", "t", 0), 1), (key("b", "t", 0), 2), (member.clone(), 3)]).await.expect("commit");
        let of_b: Vec<u64> = offsets.of_group("b", Some("t")).into_iter().map(|(_, c)| c.offset).collect();
        assert_eq!(of_b, [2, 3]);
        assert_eq!(offsets.fetch(&member).map(|c| c.offset), Some(3));
        assert!(offsets.of_group("c", None).is_empty());
    }

    #[tokio::test]
    async fn imports_the_json_file_of_older_brokers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let legacy = dir.path().join(LEGACY_FILE);
        std::fs::write(&legacy, r#"{"groups":{"g":{"orders":{"3":42}}}}"#).expect("write");
        let offsets = OffsetStore::open(dir.path()).expect("open");
        assert_eq!(offsets.fetch(&key("g", "orders", 3)).map(|c| c.offset), Some(42));
        assert!(!legacy.exists(), "the JSON file is removed once imported");
    }

    #[tokio::test]
    async fn a_closed_store_refuses_commits_and_keeps_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let offsets = OffsetStore::open(dir.path()).expect("open");
        offsets.close();
        let refused = offsets.commit(vec![(key("g", "t", 0), 5)]).await;
        assert!(matches!(refused, Err(CoreError::Metadata { .. })), "{refused:?}");
        assert_eq!(offsets.fetch(&key("g", "t", 0)), None);
    }

    #[tokio::test]
    async fn a_full_disk_refuses_commits_and_they_resume_when_space_returns() {
        use weir_storage::fault::{Fault, Op};
        let dir = tempfile::tempdir().expect("tempdir");
        let offsets = OffsetStore::open(dir.path()).expect("open");
        offsets.commit(vec![(key("g", "t", 0), 1)]).await.expect("commit");
        let fault = Fault::inject(&dir.path().join(FILE), Op::Sync, libc::ENOSPC);
        let refused = offsets.commit(vec![(key("g", "t", 0), 2)]).await;
        let Err(CoreError::Metadata { source, .. }) = refused else { panic!("{refused:?}") };
        assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{source}");
        assert_eq!(offsets.fetch(&key("g", "t", 0)).map(|c| c.offset), Some(1), "memory as on disk");
        assert!(offsets.commit(vec![(key("g", "t", 0), 3)]).await.is_err(), "still full");
        drop(fault);
        offsets.commit(vec![(key("g", "t", 0), 4)]).await.expect("space returned");
        drop(offsets);
        let offsets = OffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(offsets.fetch(&key("g", "t", 0)).map(|c| c.offset), Some(4));
    }

    /// A power loss while commits run (every byte redb synced kept, of the rest any
    /// sectors): the reopened offsets are one whole commit, never a mix, and none older
    /// than the last acknowledged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn power_loss_keeps_a_whole_commit_and_every_acknowledged_one() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use weir_storage::fault::Recording;
        for round in 0..8u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let (live, image) = (dir.path().join("live"), dir.path().join("image"));
            std::fs::create_dir(&live).expect("dir");
            let recording = Recording::start(&live);
            let offsets = Arc::new(OffsetStore::open(&live).expect("open"));
            let acked = Arc::new(AtomicU64::new(0));
            let committer = {
                let (offsets, acked) = (offsets.clone(), acked.clone());
                tokio::spawn(async move {
                    for version in 1.. {
                        let all = (0..8).map(|q| (key("g", "t", q), version)).collect();
                        if offsets.commit(all).await.is_err() {
                            return;
                        }
                        acked.store(version, Ordering::Release);
                    }
                })
            };
            tokio::time::sleep(std::time::Duration::from_millis(5 + round * 7)).await;
            let acked_before = acked.load(Ordering::Acquire);
            let mut rng = round.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let keep = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % 4 < round % 5
            };
            recording.crash_image(&image, keep).expect("image");
            committer.abort();
            let reopened = OffsetStore::open(&image).expect("reopen after the power loss");
            let versions: Vec<u64> =
                (0..8).map(|q| reopened.fetch(&key("g", "t", q)).map_or(0, |c| c.offset)).collect();
            assert!(versions.iter().all(|&v| v == versions[0]), "round {round}: a mix of commits {versions:?}");
            assert!(versions[0] >= acked_before, "round {round}: lost acknowledged commit {acked_before}");
        }
    }
}
