//! Plugins stored on disk under `<dir>/plugins/`, compiled once at upload and
//! again at open, replaced live.
//!
//! Layout: per plugin, `<name>.json` (its record: kind, version, revision,
//! size, file) and `<name>-<revision>.wasm` (the module). An upload writes the
//! new module, then atomically replaces the record (write + fsync + rename),
//! then deletes the old module, so a crash leaves either version whole; an
//! unreferenced module or temporary file is deleted at open.
//!
//! Every operation is synchronous (compiling takes milliseconds to seconds):
//! the broker calls them on a blocking pool.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::compile::{LoadError, PluginHost};
use crate::filter::{WasmFilter, WrongKind};
use crate::kind::PluginKind;
use crate::manifest::{Manifest, check_name};
use crate::policy::WasmDlqPolicy;
use crate::slot::PluginSlot;
use crate::stats::StatsSnapshot;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// Reading or writing the registry's files failed.
    #[error("plugin registry I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The module was refused.
    #[error("plugin rejected: {0}")]
    Load(#[from] LoadError),
    /// No name was given and the manifest has none.
    #[error("the plugin has no name: give one (the manifest has no `name`)")]
    NameRequired,
    /// The name is not a valid plugin name.
    #[error("invalid plugin name {name:?}: 1 to 64 of A-Z a-z 0-9 _ -")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// No plugin has this name.
    #[error("no plugin named `{name}`")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The plugin is used by subscriptions.
    #[error("plugin `{name}` is used by {subscriptions} subscription(s); remove them first or force")]
    InUse {
        /// The name.
        name: String,
        /// How many subscriptions hold it.
        subscriptions: usize,
    },
    /// A re-upload would change the plugin's kind.
    #[error("plugin `{name}` is a {stored}; remove it before uploading a {uploaded} under that name")]
    KindChange {
        /// The name.
        name: String,
        /// The stored kind.
        stored: PluginKind,
        /// The uploaded kind.
        uploaded: PluginKind,
    },
    /// The plugin is not of the kind asked for.
    #[error(transparent)]
    WrongKind(#[from] WrongKind),
    /// The plugin's stored files could not be loaded at open.
    #[error("plugin `{name}` failed to load: {error}")]
    Broken {
        /// The name.
        name: String,
        /// Why.
        error: String,
    },
    /// The stored record's revision cannot be counted further.
    #[error("plugin `{name}` is at revision {revision}, the last one: remove it before uploading again")]
    RevisionExhausted {
        /// The name.
        name: String,
        /// The stored revision.
        revision: u64,
    },
}

/// What to upload.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// The module.
    pub wasm: &'a [u8],
    /// Its name; the manifest's when `None`.
    pub name: Option<&'a str>,
    /// Its kind; the manifest's, else the entry point's, when `None`.
    pub kind: Option<PluginKind>,
    /// Its version; the manifest's, else the revision number, when `None`.
    pub version: Option<&'a str>,
}

/// Whether a plugin can be called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum PluginState {
    /// Loaded, and no subscription has it disabled.
    Active,
    /// Loaded, but disabled for some subscriptions after repeated failures.
    Disabled {
        /// How many subscriptions have it disabled.
        subscriptions: usize,
        /// The reason of one of them.
        reason: String,
    },
    /// Its stored files could not be loaded at open.
    Broken {
        /// Why.
        error: String,
    },
}

/// One line of `weir plugin list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its kind (unknown for a broken record).
    pub kind: Option<PluginKind>,
    /// Its version string.
    pub version: String,
    /// Uploads of this name so far (1 for the first).
    pub revision: u64,
    /// Module size in bytes.
    pub size_bytes: usize,
    /// Active, disabled or broken.
    pub state: PluginState,
    /// Subscriptions holding it now.
    pub subscriptions: usize,
    /// Call counters since the broker started (over every subscription and revision).
    pub stats: StatsSnapshot,
    /// Mean wall time of a call, in nanoseconds.
    pub mean_call_nanos: u64,
    /// Its manifest, if it has one.
    pub manifest: Option<Manifest>,
}

/// The stored record of a plugin (`<name>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    name: String,
    kind: PluginKind,
    version: String,
    revision: u64,
    size_bytes: usize,
    file: String,
}

enum Entry {
    Loaded { record: Record, slot: Arc<PluginSlot> },
    Broken { record: Option<Record>, error: String },
}

/// The plugins of one broker.
pub struct Registry {
    dir: PathBuf,
    host: PluginHost,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens (creating it if needed) the registry in `<data_dir>/plugins/`
    /// and compiles every stored plugin. A plugin that fails to load is
    /// listed as broken; the others load.
    pub fn open(data_dir: &Path, host: PluginHost) -> Result<Registry, RegistryError> {
        let dir = data_dir.join("plugins");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut entries = BTreeMap::new();
        let mut referenced = Vec::new();
        for path in list_dir(&dir)? {
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if let Some(name) = file_name.strip_suffix(".json") {
                let entry = load(&dir, name, &host);
                if let Entry::Loaded { record, .. } | Entry::Broken { record: Some(record), .. } = &entry {
                    referenced.push(record.file.clone());
                }
                if let Entry::Broken { error, .. } = &entry {
                    tracing::error!(plugin = name, %error, "stored plugin failed to load");
                }
                entries.insert(name.to_owned(), entry);
            }
        }
        for path in list_dir(&dir)? {
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let stale = file_name.ends_with(".tmp")
                || (file_name.ends_with(".wasm") && !referenced.iter().any(|r| r == file_name));
            if stale {
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(Registry { dir, host, entries: Mutex::new(entries) })
    }

    /// Validates, compiles and stores a module; a plugin of the same name is
    /// replaced live: its subscriptions' next calls use the new version, and
    /// disabled subscriptions are re-enabled.
    pub fn upload(&self, upload: Upload<'_>) -> Result<PluginInfo, RegistryError> {
        let plugin = self.host.compile(upload.wasm, upload.kind)?;
        let manifest = plugin.manifest().cloned();
        let manifest = manifest.as_ref();
        let name = upload.name.or(manifest.and_then(|m| m.name.as_deref())).ok_or(RegistryError::NameRequired)?;
        check_name(name).map_err(|_| RegistryError::InvalidName { name: name.to_owned() })?;
        let mut entries = self.entries.lock();
        let previous = entries.get(name);
        if let Some(Entry::Loaded { record, .. }) = previous
            && record.kind != plugin.kind()
        {
            let (stored, uploaded) = (record.kind, plugin.kind());
            return Err(RegistryError::KindChange { name: name.to_owned(), stored, uploaded });
        }
        let previous_record = match previous {
            Some(Entry::Loaded { record, .. } | Entry::Broken { record: Some(record), .. }) => Some(record.clone()),
            _ => None,
        };
        let revision = match &previous_record {
            None => 1,
            Some(record) => record
                .revision
                .checked_add(1)
                .ok_or_else(|| RegistryError::RevisionExhausted { name: name.to_owned(), revision: record.revision })?,
        };
        let version = upload.version.or(manifest.and_then(|m| m.version.as_deref()));
        let record = Record {
            name: name.to_owned(),
            kind: plugin.kind(),
            version: version.map_or_else(|| revision.to_string(), str::to_owned),
            revision,
            size_bytes: upload.wasm.len(),
            file: format!("{name}-{revision}.wasm"),
        };
        write_atomically(&self.dir.join(&record.file), upload.wasm)?;
        let json = serde_json::to_vec_pretty(&record).map_err(|e| io(&self.dir)(std::io::Error::other(e)))?;
        write_atomically(&self.dir.join(format!("{name}.json")), &json)?;
        if let Some(old) = previous_record.filter(|old| old.file != record.file) {
            let path = self.dir.join(&old.file);
            fs::remove_file(&path).or_else(ignore_missing).map_err(io(&path))?;
        }
        let entry = match entries.remove(name) {
            Some(Entry::Loaded { slot, .. }) => {
                slot.replace(plugin);
                Entry::Loaded { record, slot }
            }
            _ => Entry::Loaded { slot: PluginSlot::new(name.to_owned(), plugin), record },
        };
        tracing::info!(plugin = name, revision, "plugin uploaded");
        let info = describe(name, &entry);
        entries.insert(name.to_owned(), entry);
        Ok(info)
    }

    /// Every plugin, by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.entries.lock().iter().map(|(name, entry)| describe(name, entry)).collect()
    }

    /// One plugin.
    pub fn info(&self, name: &str) -> Result<PluginInfo, RegistryError> {
        let entries = self.entries.lock();
        let entry = entries.get(name).ok_or_else(|| not_found(name))?;
        Ok(describe(name, entry))
    }

    /// Removes a plugin no subscription uses.
    pub fn remove(&self, name: &str) -> Result<(), RegistryError> {
        self.remove_entry(name, false)
    }

    /// Removes a plugin even while subscriptions use it: their calls then
    /// fail as "removed" until they drop it.
    pub fn force_remove(&self, name: &str) -> Result<(), RegistryError> {
        self.remove_entry(name, true)
    }

    fn remove_entry(&self, name: &str, force: bool) -> Result<(), RegistryError> {
        let mut entries = self.entries.lock();
        let entry = entries.get(name).ok_or_else(|| not_found(name))?;
        if let Entry::Loaded { slot, .. } = entry {
            let subscriptions = slot.handles().len();
            if subscriptions > 0 && !force {
                return Err(RegistryError::InUse { name: name.to_owned(), subscriptions });
            }
        }
        let record_path = self.dir.join(format!("{name}.json"));
        fs::remove_file(&record_path).or_else(ignore_missing).map_err(io(&record_path))?;
        if let Entry::Loaded { record, .. } | Entry::Broken { record: Some(record), .. } = entry {
            let path = self.dir.join(&record.file);
            fs::remove_file(&path).or_else(ignore_missing).map_err(io(&path))?;
        }
        if let Some(Entry::Loaded { slot, .. }) = entries.remove(name) {
            slot.mark_removed();
        }
        tracing::info!(plugin = name, "plugin removed");
        Ok(())
    }

    /// Re-enables a plugin for every subscription that had it disabled;
    /// returns how many there were.
    pub fn enable(&self, name: &str) -> Result<usize, RegistryError> {
        let slot = self.slot(name)?;
        let disabled: Vec<_> = slot.handles().into_iter().filter(|handle| handle.is_disabled()).collect();
        disabled.iter().for_each(|handle| handle.enable());
        Ok(disabled.len())
    }

    /// A subscription's handle on the filter `name`, with its parameters.
    /// Drop it when the subscription ends: while it lives the plugin is in use.
    pub fn filter(&self, name: &str, params: &str) -> Result<WasmFilter, RegistryError> {
        let slot = self.slot_of_kind(name, PluginKind::Filter)?;
        Ok(WasmFilter::from_slot(slot, params))
    }

    /// A consumer group's handle on the dlq-policy `name`, with its parameters.
    pub fn dlq_policy(&self, name: &str, params: &str) -> Result<WasmDlqPolicy, RegistryError> {
        let slot = self.slot_of_kind(name, PluginKind::DlqPolicy)?;
        Ok(WasmDlqPolicy::from_slot(slot, params))
    }

    fn slot_of_kind(&self, name: &str, expected: PluginKind) -> Result<Arc<PluginSlot>, RegistryError> {
        let slot = self.slot(name)?;
        let kind = slot.current().kind();
        if kind != expected {
            return Err(WrongKind { name: name.to_owned(), kind, expected }.into());
        }
        Ok(slot)
    }

    fn slot(&self, name: &str) -> Result<Arc<PluginSlot>, RegistryError> {
        match self.entries.lock().get(name) {
            Some(Entry::Loaded { slot, .. }) => Ok(slot.clone()),
            Some(Entry::Broken { error, .. }) => {
                Err(RegistryError::Broken { name: name.to_owned(), error: error.clone() })
            }
            None => Err(not_found(name)),
        }
    }
}

fn load(dir: &Path, name: &str, host: &PluginHost) -> Entry {
    let record_path = dir.join(format!("{name}.json"));
    let record = match fs::read(&record_path).map_err(|e| e.to_string()).and_then(|bytes| {
        serde_json::from_slice::<Record>(&bytes).map_err(|e| format!("bad record {}: {e}", record_path.display()))
    }) {
        // The module must be a file of this folder: a record naming `../x` or `/x` is
        // neither read nor, on removal or replacement, deleted.
        Ok(record) if !is_module_file_name(&record.file) => {
            return Entry::Broken { error: format!("record names module file {:?}", record.file), record: None };
        }
        Ok(record) if record.name == name => record,
        Ok(record) => {
            return Entry::Broken { error: format!("record names plugin `{}`", record.name), record: Some(record) };
        }
        Err(error) => return Entry::Broken { record: None, error },
    };
    let wasm_path = dir.join(&record.file);
    let limit = host.limits().max_module_bytes;
    let compiled = fs::metadata(&wasm_path)
        .and_then(|meta| {
            // Refused before reading: a module over the limit is not read into memory.
            let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
            if size > limit { Err(std::io::Error::other(LoadError::TooLarge { size, limit })) } else { Ok(()) }
        })
        .and_then(|()| fs::read(&wasm_path))
        .map_err(|e| format!("{}: {e}", wasm_path.display()))
        .and_then(|wasm| host.compile(&wasm, Some(record.kind)).map_err(|e| e.to_string()));
    match compiled {
        Ok(plugin) => Entry::Loaded { slot: PluginSlot::new(name.to_owned(), plugin), record },
        Err(error) => Entry::Broken { record: Some(record), error },
    }
}

fn describe(name: &str, entry: &Entry) -> PluginInfo {
    let (record, state, subscriptions, stats, manifest) = match entry {
        Entry::Loaded { record, slot } => {
            let handles = slot.handles();
            let disabled: Vec<String> = handles.iter().filter_map(|handle| handle.disabled_reason()).collect();
            let state = match disabled.first() {
                Some(reason) => PluginState::Disabled { subscriptions: disabled.len(), reason: reason.clone() },
                None => PluginState::Active,
            };
            (Some(record), state, handles.len(), slot.stats.snapshot(), slot.current().manifest().cloned())
        }
        Entry::Broken { record, error } => {
            (record.as_ref(), PluginState::Broken { error: error.clone() }, 0, StatsSnapshot::default(), None)
        }
    };
    PluginInfo {
        name: name.to_owned(),
        kind: record.map(|r| r.kind),
        version: record.map(|r| r.version.clone()).unwrap_or_default(),
        revision: record.map_or(0, |r| r.revision),
        size_bytes: record.map_or(0, |r| r.size_bytes),
        state,
        subscriptions,
        mean_call_nanos: u64::try_from(stats.mean_call_time().as_nanos()).unwrap_or(u64::MAX),
        stats,
        manifest,
    }
}

/// A plain `.wasm` file name, no directory part.
fn is_module_file_name(file: &str) -> bool {
    file.ends_with(".wasm") && Path::new(file).file_name().and_then(|n| n.to_str()) == Some(file)
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound { name: name.to_owned() }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.to_owned(), source }
}

fn ignore_missing(error: std::io::Error) -> std::io::Result<()> {
    if error.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(error) }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        paths.push(entry.map_err(io(dir))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Writes `path` through a temporary file, fsyncs it, renames it into
/// place, and fsyncs the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
