//! An append-only journal of a `name → value` map (the topic table's
//! `<data_dir>/topics.log`): each change is one appended record, synced
//! before the caller changes its map, so a change costs the same whatever
//! the size of the map.
//!
//! Format: one record per line, `<crc32c> <json>\n`: the CRC-32C of the JSON
//! bytes as 8 lowercase hex digits, one space, the record as compact JSON
//! (`{"put":{"name":"<name>","value":<value>}}` or `{"delete":{"name":"<name>"}}`),
//! a newline. Replaying the lines in order gives the map.
//!
//! Opening stops at the first line that is incomplete or whose CRC or JSON
//! does not check out (a torn tail after a crash), warns, and truncates the
//! file there so the next append does not follow garbage. An append that
//! fails is taken back (the file is truncated to its previous length), so the
//! file and the caller's map keep agreeing.
//!
//! Compaction: when the journal holds more than `max(floor, 2 × live entries)`
//! records (floor 1024), it is rewritten as a snapshot (one put per live entry)
//! to `<file>.tmp`, synced, renamed over the journal, and the directory synced:
//! a crash leaves either the old journal or the new one, and the file stays
//! proportional to the map.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_storage::durable::sync_dir;

/// The fewest records at which a journal is compacted.
pub const COMPACT_FLOOR: u64 = 1024;

/// Why a change could not be written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The record could not be encoded as JSON.
    #[error("cannot encode a journal record: {0}")]
    Encode(#[from] serde_json::Error),
    /// The record could not be appended and synced; the journal is as before.
    #[error("cannot append to {}: {source}", path.display())]
    Append {
        /// The journal.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The journal could not be compacted; it is as before (and keeps growing).
    #[error("cannot compact {}: {source}", path.display())]
    Compact {
        /// The journal.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
}

/// A record as written (borrowing) ...
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Entry<'a, V> {
    Put { name: &'a str, value: &'a V },
    Delete { name: &'a str },
}

/// ... and as read back: the same JSON shape.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record<V> {
    Put { name: String, value: V },
    Delete { name: String },
}

/// An open journal: the writer of its file.
#[derive(Debug)]
pub struct Journal<V> {
    path: PathBuf,
    dir: PathBuf,
    /// Opened for appending.
    file: File,
    /// Bytes of complete, synced records.
    len: u64,
    /// Records in the file.
    records: u64,
    /// Compaction is due above `max(floor, 2 × live)` records.
    floor: u64,
    /// After a failed compaction, no retry below this many records.
    retry_at: u64,
    /// A failed append may have left bytes after `len`: truncate before the next one.
    torn: bool,
    /// A rename into the directory may not be durable yet: sync it before the next append.
    dir_unsynced: bool,
    _values: PhantomData<fn(V) -> V>,
}

impl<V: Serialize + DeserializeOwned> Journal<V> {
    /// Opens the journal at `path` (creating it empty if it does not exist)
    /// and replays it. A torn or corrupt tail is dropped, with a warning.
    pub fn open(path: PathBuf, floor: u64) -> io::Result<(Self, BTreeMap<String, V>)> {
        let dir = parent(&path).to_owned();
        let at = |err: io::Error| io::Error::new(err.kind(), format!("{}: {err}", path.display()));
        let (bytes, existed) = match std::fs::read(&path) {
            Ok(bytes) => (bytes, true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => (Vec::new(), false),
            Err(err) => return Err(at(err)),
        };
        let replay = replay::<V>(&bytes);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(at)?;
        if !existed {
            sync_dir(&dir).map_err(at)?;
        }
        if let Some(reason) = replay.stopped {
            tracing::warn!(
                path = %path.display(),
                records = replay.records,
                dropped_bytes = bytes.len() - replay.len,
                reason,
                "journal has a torn or corrupt tail: truncating it after the last good record"
            );
            file.set_len(replay.len as u64).and_then(|()| file.sync_data()).map_err(at)?;
        }
        remove_if_exists(&tmp_path(&path)).map_err(at)?;
        let journal = Self {
            dir,
            file,
            len: replay.len as u64,
            records: replay.records,
            floor,
            retry_at: 0,
            torn: false,
            dir_unsynced: false,
            path,
            _values: PhantomData,
        };
        Ok((journal, replay.map))
    }

    /// Appends and syncs `name → value`.
    pub fn put(&mut self, name: &str, value: &V) -> Result<(), JournalError> {
        self.append(&Entry::Put { name, value })
    }

    /// Appends and syncs the removal of `name`.
    pub fn delete(&mut self, name: &str) -> Result<(), JournalError> {
        self.append(&Entry::Delete { name })
    }

    /// Records in the file.
    #[cfg(test)]
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Whether the journal should be compacted, the map holding `live` entries.
    pub fn compaction_due(&self, live: usize) -> bool {
        let live = u64::try_from(live).unwrap_or(u64::MAX);
        self.records > self.floor.max(live.saturating_mul(2)) && self.records >= self.retry_at
    }

    /// Rewrites the journal as one put per entry of `live`, which must be the
    /// map its records give. On failure the journal is as before, and the next
    /// attempt waits for `floor` more records.
    pub fn compact(&mut self, live: &BTreeMap<String, V>) -> Result<(), JournalError> {
        let failed = |journal: &mut Self, source| {
            journal.retry_at = journal.records.saturating_add(journal.floor);
            JournalError::Compact { path: journal.path.clone(), source }
        };
        let tmp = tmp_path(&self.path);
        let (file, len) = match write_file(&tmp, live) {
            Ok(written) => written,
            Err(source) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(failed(self, source));
            }
        };
        if let Err(source) = std::fs::rename(&tmp, &self.path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(failed(self, source));
        }
        // The old file is unlinked: from here on, append to the new one.
        self.file = file;
        self.len = len;
        self.records = u64::try_from(live.len()).unwrap_or(u64::MAX);
        self.torn = false;
        self.dir_unsynced = true;
        sync_dir(&self.dir).map_err(|source| JournalError::Compact { path: self.path.clone(), source })?;
        self.dir_unsynced = false;
        Ok(())
    }

    fn append(&mut self, entry: &Entry<'_, V>) -> Result<(), JournalError> {
        let line = encode_line(entry)?;
        let failed = |path: &Path, source| JournalError::Append { path: path.to_owned(), source };
        if self.dir_unsynced {
            sync_dir(&self.dir).map_err(|source| failed(&self.path, source))?;
            self.dir_unsynced = false;
        }
        if self.torn {
            self.take_back().map_err(|source| failed(&self.path, source))?;
            self.torn = false;
        }
        if let Err(source) = weir_storage::durable::append(&mut self.file, &self.path, &line) {
            // Part of the record, or all of it unsynced, may be in the file:
            // take it back so the file keeps matching the caller's map.
            self.torn = self.take_back().is_err();
            return Err(failed(&self.path, source));
        }
        self.len += line.len() as u64;
        self.records += 1;
        Ok(())
    }

    /// Truncates the file to its complete records.
    fn take_back(&self) -> io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.sync_data()
    }
}

/// Atomically replaces (or creates) the journal at `path` with one put per
/// entry of `map`: a temporary file, synced, renamed, the directory synced.
pub fn write_snapshot<V: Serialize>(path: &Path, map: &BTreeMap<String, V>) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = write_file(&tmp, map).and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    sync_dir(parent(path))
}

/// Writes `map` as puts to a new file at `path`, synced; the file opened for
/// appending and its length.
fn write_file<V: Serialize>(path: &Path, map: &BTreeMap<String, V>) -> io::Result<(File, u64)> {
    let mut bytes = Vec::new();
    for (name, value) in map {
        bytes.extend_from_slice(&encode_line(&Entry::Put { name, value }).map_err(io::Error::other)?);
    }
    remove_if_exists(path)?;
    let mut file = OpenOptions::new().create_new(true).append(true).open(path)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok((file, bytes.len() as u64))
}

fn encode_line<V: Serialize>(entry: &Entry<'_, V>) -> Result<Vec<u8>, serde_json::Error> {
    // Compact JSON escapes control characters: the line has no other newline.
    let json = serde_json::to_vec(entry)?;
    let mut line = Vec::with_capacity(json.len() + 10);
    line.extend_from_slice(format!("{:08x} ", crc32c::crc32c(&json)).as_bytes());
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// A replayed journal.
struct Replay<V> {
    map: BTreeMap<String, V>,
    records: u64,
    /// Bytes of the good records.
    len: usize,
    /// Why replay stopped before the end of the file.
    stopped: Option<&'static str>,
}

fn replay<V: DeserializeOwned>(bytes: &[u8]) -> Replay<V> {
    let mut replay = Replay { map: BTreeMap::new(), records: 0, len: 0, stopped: None };
    while replay.len < bytes.len() {
        let rest = &bytes[replay.len..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            replay.stopped = Some("incomplete last line");
            break;
        };
        match decode_line(&rest[..end]) {
            Ok(Record::Put { name, value }) => {
                replay.map.insert(name, value);
            }
            Ok(Record::Delete { name }) => {
                replay.map.remove(&name);
            }
            Err(reason) => {
                replay.stopped = Some(reason);
                break;
            }
        }
        replay.records += 1;
        replay.len += end + 1;
    }
    replay
}

fn decode_line<V: DeserializeOwned>(line: &[u8]) -> Result<Record<V>, &'static str> {
    let (crc, json) = match line.split_at_checked(8) {
        Some((crc, [b' ', json @ ..])) if crc.iter().all(u8::is_ascii_hexdigit) => (crc, json),
        _ => return Err("a line without a CRC"),
    };
    let crc = std::str::from_utf8(crc).ok().and_then(|crc| u32::from_str_radix(crc, 16).ok());
    if crc != Some(crc32c::crc32c(json)) {
        return Err("a CRC mismatch");
    }
    serde_json::from_slice(json).map_err(|_| "a record that is not valid JSON")
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}
