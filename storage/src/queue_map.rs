//! [`QueueMap`]: one value per (topic, queue id), each kept in its own
//! directory `<root>/<topic>/<queue id>/`: the ConsumeQueues, and the
//! per-queue extension files of dispatch hooks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// Per-queue values found under a root directory, created on first use.
#[derive(Debug)]
pub struct QueueMap<T> {
    root: PathBuf,
    /// topic → queue id → value (looked up by `&str`: no allocation).
    queues: RwLock<HashMap<String, HashMap<u32, Arc<T>>>>,
    /// Grows whenever a queue is added or removed.
    generation: AtomicU64,
}

impl<T> QueueMap<T> {
    /// Opens every `<root>/<topic>/<queue id>/` with `open(dir, topic, queue_id)`,
    /// creating `root` if needed; entries that are not a topic and a queue id are ignored.
    pub fn open(root: &Path, mut open: impl FnMut(PathBuf, &str, u32) -> std::io::Result<T>) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let mut queues: HashMap<String, HashMap<u32, Arc<T>>> = HashMap::new();
        for topic_dir in std::fs::read_dir(root)? {
            let topic_dir = topic_dir?;
            let Some(topic) = topic_dir.file_name().to_str().map(str::to_owned) else { continue };
            if crate::record::validate_topic(&topic).is_err() || !topic_dir.file_type()?.is_dir() {
                continue;
            }
            for queue_dir in std::fs::read_dir(topic_dir.path())? {
                let queue_dir = queue_dir?;
                let Some(queue_id) = queue_dir.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let value = open(queue_dir.path(), &topic, queue_id)?;
                queues.entry(topic.clone()).or_default().insert(queue_id, Arc::new(value));
            }
        }
        Ok(Self { root: root.to_owned(), queues: RwLock::new(queues), generation: AtomicU64::new(0) })
    }

    /// The value of a queue, if it exists.
    pub fn get(&self, topic: &str, queue_id: u32) -> Option<Arc<T>> {
        self.queues.read().get(topic)?.get(&queue_id).cloned()
    }

    /// The value of a queue, opened with `open(dir)` if it does not exist yet.
    pub fn get_or_create(
        &self,
        topic: &str,
        queue_id: u32,
        open: impl FnOnce(PathBuf) -> std::io::Result<T>,
    ) -> std::io::Result<Arc<T>> {
        if let Some(value) = self.get(topic, queue_id) {
            return Ok(value);
        }
        let mut queues = self.queues.write();
        let by_id = queues.entry(topic.to_owned()).or_default();
        if let Some(value) = by_id.get(&queue_id) {
            return Ok(value.clone());
        }
        let value = Arc::new(open(self.root.join(topic).join(queue_id.to_string()))?);
        by_id.insert(queue_id, value.clone());
        self.generation.fetch_add(1, Ordering::Release);
        Ok(value)
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> Vec<Arc<T>> {
        self.queues.read().values().flat_map(|by_id| by_id.values().cloned()).collect()
    }

    /// How many queues there are.
    pub fn len(&self) -> usize {
        self.queues.read().values().map(HashMap::len).sum()
    }

    /// Whether there is no queue.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes whenever a queue is added or removed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Forgets every queue of `topic` and deletes `<root>/<topic>/`. Values still held
    /// elsewhere stay readable (their files are unlinked, not unmapped).
    pub fn remove_topic(&self, topic: &str) -> std::io::Result<()> {
        if self.queues.write().remove(topic).is_some() {
            self.generation.fetch_add(1, Ordering::Release);
        }
        match std::fs::remove_dir_all(self.root.join(topic)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}
