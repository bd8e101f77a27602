//! Shared by the integration tests.

/// A temporary directory, on tmpfs when there is one: these tests check what the
/// store does, not the disk, and a sync there costs nothing (power loss is simulated
/// by `weir_storage::fault::Recording`, whatever the medium).
pub fn tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix("weir-timer-").tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("tempdir")
}
