//! Durable writes of small files: the store's metadata (checkpoint, manifests,
//! tombstones, `store.meta`) and the broker's (topics journal, group files). Each
//! goes through the fault seam, so tests can fail it as a full disk would and
//! record what it made durable.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Durably replaces the small file at `path` with `bytes`: written to `<path>.tmp`,
/// synced, renamed over `path`, and the directory synced, so a crash leaves either
/// the old or the new contents.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    crate::fault::metadata(path, || {
        std::fs::write(&tmp, bytes)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path.parent().expect("file in a directory"))
    })
}

/// Appends `bytes` to `file` (opened for appending at `path`) and syncs its data.
/// On an error part of `bytes` may be in the file: the caller truncates it back.
pub fn append(file: &mut File, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::fault::metadata(path, || {
        file.write_all(bytes)?;
        file.sync_data()
    })
}

/// Runs `sync`, which makes the whole file at `path` durable, through the fault seam:
/// for files another library writes (the broker's offset database).
pub fn sync_file(path: &Path, sync: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
    crate::fault::sync(path, crate::fault::Synced::File, sync)
}

/// Makes a directory entry change (create, rename, delete) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
