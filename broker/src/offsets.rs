//! Consumer offsets per (group, topic, queue), persisted in
//! `<data_dir>/consumer_offsets.json` every few seconds and on shutdown.

use std::collections::BTreeMap;
use std::path::PathBuf;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// How often dirty offsets are written out.
pub const PERSIST_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Offsets {
    /// group → topic → queue id → next offset to consume.
    groups: BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>>,
}

/// The committed offsets of every consumer group.
#[derive(Debug)]
pub struct ConsumerOffsets {
    path: PathBuf,
    state: Mutex<(Offsets, bool)>,
}

impl ConsumerOffsets {
    /// Loads offsets from `path` (none if the file does not exist).
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let offsets = crate::persist::load(&path)?;
        Ok(Self { path, state: Mutex::new((offsets, false)) })
    }

    /// Records that `group` will next consume `offset` of the queue.
    pub fn commit(&self, group: &str, topic: &str, queue_id: u32, offset: u64) {
        let mut state = self.state.lock();
        state
            .0
            .groups
            .entry(group.to_owned())
            .or_default()
            .entry(topic.to_owned())
            .or_default()
            .insert(queue_id, offset);
        state.1 = true;
    }

    /// Forgets every group's offsets in a deleted `topic`.
    pub fn remove_topic(&self, topic: &str) {
        let mut state = self.state.lock();
        let mut removed = false;
        for topics in state.0.groups.values_mut() {
            removed |= topics.remove(topic).is_some();
        }
        state.0.groups.retain(|_, topics| !topics.is_empty());
        state.1 |= removed;
    }

    /// The committed offset, if any.
    pub fn fetch(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.state.lock().0.groups.get(group)?.get(topic)?.get(&queue_id).copied()
    }

    /// Writes the offsets out if they changed since the last call.
    pub fn persist(&self) -> std::io::Result<()> {
        let mut state = self.state.lock();
        if !state.1 {
            return Ok(());
        }
        crate::persist::store(&self.path, &state.0)?;
        state.1 = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("consumer_offsets.json");
        let offsets = ConsumerOffsets::open(path.clone()).expect("open");
        offsets.commit("g", "orders", 3, 42);
        offsets.commit("g", "orders", 3, 43);
        assert_eq!(offsets.fetch("g", "orders", 3), Some(43));
        assert_eq!(offsets.fetch("g", "orders", 2), None);
        offsets.persist().expect("persist");
        let reopened = ConsumerOffsets::open(path.clone()).expect("reopen");
        assert_eq!(reopened.fetch("g", "orders", 3), Some(43));
        reopened.commit("g", "payments", 0, 7);
        reopened.remove_topic("orders");
        reopened.persist().expect("persist");
        let reopened = ConsumerOffsets::open(path).expect("reopen");
        assert_eq!((reopened.fetch("g", "orders", 3), reopened.fetch("g", "payments", 0)), (None, Some(7)));
    }
}
