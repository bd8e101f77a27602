//! Topic metadata: read/write queue counts and permissions, kept in the
//! append-only journal `<data_dir>/topics.log` (format in [`crate::journal`]):
//! a change is one appended, synced record, so creating the 10 000th topic
//! costs what the first did. A `topics.json` written by an older broker is
//! imported into the journal on first open, then removed.
//!
//! Names starting with `%` are system topics (`%RETRY%<group>`,
//! `%DLQ%<group>`, timer and half-message topics): users cannot create them
//! and `list` hides them unless asked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use super::journal::{self, Journal, JournalError};
use crate::core::CoreError;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

/// The journal, in the data directory.
const LOG_FILE: &str = "topics.log";
/// The whole table as JSON, as brokers before the journal wrote it.
const LEGACY_FILE: &str = "topics.json";

/// Most queues a topic may have.
pub const MAX_QUEUES: u32 = 1024;

/// A topic as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// Queues consumers read.
    pub read_queues: u32,
    /// Queues producers write.
    pub write_queues: u32,
    /// Whether the topic may be read.
    pub readable: bool,
    /// Whether the topic may be written.
    pub writable: bool,
}

/// All topics of the broker.
///
/// A change takes `journal` first and holds it across the append and sync,
/// then takes the `topics` write lock only to update the map: readers wait
/// for no I/O, and the map never holds a change the journal does not.
#[derive(Debug)]
pub struct TopicTable {
    journal: Mutex<Journal<Topic>>,
    topics: RwLock<BTreeMap<String, Topic>>,
    /// Round-robin position for sends that leave the queue to the broker.
    next_queue: AtomicU32,
}

impl TopicTable {
    /// Loads the table from `<data_dir>/topics.log` (empty if it does not
    /// exist), first importing a `topics.json` left by an older broker.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        Self::open_with_floor(data_dir, journal::COMPACT_FLOOR)
    }

    /// [`Self::open`] with a compaction floor (tests compact small journals).
    fn open_with_floor(data_dir: &Path, floor: u64) -> std::io::Result<Self> {
        let log = data_dir.join(LOG_FILE);
        let legacy = data_dir.join(LEGACY_FILE);
        if legacy.try_exists()? {
            if log.try_exists()? {
                // A migration stopped between the rename and the removal.
                tracing::info!("removing topics.json: topics.log already holds the topics");
            } else {
                let topics: BTreeMap<String, Topic> = super::json::load(&legacy)?;
                journal::write_snapshot(&log, &topics).map_err(|err| {
                    std::io::Error::new(err.kind(), format!("importing topics.json into {}: {err}", log.display()))
                })?;
                tracing::info!(topics = topics.len(), "imported topics.json into topics.log");
            }
            std::fs::remove_file(&legacy)?;
            weir_storage::durable::sync_dir(data_dir)?;
        }
        let (journal, topics) = Journal::open(log, floor)?;
        Ok(Self {
            journal: Mutex::new(journal),
            topics: RwLock::new(topics),
            next_queue: AtomicU32::new(random_start()),
        })
    }

    /// The topic, if it exists.
    pub fn get(&self, name: &str) -> Option<Topic> {
        self.topics.read().get(name).copied()
    }

    /// Creates a topic. Blocks on the journal's fsync: call it off the async workers.
    pub fn create(&self, name: &str, topic: Topic) -> Result<Topic, CoreError> {
        validate(name, &topic)?;
        let mut journal = self.journal.lock();
        if self.topics.read().contains_key(name) {
            return Err(CoreError::TopicExists(name.to_owned()));
        }
        journal.put(name, &topic).map_err(persist_error)?;
        self.topics.write().insert(name.to_owned(), topic);
        self.compact_if_due(&mut journal);
        Ok(topic)
    }

    /// The system topic `name` (`%` first: a group's retry or dead-letter topic), created
    /// with one read-write queue if it does not exist. Blocks on the journal's fsync.
    pub fn ensure_system(&self, name: &str) -> Result<Topic, CoreError> {
        debug_assert!(name.starts_with('%'), "{name} is not a system topic name");
        weir_storage::record::validate_topic(name).map_err(|err| CoreError::Invalid(err.to_string()))?;
        let mut journal = self.journal.lock();
        if let Some(topic) = self.topics.read().get(name) {
            return Ok(*topic);
        }
        let topic = Topic { read_queues: 1, write_queues: 1, readable: true, writable: true };
        journal.put(name, &topic).map_err(persist_error)?;
        self.topics.write().insert(name.to_owned(), topic);
        self.compact_if_due(&mut journal);
        tracing::info!(topic = name, "created a system topic");
        Ok(topic)
    }

    /// Replaces a topic's queue counts and permissions. Blocks on the journal's fsync.
    pub fn update(&self, name: &str, topic: Topic) -> Result<Topic, CoreError> {
        validate(name, &topic)?;
        let mut journal = self.journal.lock();
        if !self.topics.read().contains_key(name) {
            return Err(CoreError::UnknownTopic(name.to_owned()));
        }
        journal.put(name, &topic).map_err(persist_error)?;
        self.topics.write().insert(name.to_owned(), topic);
        self.compact_if_due(&mut journal);
        Ok(topic)
    }

    /// Deletes a topic's metadata. Blocks on the journal's fsync.
    pub fn delete(&self, name: &str) -> Result<(), CoreError> {
        let mut journal = self.journal.lock();
        if !self.topics.read().contains_key(name) {
            return Err(CoreError::UnknownTopic(name.to_owned()));
        }
        journal.delete(name).map_err(persist_error)?;
        self.topics.write().remove(name);
        self.compact_if_due(&mut journal);
        Ok(())
    }

    /// Topics in name order; system topics only with `include_system`.
    pub fn list(&self, include_system: bool) -> Vec<(String, Topic)> {
        self.topics
            .read()
            .iter()
            .filter(|(name, _)| include_system || !name.starts_with('%'))
            .map(|(name, topic)| (name.clone(), *topic))
            .collect()
    }

    /// The next write queue for a send that did not choose one.
    pub fn pick_queue(&self, topic: &Topic) -> u32 {
        self.next_queue.fetch_add(1, Ordering::Relaxed) % topic.write_queues
    }

    /// Compacts the journal when it holds too many records for the live
    /// topics. The change is already durable, so a failure is only logged.
    /// Holds the map's read lock: readers go on, writers wait on `journal`.
    fn compact_if_due(&self, journal: &mut Journal<Topic>) {
        let topics = self.topics.read();
        if journal.compaction_due(topics.len())
            && let Err(err) = journal.compact(&topics)
        {
            tracing::warn!(%err, "cannot compact the topic journal; it grows until a later compaction succeeds");
        }
    }
}

fn persist_error(err: JournalError) -> CoreError {
    tracing::error!(%err, "cannot persist topics");
    CoreError::metadata("cannot persist topics", std::io::Error::other(err))
}

/// A random round-robin start, so that after a restart sends without a
/// queue id do not all begin at queue 0.
fn random_start() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    h.finish() as u32
}

fn validate(name: &str, topic: &Topic) -> Result<(), CoreError> {
    weir_storage::record::validate_topic(name).map_err(|err| CoreError::Invalid(err.to_string()))?;
    if name.starts_with('%') {
        return Err(CoreError::Invalid("topic names starting with % are reserved for system topics".into()));
    }
    let queues_ok = |n: u32| (1..=MAX_QUEUES).contains(&n);
    if !queues_ok(topic.read_queues) || !queues_ok(topic.write_queues) {
        return Err(CoreError::Invalid(format!("queue counts must be between 1 and {MAX_QUEUES}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;

    fn topic(queues: u32) -> Topic {
        Topic { read_queues: queues, write_queues: queues, readable: true, writable: true }
    }

    fn names(table: &TopicTable) -> Vec<String> {
        table.list(true).into_iter().map(|(name, _)| name).collect()
    }

    /// The kind of refusal, comparable in assertions.
    fn refusal(err: CoreError) -> &'static str {
        match err {
            CoreError::TopicExists(_) => "exists",
            CoreError::UnknownTopic(_) => "unknown",
            CoreError::Invalid(_) => "invalid",
            other => panic!("unexpected error {other}"),
        }
    }

    fn log_path(dir: &Path) -> PathBuf {
        dir.join(LOG_FILE)
    }

    fn lines(dir: &Path) -> usize {
        std::fs::read(log_path(dir)).expect("read log").iter().filter(|&&b| b == b'\n').count()
    }

    #[test]
    fn create_update_delete_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = TopicTable::open(dir.path()).expect("open");
        table.create("orders", topic(4)).expect("create");
        assert_eq!(table.create("orders", topic(4)).map_err(refusal).expect_err("exists"), "exists");
        table.update("orders", topic(8)).expect("update");
        assert_eq!(table.update("nope", topic(8)).map_err(refusal).expect_err("unknown"), "unknown");
        table.create("payments", topic(2)).expect("create");
        drop(table);
        let table = TopicTable::open(dir.path()).expect("reopen");
        assert_eq!(table.get("orders").map(|t| t.write_queues), Some(8));
        table.delete("payments").expect("delete");
        assert_eq!(table.delete("payments").map_err(refusal).expect_err("gone"), "unknown");
        assert_eq!(table.list(false).len(), 1);
        drop(table);
        let table = TopicTable::open(dir.path()).expect("reopen");
        assert_eq!(names(&table), ["orders"]);
        assert!(!dir.path().join(LEGACY_FILE).exists(), "topics.json is no longer written");
    }

    #[test]
    fn rejects_bad_names_and_queue_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = TopicTable::open(dir.path()).expect("open");
        for (name, queues) in [("a/b", 1), ("%RETRY%g", 1), ("t", 0), ("t", MAX_QUEUES + 1)] {
            let refused = table.create(name, topic(queues)).map_err(refusal);
            assert_eq!(refused, Err("invalid"), "{name} with {queues} queues");
        }
        assert_eq!(lines(dir.path()), 0, "a refused change writes nothing");
    }

    #[test]
    fn pick_queue_round_robins_from_any_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = TopicTable::open(dir.path()).expect("open");
        let picks: Vec<u32> = (0..8).map(|_| table.pick_queue(&topic(4))).collect();
        for (i, pair) in picks.windows(2).enumerate() {
            assert_eq!(pair[1], (pair[0] + 1) % 4, "pick {i}: {picks:?}");
        }
    }

    /// A journal whose last line is torn or corrupt reopens with every
    /// complete record before it, is truncated there, and takes new records.
    #[test]
    fn torn_or_corrupt_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = TopicTable::open(dir.path()).expect("open");
        for name in ["a", "b", "c"] {
            table.create(name, topic(2)).expect("create");
        }
        drop(table);
        let good = std::fs::read(log_path(dir.path())).expect("read");
        let last_start = good[..good.len() - 1].iter().rposition(|&b| b == b'\n').expect("three lines") + 1;
        let valid_crc_bad_json = {
            let json = br#"{"put":{"name":"d","value":"#;
            let mut line = format!("{:08x} ", crc32c::crc32c(json)).into_bytes();
            line.extend_from_slice(json);
            line.push(b'\n');
            line
        };
        let mut flipped = good.clone();
        let at = flipped.len() - 4; // inside the last record's JSON
        flipped[at] ^= 0x01;
        // (file contents, topics expected back, bytes kept)
        let cases: Vec<(Vec<u8>, Vec<&str>, usize)> = vec![
            ([&good[..], &good[last_start..good.len() - 5]].concat(), vec!["a", "b", "c"], good.len()),
            ([&good[..], b"\0\0\0\0\0\0"].concat(), vec!["a", "b", "c"], good.len()),
            ([&good[..], b"garbage\n"].concat(), vec!["a", "b", "c"], good.len()),
            ([&good[..], &valid_crc_bad_json[..]].concat(), vec!["a", "b", "c"], good.len()),
            (flipped, vec!["a", "b"], last_start),
            (good[..last_start + 3].to_vec(), vec!["a", "b"], last_start),
        ];
        for (i, (contents, expected, kept)) in cases.into_iter().enumerate() {
            std::fs::write(log_path(dir.path()), &contents).expect("write");
            let table = TopicTable::open(dir.path()).expect("reopen");
            assert_eq!(names(&table), expected, "case {i}");
            assert_eq!(std::fs::metadata(log_path(dir.path())).expect("stat").len(), kept as u64, "case {i}");
            table.create("z", topic(1)).expect("create after a torn tail");
            drop(table);
            let table = TopicTable::open(dir.path()).expect("reopen");
            let mut expected = expected.clone();
            expected.push("z");
            assert_eq!(names(&table), expected, "case {i} after an append");
        }
    }

    #[test]
    fn compaction_keeps_exactly_the_live_topics_and_shrinks_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = TopicTable::open_with_floor(dir.path(), 8).expect("open");
        for i in 0..6 {
            table.create(&format!("t{i}"), topic(1)).expect("create");
        }
        table.delete("t5").expect("delete");
        // 7 records, 5 live: compaction is due above max(8, 10) records.
        for queues in 2..5 {
            table.update("t0", topic(queues)).expect("update");
        }
        assert_eq!((lines(dir.path()), table.journal.lock().records()), (10, 10));
        let before = std::fs::metadata(log_path(dir.path())).expect("stat").len();
        table.update("t1", topic(7)).expect("update");
        assert_eq!((lines(dir.path()), table.journal.lock().records()), (5, 5), "one put per live topic");
        let after = std::fs::metadata(log_path(dir.path())).expect("stat").len();
        assert!(after < before, "{after} < {before}");
        assert!(!dir.path().join("topics.log.tmp").exists());
        // The compacted journal takes appends, and reopens to the same topics.
        table.create("t9", topic(3)).expect("create after compaction");
        let expected = table.list(true);
        drop(table);
        let table = TopicTable::open_with_floor(dir.path(), 8).expect("reopen");
        assert_eq!(table.list(true), expected);
        assert_eq!(table.get("t0").map(|t| t.write_queues), Some(4));
        assert_eq!(table.get("t1").map(|t| t.write_queues), Some(7));
        assert_eq!(table.get("t5"), None);
        assert_eq!(lines(dir.path()), 6);
    }

    #[test]
    fn the_default_floor_does_not_compact_small_journals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = TopicTable::open(dir.path()).expect("open");
        table.create("t", topic(1)).expect("create");
        for queues in 0..100 {
            table.update("t", topic(queues % 8 + 1)).expect("update");
        }
        assert_eq!(lines(dir.path()), 101);
    }

    #[test]
    fn migrates_topics_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let legacy = dir.path().join(LEGACY_FILE);
        let old: BTreeMap<String, Topic> = [("orders", 4), ("%RETRY%g", 1)]
            .into_iter()
            .map(|(name, queues)| (name.to_owned(), topic(queues)))
            .collect();
        crate::meta::json::store(&legacy, &old).expect("write topics.json");
        let table = TopicTable::open(dir.path()).expect("open");
        assert_eq!(names(&table), ["%RETRY%g", "orders"]);
        assert_eq!(table.get("orders").map(|t| t.write_queues), Some(4));
        assert!(!legacy.exists(), "topics.json is removed after the import");
        assert_eq!(lines(dir.path()), 2);
        table.create("payments", topic(2)).expect("create");
        drop(table);
        assert!(!legacy.exists(), "topics.json is no longer written");
        // A topics.json left beside the journal (a migration interrupted after
        // the rename) is stale: the journal wins and the file is removed.
        crate::meta::json::store(&legacy, &BTreeMap::<String, Topic>::new()).expect("write topics.json");
        let table = TopicTable::open(dir.path()).expect("reopen");
        assert_eq!(names(&table), ["%RETRY%g", "orders", "payments"]);
        assert!(!legacy.exists());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Create(usize, u32),
        Update(usize, u32),
        Delete(usize),
        Reopen,
    }

    const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

    fn op() -> impl Strategy<Value = Op> {
        let name = 0..NAMES.len();
        prop_oneof![
            3 => (name.clone(), 1..4u32).prop_map(|(n, q)| Op::Create(n, q)),
            3 => (name.clone(), 1..4u32).prop_map(|(n, q)| Op::Update(n, q)),
            2 => name.prop_map(Op::Delete),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any sequence of changes leaves the table, reopened at any point
        /// (before or after compactions, which a floor of 4 makes frequent),
        /// equal to a map given the same changes.
        #[test]
        fn table_matches_a_model_across_reopens(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let open = || TopicTable::open_with_floor(dir.path(), 4).expect("open");
            let mut table = open();
            let mut model: BTreeMap<String, Topic> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Create(n, q) => {
                        let got = table.create(NAMES[n], topic(q)).map_err(refusal);
                        let want = if model.contains_key(NAMES[n]) {
                            Err("exists")
                        } else {
                            model.insert(NAMES[n].to_owned(), topic(q));
                            Ok(topic(q))
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::Update(n, q) => {
                        let got = table.update(NAMES[n], topic(q)).map_err(refusal);
                        let want = match model.get_mut(NAMES[n]) {
                            None => Err("unknown"),
                            Some(stored) => {
                                *stored = topic(q);
                                Ok(*stored)
                            }
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::Delete(n) => {
                        let got = table.delete(NAMES[n]).map_err(refusal);
                        let want = model.remove(NAMES[n]).map(|_| ()).ok_or("unknown");
                        prop_assert_eq!(got, want);
                    }
                    Op::Reopen => {
                        drop(table);
                        table = open();
                    }
                }
                let records = table.journal.lock().records();
                prop_assert!(records <= 4.max(2 * model.len() as u64), "{} records for {} topics", records, model.len());
            }
            drop(table);
            let table = open();
            let got: BTreeMap<String, Topic> =
                names(&table).into_iter().map(|name| { let t = table.get(&name).expect("listed"); (name, t) }).collect();
            prop_assert_eq!(got, model);
        }
    }
}
