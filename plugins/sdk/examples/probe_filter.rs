//! A filter for the host's tests: logs every field it decoded, panics on the
//! body `panic`, allocates the number of MiB in the `grow_mib` property, and
//! delivers the messages tagged `deliver`.

use weir_plugin_sdk::{Level, Message, filter, log, manifest};

manifest! {
    name = "probe_filter",
    version = "1.2.3",
    kind = "filter",
    description = "Logs what it sees; panics on demand",
}

fn probe(message: &Message) -> bool {
    log(
        Level::Info,
        &format!(
            "topic={} queue={} offset={} tag={} keys={:?} props={:?} body={} born={} reconsume={}",
            message.topic,
            message.queue_id,
            message.queue_offset,
            message.tag,
            message.keys,
            message.properties,
            String::from_utf8_lossy(message.body),
            message.born_timestamp_ms,
            message.reconsume_times,
        ),
    );
    if message.body == b"panic" {
        panic!("asked to panic");
    }
    if let Some(mib) = message.property("grow_mib").and_then(|n| n.parse::<usize>().ok()) {
        let hog = vec![1u8; mib << 20];
        log(Level::Info, &format!("allocated {}", hog.len()));
    }
    message.tag == "deliver"
}

filter!(probe);
