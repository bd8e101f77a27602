//! Delivers messages whose `region` property is the subscription's `region`
//! parameter (default `SH`). The smallest useful filter.

use weir_plugin_sdk::{Message, filter, manifest, param};

manifest! {
    name = "region_filter",
    version = env!("CARGO_PKG_VERSION"),
    kind = "filter",
    description = "Delivers messages whose region property equals the region parameter (default SH)",
    param = "region: the region to deliver (default SH)",
    hint = "region",
}

fn region_filter(message: &Message) -> bool {
    message.property("region") == Some(param("region").unwrap_or("SH"))
}

fn check(params: &str) -> Result<(), String> {
    match param("region") {
        Some("") => Err(format!("empty region in {params:?}")),
        _ => Ok(()),
    }
}

filter!(region_filter, init = check);
