//! Tombstones: topics deleted while their records are still in the CommitLog.
//!
//! Deleting a topic removes its ConsumeQueues and hook files at once, but its records
//! stay in the shared CommitLog until retention deletes their segments. A tombstone
//! `(topic, offset)` says every record of `topic` below `offset` is dead: the
//! dispatcher never indexes it again (a rebuild after a crash included), and lookups
//! by id or key never return it. A topic created again under the same name starts
//! empty, at queue offset 0, with records above the tombstone. Once retention has
//! deleted everything below a tombstone, it is forgotten.
//!
//! Format: text, one `topic offset` line per tombstone, in `deleted_topics`,
//! replaced atomically (temporary file, fsync, rename, fsync of the directory).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

/// The store's tombstones.
#[derive(Debug)]
pub(crate) struct Tombstones {
    path: PathBuf,
    /// topic → CommitLog offset below which its records are dead.
    dead_below: RwLock<HashMap<String, u64>>,
    /// Whether there is any (the dispatcher's per-record check skips the map if not).
    any: AtomicBool,
}

impl Tombstones {
    /// Loads the tombstones kept in `dir` (none if the file does not exist).
    pub(crate) fn load(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("deleted_topics");
        let mut dead_below = HashMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let parsed = line.split_once(' ').and_then(|(topic, offset)| Some((topic, offset.parse().ok()?)));
                    let Some((topic, offset)) = parsed else {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: not a `topic offset` line: {line:?}", path.display()),
                        ));
                    };
                    dead_below.insert(topic.to_owned(), offset);
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let any = AtomicBool::new(!dead_below.is_empty());
        Ok(Self { path, dead_below: RwLock::new(dead_below), any })
    }

    /// Whether the record of `topic` at `commitlog_offset` belongs to a deleted topic.
    pub(crate) fn is_dead(&self, topic: &str, commitlog_offset: u64) -> bool {
        self.any.load(Ordering::Acquire)
            && self.dead_below.read().get(topic).is_some_and(|&below| commitlog_offset < below)
    }

    /// Whether `topic` has a tombstone.
    pub(crate) fn contains(&self, topic: &str) -> bool {
        self.any.load(Ordering::Acquire) && self.dead_below.read().contains_key(topic)
    }

    /// Durably records that `topic`'s records below `offset` are dead. On an error
    /// nothing changes.
    pub(crate) fn insert(&self, topic: &str, offset: u64) -> std::io::Result<()> {
        let mut map = self.dead_below.write();
        let mut next = map.clone();
        next.insert(topic.to_owned(), offset);
        self.store(&next)?;
        *map = next;
        self.any.store(true, Ordering::Release);
        Ok(())
    }

    /// Forgets tombstones at or below `commitlog_min`: retention deleted their records.
    pub(crate) fn prune(&self, commitlog_min: u64) -> std::io::Result<()> {
        let mut map = self.dead_below.write();
        if map.values().all(|&below| below > commitlog_min) {
            return Ok(());
        }
        let next: HashMap<String, u64> =
            map.iter().filter(|(_, below)| **below > commitlog_min).map(|(t, b)| (t.clone(), *b)).collect();
        self.store(&next)?;
        self.any.store(!next.is_empty(), Ordering::Release);
        *map = next;
        Ok(())
    }

    fn store(&self, map: &HashMap<String, u64>) -> std::io::Result<()> {
        let text: String = map.iter().map(|(topic, offset)| format!("{topic} {offset}\n")).collect();
        crate::durable::replace_file(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_below_a_tombstone_are_dead_across_reopen_until_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tombstones = Tombstones::load(dir.path()).expect("load");
        assert!(!tombstones.is_dead("t", 0));
        tombstones.insert("t", 100).expect("insert");
        tombstones.insert("u", 300).expect("insert");
        let tombstones = Tombstones::load(dir.path()).expect("reload");
        assert!(tombstones.is_dead("t", 99) && !tombstones.is_dead("t", 100));
        assert!(tombstones.contains("u") && !tombstones.is_dead("v", 0));
        tombstones.prune(100).expect("prune");
        let tombstones = Tombstones::load(dir.path()).expect("reload");
        assert!(!tombstones.contains("t") && tombstones.is_dead("u", 299));
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_silent_resurrection() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("deleted_topics"), "t notanumber\n").expect("write");
        assert!(Tombstones::load(dir.path()).is_err());
    }
}
