//! Topic metadata: read/write queue counts and permissions, persisted in
//! `<data_dir>/topics.json`.
//!
//! Names starting with `%` are system topics (`%RETRY%<group>`,
//! `%DLQ%<group>`, timer and half-message topics): users cannot create them
//! and `list` hides them unless asked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use weir_protocol::{ErrorCode, ErrorResponse, TopicConfig, TopicPermissions};

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
#[derive(Debug)]
pub struct TopicTable {
    path: PathBuf,
    topics: RwLock<BTreeMap<String, Topic>>,
    /// Round-robin position for sends that leave the queue to the broker.
    next_queue: AtomicU32,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(code, message)
}

impl TopicTable {
    /// Loads the table from `path` (empty if the file does not exist).
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let topics = crate::persist::load(&path)?;
        Ok(Self { path, topics: RwLock::new(topics), next_queue: AtomicU32::new(0) })
    }

    /// The topic, if it exists.
    pub fn get(&self, name: &str) -> Option<Topic> {
        self.topics.read().get(name).copied()
    }

    /// Creates a topic.
    pub fn create(&self, config: &TopicConfig) -> Result<TopicConfig, ErrorResponse> {
        let topic = validate(config)?;
        let mut topics = self.topics.write();
        if topics.contains_key(&config.name) {
            return Err(error(ErrorCode::TopicExists, format!("topic {} already exists", config.name)));
        }
        topics.insert(config.name.clone(), topic);
        self.persist(&topics)?;
        Ok(to_wire(&config.name, topic))
    }

    /// Replaces a topic's queue counts and permissions.
    pub fn update(&self, config: &TopicConfig) -> Result<TopicConfig, ErrorResponse> {
        let topic = validate(config)?;
        let mut topics = self.topics.write();
        let Some(existing) = topics.get_mut(&config.name) else {
            return Err(error(ErrorCode::UnknownTopic, format!("no topic {}", config.name)));
        };
        *existing = topic;
        self.persist(&topics)?;
        Ok(to_wire(&config.name, topic))
    }

    /// Deletes a topic's metadata. Its stored messages age out with retention.
    pub fn delete(&self, name: &str) -> Result<(), ErrorResponse> {
        let mut topics = self.topics.write();
        if topics.remove(name).is_none() {
            return Err(error(ErrorCode::UnknownTopic, format!("no topic {name}")));
        }
        self.persist(&topics)
    }

    /// Topics in name order; system topics only with `include_system`.
    pub fn list(&self, include_system: bool) -> Vec<TopicConfig> {
        self.topics
            .read()
            .iter()
            .filter(|(name, _)| include_system || !name.starts_with('%'))
            .map(|(name, topic)| to_wire(name, *topic))
            .collect()
    }

    /// The next write queue for a send that did not choose one.
    pub fn pick_queue(&self, topic: &Topic) -> u32 {
        self.next_queue.fetch_add(1, Ordering::Relaxed) % topic.write_queues
    }

    fn persist(&self, topics: &BTreeMap<String, Topic>) -> Result<(), ErrorResponse> {
        crate::persist::store(&self.path, topics).map_err(|err| {
            tracing::error!(%err, "cannot persist topics");
            error(ErrorCode::Internal, format!("cannot persist topics: {err}"))
        })
    }
}

fn validate(config: &TopicConfig) -> Result<Topic, ErrorResponse> {
    weir_storage::record::validate_topic(&config.name).map_err(|err| error(ErrorCode::BadRequest, err.to_string()))?;
    if config.name.starts_with('%') {
        return Err(error(ErrorCode::BadRequest, "topic names starting with % are reserved for system topics"));
    }
    let queues_ok = |n: u32| (1..=MAX_QUEUES).contains(&n);
    if !queues_ok(config.read_queues) || !queues_ok(config.write_queues) {
        return Err(error(ErrorCode::BadRequest, format!("queue counts must be between 1 and {MAX_QUEUES}")));
    }
    Ok(Topic {
        read_queues: config.read_queues,
        write_queues: config.write_queues,
        readable: config.permissions.readable,
        writable: config.permissions.writable,
    })
}

fn to_wire(name: &str, topic: Topic) -> TopicConfig {
    TopicConfig {
        name: name.to_owned(),
        read_queues: topic.read_queues,
        write_queues: topic.write_queues,
        permissions: TopicPermissions { readable: topic.readable, writable: topic.writable },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, queues: u32) -> TopicConfig {
        TopicConfig {
            name: name.into(),
            read_queues: queues,
            write_queues: queues,
            permissions: TopicPermissions::READ_WRITE,
        }
    }

    #[test]
    fn create_update_delete_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topics.json");
        let table = TopicTable::open(path.clone()).expect("open");
        table.create(&config("orders", 4)).expect("create");
        assert_eq!(table.create(&config("orders", 4)).expect_err("exists").code, ErrorCode::TopicExists);
        table.update(&config("orders", 8)).expect("update");
        table.create(&config("payments", 2)).expect("create");
        drop(table);
        let table = TopicTable::open(path).expect("reopen");
        assert_eq!(table.get("orders").map(|t| t.write_queues), Some(8));
        table.delete("payments").expect("delete");
        assert_eq!(table.delete("payments").expect_err("gone").code, ErrorCode::UnknownTopic);
        assert_eq!(table.list(false).len(), 1);
    }

    #[test]
    fn rejects_bad_names_and_queue_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let table = TopicTable::open(dir.path().join("topics.json")).expect("open");
        for bad in [config("a/b", 1), config("%RETRY%g", 1), config("t", 0), config("t", MAX_QUEUES + 1)] {
            assert_eq!(table.create(&bad).expect_err("invalid").code, ErrorCode::BadRequest, "{bad:?}");
        }
    }
}
