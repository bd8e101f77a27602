//! Plugin operations: upload, list, remove, enable. Registry work (validation,
//! compilation, a plugin's init call) runs on the blocking pool, never on an async
//! worker.

use std::sync::Arc;

use bytes::Bytes;
use weir_plugins::{PluginInfo, PluginKind, Upload};

use super::{Core, CoreError};

impl Core {
    /// Validates, compiles and stores a module (replacing a plugin of the same name live).
    pub async fn upload_plugin(
        self: &Arc<Self>,
        wasm: Bytes,
        name: Option<String>,
        kind: Option<PluginKind>,
        version: Option<String>,
    ) -> Result<PluginInfo, CoreError> {
        let info = self
            .blocking(move |core| {
                let upload = Upload { wasm: &wasm, name: name.as_deref(), kind, version: version.as_deref() };
                Ok(core.plugins.upload(upload)?)
            })
            .await?;
        tracing::info!(plugin = %info.name, version = %info.version, revision = info.revision, "plugin uploaded");
        Ok(info)
    }

    /// Every plugin.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.plugins.list()
    }

    /// Removes a plugin (refused while in use unless `force`).
    pub async fn remove_plugin(self: &Arc<Self>, name: String, force: bool) -> Result<(), CoreError> {
        self.blocking(move |core| {
            Ok(if force { core.plugins.force_remove(&name) } else { core.plugins.remove(&name) }?)
        })
        .await
    }

    /// Re-enables a plugin for every subscription that disabled it; returns how many.
    pub async fn enable_plugin(self: &Arc<Self>, name: String) -> Result<usize, CoreError> {
        self.blocking(move |core| Ok(core.plugins.enable(&name)?)).await
    }
}
