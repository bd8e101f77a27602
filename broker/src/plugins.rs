//! Plugin requests: upload, list, remove, enable, and instantiating a filter
//! plugin for a subscription. Registry work (validation, compilation, a
//! plugin's init call) runs on the blocking pool, never on an async worker.

use std::sync::Arc;

use weir_filters::MessageFilter;
use weir_plugins::{PluginKind, RegistryError, Upload};
use weir_protocol::{
    ErrorCode, ErrorResponse, PluginEnableRequest, PluginEnableResponse, PluginInfo, PluginListResponse,
    PluginRemoveRequest, PluginState, PluginUploadRequest,
};

use crate::handler::{Context, Outcome, error};

/// Runs `work` on the registry off the async workers.
async fn blocking<T: Send + 'static>(
    ctx: &Arc<Context>,
    work: impl FnOnce(&weir_plugins::Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Outcome<T> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || work(&ctx.plugins))
        .await
        .map_err(|err| error(ErrorCode::Internal, format!("plugin task failed: {err}")))?
        .map_err(registry_error)
}

/// Validates, compiles and stores a module (replacing a plugin of the same name live).
pub async fn upload(ctx: &Arc<Context>, req: PluginUploadRequest) -> Outcome<PluginInfo> {
    let kind = match req.kind.as_deref() {
        None => None,
        Some("filter") => Some(PluginKind::Filter),
        Some("dlq-policy") => Some(PluginKind::DlqPolicy),
        Some(other) => {
            return Err(error(ErrorCode::BadRequest, format!("unknown plugin kind {other:?}: filter or dlq-policy")));
        }
    };
    let info = blocking(ctx, move |registry| {
        registry.upload(Upload { wasm: &req.wasm, name: req.name.as_deref(), kind, version: req.version.as_deref() })
    })
    .await?;
    tracing::info!(plugin = %info.name, version = %info.version, revision = info.revision, "plugin uploaded");
    Ok(to_wire(info))
}

/// Every plugin.
pub fn list(ctx: &Context) -> PluginListResponse {
    PluginListResponse { plugins: ctx.plugins.list().into_iter().map(to_wire).collect() }
}

/// Removes a plugin (refused while in use unless forced).
pub async fn remove(ctx: &Arc<Context>, req: PluginRemoveRequest) -> Outcome<()> {
    blocking(ctx, move |registry| if req.force { registry.force_remove(&req.name) } else { registry.remove(&req.name) })
        .await
}

/// Re-enables a plugin for every subscription that disabled it.
pub async fn enable(ctx: &Arc<Context>, req: PluginEnableRequest) -> Outcome<PluginEnableResponse> {
    let enabled = blocking(ctx, move |registry| registry.enable(&req.name)).await?;
    Ok(PluginEnableResponse { enabled: u32::try_from(enabled).unwrap_or(u32::MAX) })
}

/// Instantiates filter plugin `name` with `params` for one subscription.
pub async fn filter(ctx: &Arc<Context>, name: String, params: String) -> Outcome<Arc<dyn MessageFilter>> {
    let filter = blocking(ctx, move |registry| registry.filter(&name, &params)).await?;
    Ok(Arc::new(filter))
}

fn registry_error(err: RegistryError) -> ErrorResponse {
    let code = match &err {
        RegistryError::NotFound { .. } => ErrorCode::NotFound,
        RegistryError::InUse { .. } => ErrorCode::PluginInUse,
        RegistryError::NameRequired | RegistryError::InvalidName { .. } | RegistryError::KindChange { .. } => {
            ErrorCode::BadRequest
        }
        RegistryError::Load(_) | RegistryError::WrongKind(_) | RegistryError::Broken { .. } => ErrorCode::InvalidPlugin,
        _ => ErrorCode::Internal,
    };
    error(code, err.to_string())
}

fn to_wire(info: weir_plugins::PluginInfo) -> PluginInfo {
    let (state, state_detail) = match info.state {
        weir_plugins::PluginState::Active => (PluginState::Active, String::new()),
        weir_plugins::PluginState::Disabled { subscriptions, reason } => {
            (PluginState::Disabled, format!("disabled for {subscriptions} subscription(s): {reason}"))
        }
        weir_plugins::PluginState::Broken { error } => (PluginState::Broken, error),
    };
    let manifest = info.manifest.unwrap_or_default();
    PluginInfo {
        name: info.name,
        kind: info.kind.map(|k| k.as_str().to_owned()).unwrap_or_default(),
        version: info.version,
        revision: info.revision,
        size_bytes: info.size_bytes as u64,
        state,
        state_detail,
        subscriptions: u32::try_from(info.subscriptions).unwrap_or(u32::MAX),
        calls: info.stats.calls,
        errors: info.stats.errors,
        total_call_nanos: info.stats.total_call_nanos,
        fuel_used: info.stats.fuel_used,
        description: manifest.description.unwrap_or_default(),
        hints: manifest.hints,
        params: manifest.params,
    }
}
