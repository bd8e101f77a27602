//! How messages are printed: one JSON object per line, or one human line.

use base64::Engine;
use weir_protocol::StoredMessage;

/// The JSON form of a message: `msg_id`, `topic`, `queue_id`, `queue_offset`,
/// `tag`, `keys`, `props`, and `body` (UTF-8) or `body_base64`.
pub fn message_json(m: &StoredMessage) -> serde_json::Value {
    let props: serde_json::Map<String, serde_json::Value> =
        m.properties.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect();
    let mut out = serde_json::json!({
        "msg_id": m.msg_id, "topic": m.topic, "queue_id": m.queue_id, "queue_offset": m.queue_offset,
        "tag": m.tag, "keys": m.keys, "props": props,
        "born_timestamp_ms": m.born_timestamp_ms, "store_timestamp_ms": m.store_timestamp_ms, "born_host": m.born_host,
    });
    match std::str::from_utf8(&m.body) {
        Ok(text) => out["body"] = text.into(),
        Err(_) => out["body_base64"] = base64::engine::general_purpose::STANDARD.encode(&m.body).into(),
    }
    out
}

/// One human-readable line for a message.
pub fn message_line(m: &StoredMessage) -> String {
    let props: Vec<String> = m.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let body = match std::str::from_utf8(&m.body) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("<{} binary bytes>", m.body.len()),
    };
    format!(
        "{}/{}@{} id={} tag={} keys={} props={{{}}} {}",
        m.topic,
        m.queue_id,
        m.queue_offset,
        m.msg_id,
        m.tag.as_deref().unwrap_or("-"),
        if m.keys.is_empty() { "-".to_owned() } else { m.keys.join(",") },
        props.join(","),
        body
    )
}
