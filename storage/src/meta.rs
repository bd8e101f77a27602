//! The store's identity files: `store.meta` (format version, store id, file
//! geometry) and the `lock` that keeps a second process out.

use std::path::Path;

use crate::config::StoreConfig;
use crate::error::{IoContext, OpenError};

const META_FILE: &str = "store.meta";
const LOCK_FILE: &str = "lock";

/// Takes an exclusive advisory lock so two processes never open one store.
pub(crate) fn lock_dir(dir: &Path) -> Result<std::fs::File, OpenError> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).at(&path)?;
    // SAFETY: plain FFI call on a valid, open file descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(OpenError::Locked(dir.to_owned()));
    }
    Ok(file)
}

/// Reads the store's format version, id and file geometry, creating the file for a new store.
///
/// Format: text lines `weir-store 1`, `store-id XXXXXXXX`, `segment-size N`,
/// `consume-queue-entries N`. The geometry of an existing store wins over the
/// configuration: opening files with another size would misplace every offset.
pub(crate) fn load_or_create(dir: &Path, config: &mut StoreConfig) -> Result<u32, OpenError> {
    let path = dir.join(META_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let meta = parse_meta(&text).ok_or_else(|| OpenError::Format {
                path: path.clone(),
                reason: "not a version-1 Weir store (expected `weir-store 1`, a store id and file sizes)".into(),
            })?;
            if (meta.1, meta.2) != (config.segment_size, config.consume_queue_entries_per_file) {
                tracing::info!(
                    segment_size = meta.1,
                    consume_queue_entries = meta.2,
                    "using the file sizes the store was created with"
                );
                config.segment_size = meta.1;
                config.consume_queue_entries_per_file = meta.2;
                // The segments bound the message size: a record may take at most half a segment.
                let fits = (meta.1 / 2).saturating_sub(4096) as usize;
                if config.max_message_size > fits {
                    tracing::info!(max_message_size = fits, "lowering max_message_size to fit the store's segments");
                    config.max_message_size = fits;
                }
                config.validate()?;
            }
            Ok(meta.0)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            config.validate()?;
            if std::fs::read_dir(dir.join("commitlog")).is_ok_and(|mut d| d.next().is_some()) {
                return Err(OpenError::Format { path, reason: "missing while CommitLog segments exist".into() });
            }
            let id = random_store_id();
            let text = format!(
                "weir-store 1\nstore-id {id:08X}\nsegment-size {}\nconsume-queue-entries {}\n",
                config.segment_size, config.consume_queue_entries_per_file
            );
            crate::durable::replace_file(&path, text.as_bytes()).at(&path)?;
            Ok(id)
        }
        Err(err) => Err(OpenError::Io { path, source: err }),
    }
}

/// `(store id, segment size, ConsumeQueue entries per file)`.
fn parse_meta(text: &str) -> Option<(u32, u64, u64)> {
    let mut lines = text.lines();
    (lines.next()? == "weir-store 1").then_some(())?;
    let id = u32::from_str_radix(lines.next()?.strip_prefix("store-id ")?, 16).ok()?;
    let segment_size = lines.next()?.strip_prefix("segment-size ")?.parse().ok()?;
    let entries = lines.next()?.strip_prefix("consume-queue-entries ")?.parse().ok()?;
    Some((id, segment_size, entries))
}

fn random_store_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(crate::now_ms());
    h.write_u32(std::process::id());
    h.finish() as u32
}
