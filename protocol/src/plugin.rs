//! WebAssembly plugins: upload, list, remove and re-enable (the registry is the broker's).

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Wire, Writer};

/// Upload a plugin module (validated and compiled by the broker). Name, kind and
/// version default to the module's manifest; re-uploading a name replaces it live.
/// Answered with the plugin's [`PluginInfo`].
///
/// Format: option\<string\> name, option\<string\> kind (`filter` or `dlq-policy`),
/// option\<string\> version, bytes wasm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginUploadRequest {
    /// The plugin's name.
    pub name: Option<String>,
    /// `filter` or `dlq-policy`.
    pub kind: Option<String>,
    /// The version to record.
    pub version: Option<String>,
    /// The WebAssembly module.
    pub wasm: Bytes,
}

impl Wire for PluginUploadRequest {
    const MIN_LEN: usize = 1 + 1 + 1 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.opt_str("plugin_upload.name", self.name.as_deref())?;
        w.opt_str("plugin_upload.kind", self.kind.as_deref())?;
        w.opt_str("plugin_upload.version", self.version.as_deref())?;
        w.bytes("plugin_upload.wasm", &self.wasm)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PluginUploadRequest {
            name: r.opt_str("plugin_upload.name")?,
            kind: r.opt_str("plugin_upload.kind")?,
            version: r.opt_str("plugin_upload.version")?,
            wasm: r.bytes("plugin_upload.wasm")?,
        })
    }
}

/// Remove a plugin; refused with `PLUGIN_IN_USE` while subscriptions use it, unless `force`
/// (their calls then fail and count as plugin errors).
///
/// Format: string name, bool force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRemoveRequest {
    /// The plugin's name.
    pub name: String,
    /// Remove even while in use.
    pub force: bool,
}

impl Wire for PluginRemoveRequest {
    const MIN_LEN: usize = 2 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("plugin_remove.name", &self.name)?;
        w.bool(self.force);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PluginRemoveRequest { name: r.str("plugin_remove.name")?, force: r.bool("plugin_remove.force")? })
    }
}

/// Re-enable a plugin for every subscription that disabled it after repeated failures.
/// Answered with how many subscriptions were re-enabled.
///
/// Format: string name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEnableRequest {
    /// The plugin's name.
    pub name: String,
}

impl Wire for PluginEnableRequest {
    const MIN_LEN: usize = 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("plugin_enable.name", &self.name)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PluginEnableRequest { name: r.str("plugin_enable.name")? })
    }
}

/// How many subscriptions a [`PluginEnableRequest`] re-enabled.
///
/// Format: `u32` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginEnableResponse {
    /// Subscriptions re-enabled.
    pub enabled: u32,
}

impl Wire for PluginEnableResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.enabled);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PluginEnableResponse { enabled: r.u32("plugin_enable.enabled")? })
    }
}

/// Whether a plugin can be called.
///
/// Format: `u8`: 0 active, 1 disabled (for some subscriptions), 2 broken (failed to load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PluginState {
    /// Loaded and enabled everywhere.
    #[default]
    Active,
    /// Disabled for some subscriptions after repeated failures.
    Disabled,
    /// Its stored module could not be loaded.
    Broken,
}

impl PluginState {
    /// The state's name in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Active => "active",
            PluginState::Disabled => "disabled",
            PluginState::Broken => "broken",
        }
    }
}

/// One plugin, as `weir plugin list` shows it.
///
/// Format: string name, string kind, string version, `u64` revision, `u64` size_bytes,
/// `u8` [`PluginState`], string state_detail, `u32` subscriptions, `u64` calls,
/// `u64` errors, `u64` total_call_nanos, `u64` fuel_used, string description,
/// list\<string\> hints, list\<string\> params, `u32` groups, `u64` retries, `u64`
/// dead_letters, `u64` discards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// `filter` or `dlq-policy` (empty when broken before its kind was known).
    pub kind: String,
    /// Its version.
    pub version: String,
    /// Uploads of this name so far.
    pub revision: u64,
    /// Module size.
    pub size_bytes: u64,
    /// Active, disabled or broken.
    pub state: PluginState,
    /// Why it is disabled or broken (empty when active).
    pub state_detail: String,
    /// Subscriptions using it.
    pub subscriptions: u32,
    /// Calls since the broker started.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Total wall time of the calls.
    pub total_call_nanos: u64,
    /// Total fuel consumed.
    pub fuel_used: u64,
    /// The manifest's description.
    pub description: String,
    /// The manifest's index hints (`name` or `name=value`).
    pub hints: Vec<String>,
    /// The manifest's parameter documentation.
    pub params: Vec<String>,
    /// Consumer groups whose retry policy it is (dlq-policy plugins).
    pub groups: u32,
    /// Its decisions since the broker started: retry.
    pub retries: u64,
    /// Dead letter.
    pub dead_letters: u64,
    /// Discard.
    pub discards: u64,
}

impl Wire for PluginInfo {
    const MIN_LEN: usize = 2 + 2 + 2 + 8 + 8 + 1 + 2 + 4 + 8 * 4 + 2 + 4 + 4 + 4 + 8 * 3;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("plugin.name", &self.name)?;
        w.str("plugin.kind", &self.kind)?;
        w.str("plugin.version", &self.version)?;
        w.u64(self.revision);
        w.u64(self.size_bytes);
        w.u8(self.state as u8);
        w.str("plugin.state_detail", &self.state_detail)?;
        w.u32(self.subscriptions);
        w.u64(self.calls);
        w.u64(self.errors);
        w.u64(self.total_call_nanos);
        w.u64(self.fuel_used);
        w.str("plugin.description", &self.description)?;
        w.list("plugin.hints", &self.hints)?;
        w.list("plugin.params", &self.params)?;
        w.u32(self.groups);
        w.u64(self.retries);
        w.u64(self.dead_letters);
        w.u64(self.discards);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PluginInfo {
            name: r.str("plugin.name")?,
            kind: r.str("plugin.kind")?,
            version: r.str("plugin.version")?,
            revision: r.u64("plugin.revision")?,
            size_bytes: r.u64("plugin.size_bytes")?,
            state: match r.u8("plugin.state")? {
                0 => PluginState::Active,
                1 => PluginState::Disabled,
                2 => PluginState::Broken,
                value => return Err(DecodeError::InvalidValue { field: "plugin.state", value: value.into() }),
            },
            state_detail: r.str("plugin.state_detail")?,
            subscriptions: r.u32("plugin.subscriptions")?,
            calls: r.u64("plugin.calls")?,
            errors: r.u64("plugin.errors")?,
            total_call_nanos: r.u64("plugin.total_call_nanos")?,
            fuel_used: r.u64("plugin.fuel_used")?,
            description: r.str("plugin.description")?,
            hints: r.list("plugin.hints")?,
            params: r.list("plugin.params")?,
            groups: r.u32("plugin.groups")?,
            retries: r.u64("plugin.retries")?,
            dead_letters: r.u64("plugin.dead_letters")?,
            discards: r.u64("plugin.discards")?,
        })
    }
}

/// Every plugin of the broker.
///
/// Format: list\<[`PluginInfo`]\>.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginListResponse {
    /// The plugins, by name.
    pub plugins: Vec<PluginInfo>,
}

impl Wire for PluginListResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("plugin_list.plugins", &self.plugins)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PluginListResponse { plugins: r.list("plugin_list.plugins")? })
    }
}
