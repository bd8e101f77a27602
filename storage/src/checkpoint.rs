//! The checkpoint: how far the CommitLog is durable and how far the
//! dispatched indexes (ConsumeQueues, key index, hooks) are durable.
//!
//! Format (little-endian, 32 bytes): `magic u32 ("WCP1"), crc32c u32 of the
//! next 24 bytes, commitlog_flushed u64, dispatched u64, written_at_ms i64`.
//! Written to a temporary file and renamed into place, so a crash leaves
//! either the old or the new checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: u32 = 0x5743_5031; // "WCP1"
const LEN: usize = 32;

/// Durable positions recorded by the last checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every CommitLog byte below this offset was flushed.
    pub commitlog_flushed: u64,
    /// Every record below this offset has durable ConsumeQueue and index entries.
    pub dispatched: u64,
    /// When the checkpoint was written, ms since the epoch.
    pub written_at_ms: i64,
}

impl Checkpoint {
    fn encode(&self) -> [u8; LEN] {
        let mut out = [0; LEN];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[8..16].copy_from_slice(&self.commitlog_flushed.to_le_bytes());
        out[16..24].copy_from_slice(&self.dispatched.to_le_bytes());
        out[24..32].copy_from_slice(&self.written_at_ms.to_le_bytes());
        let crc = crc32c::crc32c(&out[8..]);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; LEN] = bytes.try_into().ok()?;
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        (u32_at(0) == MAGIC && u32_at(4) == crc32c::crc32c(&bytes[8..])).then(|| Self {
            commitlog_flushed: u64_at(8),
            dispatched: u64_at(16),
            written_at_ms: u64_at(24) as i64,
        })
    }
}

/// The checkpoint file of a store.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    manifest: QueueManifest,
}

impl CheckpointFile {
    /// The checkpoint kept in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join("checkpoint"), manifest: QueueManifest::new(dir) }
    }

    /// The queue manifest written with each checkpoint.
    pub fn manifest(&self) -> &QueueManifest {
        &self.manifest
    }

    /// The stored checkpoint; `None` when missing or damaged (recovery then starts from the beginning).
    pub fn load(&self) -> Option<Checkpoint> {
        let bytes = std::fs::read(&self.path).ok()?;
        let checkpoint = Checkpoint::decode(&bytes);
        if checkpoint.is_none() {
            tracing::warn!(path = %self.path.display(), "checkpoint is damaged; recovering from the start of the CommitLog");
        }
        checkpoint
    }

    /// Durably replaces the checkpoint.
    pub fn store(&self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        crate::durable::replace_file(&self.path, &checkpoint.encode())
    }
}

/// The list of ConsumeQueues at the last checkpoint, so that recovery notices a
/// queue that went missing (e.g. its directory entry was lost with the power).
///
/// Format: text, one `topic queue_id` line per queue (older stores wrote a third
/// column, the queue's length, which is ignored); replaced atomically like the
/// checkpoint, and only when queues came or went since the last time.
#[derive(Debug)]
pub struct QueueManifest {
    path: PathBuf,
    /// The queue-set generation last written (`u64::MAX`: none yet).
    written: AtomicU64,
}

impl QueueManifest {
    /// The manifest kept in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join("queues"), written: AtomicU64::new(u64::MAX) }
    }

    /// The recorded queues; empty when the file is missing or unreadable.
    pub fn load(&self) -> Vec<(String, u32)> {
        let Ok(text) = std::fs::read_to_string(&self.path) else { return Vec::new() };
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split(' ');
                let topic = parts.next()?.to_owned();
                let queue_id = parts.next()?.parse().ok()?;
                Some((topic, queue_id))
            })
            .collect()
    }

    /// Durably replaces the manifest with `queues()`, unless generation `generation`
    /// of the queue set is the one written last.
    pub fn store<I: Iterator<Item = (String, u32)>>(
        &self,
        generation: u64,
        queues: impl FnOnce() -> I,
    ) -> std::io::Result<()> {
        if self.written.load(Ordering::Acquire) == generation {
            return Ok(());
        }
        let text: String = queues().map(|(topic, queue_id)| format!("{topic} {queue_id}\n")).collect();
        crate::durable::replace_file(&self.path, text.as_bytes())?;
        self.written.store(generation, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = CheckpointFile::new(dir.path());
        assert_eq!(file.load(), None);
        let cp = Checkpoint { commitlog_flushed: 10, dispatched: 7, written_at_ms: 99 };
        file.store(&cp).expect("store");
        assert_eq!(file.load(), Some(cp));
    }

    #[test]
    fn damaged_checkpoint_reads_as_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = CheckpointFile::new(dir.path());
        file.store(&Checkpoint { commitlog_flushed: 10, dispatched: 7, written_at_ms: 99 }).expect("store");
        let mut bytes = std::fs::read(dir.path().join("checkpoint")).expect("read");
        bytes[9] ^= 1;
        std::fs::write(dir.path().join("checkpoint"), &bytes).expect("write");
        assert_eq!(file.load(), None);
        std::fs::write(dir.path().join("checkpoint"), b"short").expect("write");
        assert_eq!(file.load(), None);
    }

    #[test]
    fn manifest_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = QueueManifest::new(dir.path());
        assert!(manifest.load().is_empty());
        let queues = vec![("orders".to_owned(), 0), ("%RETRY%g".to_owned(), 3)];
        manifest.store(1, || queues.clone().into_iter()).expect("store");
        assert_eq!(manifest.load(), queues);
        manifest.store(1, || -> std::vec::IntoIter<(String, u32)> { panic!("generation 1 is written") }).expect("skip");
        std::fs::write(dir.path().join("queues"), "old 2 17\n").expect("an older store's manifest");
        assert_eq!(manifest.load(), [("old".to_owned(), 2)]);
    }
}
