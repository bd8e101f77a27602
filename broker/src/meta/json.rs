//! Small JSON metadata files (group roles, subscriptions), replaced atomically:
//! written to a temporary file, synced, then renamed over the old one.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads `path`, or returns `T::default()` when it does not exist yet.
pub fn load<T: DeserializeOwned + Default>(path: &Path) -> std::io::Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {err}", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(err) => Err(err),
    }
}

/// Durably replaces `path` with `value` as JSON.
pub fn store<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    weir_storage::durable::replace_file(path, &bytes)
}
