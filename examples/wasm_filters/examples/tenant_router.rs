//! A tenant router for a multi-tenant topic: delivers the messages of the
//! tenants listed in the `tenants` parameter (`tenants=acme|globex`), and, when
//! `stress=only`, only their stress-test messages (property `stress=true`),
//! when `stress=exclude` (the default) never them.
//!
//! The manifest's hint `tenant` is a promise: every message this plugin
//! delivers has a `tenant` property, so the broker skips the others on its
//! bloom index without calling the plugin.

use weir_plugin_sdk::{Message, filter, manifest, param};

manifest! {
    name = "tenant_router",
    version = "0.1.0",
    kind = "filter",
    description = "Delivers the listed tenants' messages, with or without their stress-test traffic",
    param = "tenants: tenants to deliver, separated by | (required)",
    param = "stress: exclude (default), include or only",
    hint = "tenant",
}

fn tenant_router(message: &Message) -> bool {
    let Some(tenant) = message.property("tenant") else { return false };
    let listed = param("tenants").is_some_and(|tenants| tenants.split('|').any(|t| t == tenant));
    let stress = message.property("stress") == Some("true");
    listed
        && match param("stress").unwrap_or("exclude") {
            "only" => stress,
            "include" => true,
            _ => !stress,
        }
}

fn check(_params: &str) -> Result<(), String> {
    if param("tenants").is_none_or(str::is_empty) {
        return Err("the tenants parameter is required, e.g. tenants=acme|globex".into());
    }
    match param("stress") {
        None | Some("exclude" | "include" | "only") => Ok(()),
        Some(other) => Err(format!("stress must be exclude, include or only, not {other:?}")),
    }
}

filter!(tenant_router, init = check);
