//! A body-content filter, which SQL92 over properties cannot express: delivers
//! orders whose JSON body has `"priority": "high"` (or the `priority`
//! parameter's value) and an `amount` of at least `min_amount` (default 0).
//!
//! ```text
//! weir plugin upload target/wasm32-unknown-unknown/release/examples/json_priority_filter.wasm
//! weir consume --topic orders --group urgent --filter json_priority_filter --filter-params 'priority=high,min_amount=100'
//! ```

use weir_plugin_sdk::{Message, filter, manifest, param};

manifest! {
    name = "json_priority_filter",
    version = "0.1.0",
    kind = "filter",
    description = "Delivers orders whose JSON body has the given priority and at least min_amount",
    param = "priority: the body's priority field to deliver (default high)",
    param = "min_amount: the smallest body amount to deliver (default 0)",
}

fn json_priority_filter(message: &Message) -> bool {
    let Ok(order) = serde_json::from_slice::<serde_json::Value>(message.body) else {
        return false; // not JSON: not an order this consumer handles
    };
    let priority = param("priority").unwrap_or("high");
    let min_amount: f64 = param("min_amount").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    order["priority"].as_str() == Some(priority) && order["amount"].as_f64().is_some_and(|a| a >= min_amount)
}

fn check(_params: &str) -> Result<(), String> {
    match param("min_amount") {
        Some(v) if v.parse::<f64>().is_err() => Err(format!("min_amount must be a number, not {v:?}")),
        _ => Ok(()),
    }
}

filter!(json_priority_filter, init = check);
