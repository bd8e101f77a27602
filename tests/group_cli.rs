//! `weir group` end to end: a real broker process on loopback, the CLI talking QUIC to
//! it through `WEIR_BROKER`/`WEIR_CA` (as in `broker_cli.rs`). Declaring a group with a
//! strategy, listing and describing groups, replacing a subscription, a group's lag, and
//! resetting its offsets to the earliest, the latest and a time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use weir_client::{Message, Producer};

mod support;

use support::BrokerProcess;

#[test]
fn create_with_a_strategy_list_set_subscription_and_describe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(&dir.path().join("data"), "async");

    let created = broker.json(&["group", "create", "billing", "--strategy", "sticky", "--json"]);
    assert_eq!(created[0], serde_json::json!({ "group": "billing", "shadow": false, "strategy": "sticky" }));
    let listed = broker.json(&["group", "list", "--json"]);
    assert_eq!(
        listed,
        [serde_json::json!({
            "group": "billing", "members": 0, "generation": listed[0]["generation"], "strategy": "sticky",
            "mode": "clustering", "subscriptions": 0, "shadow": false, "conflicts": 0,
        })]
    );
    // Declaring again without --strategy keeps it.
    let again = broker.json(&["group", "create", "billing", "--json"]);
    assert_eq!(again[0]["strategy"], "sticky");
    let refused = broker.fails(&["group", "create", "billing", "--strategy", "fastest"]);
    assert!(refused.contains("fastest") && refused.contains("consistent-hash"), "{refused}");

    assert!(broker.cli(&["topic", "create", "orders", "--queues", "4"]).status.success());
    let set = broker.json(&[
        "group",
        "set-subscription",
        "--group",
        "billing",
        "--topic",
        "orders",
        "--tag",
        "A || B",
        "--json",
    ]);
    assert_eq!(
        set[0],
        serde_json::json!({
            "group": "billing", "topic": "orders", "expression": "tag A || B", "plugin": null, "version": 1,
        })
    );
    let set = broker.json(&[
        "group",
        "set-subscription",
        "--group",
        "billing",
        "--topic",
        "orders",
        "--sql",
        "region = 'SH'",
        "--json",
    ]);
    assert_eq!(set[0]["version"], 2);
    let described = broker.json(&["group", "describe", "--group", "billing", "--json"]);
    assert_eq!(described.len(), 1, "one object for the whole group");
    let d = &described[0];
    assert_eq!(
        (d["group"].as_str(), d["strategy"].as_str(), d["mode"].as_str()),
        (Some("billing"), Some("sticky"), Some("clustering"))
    );
    assert_eq!((d["shadow"].as_bool(), d["conflict"].as_bool()), (Some(false), Some(false)));
    assert_eq!((d["members"].as_array().map(Vec::len), d["conflicts"].as_array().map(Vec::len)), (Some(0), Some(0)));
    assert!(d["generation"].is_u64());
    assert_eq!(
        d["subscriptions"],
        serde_json::json!([{ "topic": "orders", "expression": "sql region = 'SH'", "plugin": null, "version": 2 }])
    );
    let text = broker.cli(&["group", "describe", "--group", "billing"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("strategy sticky") && text.contains("sql region = 'SH'"), "{text}");

    // One expression is required, and only one.
    let usage = broker.cli(&["group", "set-subscription", "--group", "billing", "--topic", "orders"]);
    assert_eq!(usage.status.code(), Some(2));
    let usage =
        broker.cli(&["group", "set-subscription", "--group", "billing", "--topic", "orders", "--all", "--tag", "A"]);
    assert_eq!(usage.status.code(), Some(2));
    // Unknown groups fail clearly.
    let unknown = broker.fails(&["group", "describe", "--group", "nope"]);
    assert!(unknown.contains("no consumer group nope"), "{unknown}");
}

/// Now in Unix milliseconds.
fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// Sends `per_queue` messages to each of `queues` queues of `topic`.
fn send(runtime: &tokio::runtime::Runtime, producer: &Producer, topic: &str, queues: u32, per_queue: u32) {
    for queue_id in 0..queues {
        for i in 0..per_queue {
            let mut message = Message::new(topic, format!("q{queue_id} m{i}"));
            message.queue_id = Some(queue_id);
            runtime.block_on(producer.send(message)).expect("send");
        }
    }
}

/// `weir group lag --json`: the per-queue lines as (queue, committed, lag), and the totals line.
fn lag(broker: &BrokerProcess, group: &str, topic: &str) -> (Vec<(u64, Option<u64>, u64)>, Value) {
    let mut lines = broker.json(&["group", "lag", "--group", group, "--topic", topic, "--json"]);
    let totals = lines.pop().expect("totals line");
    assert_eq!(totals["total"], true, "{totals}");
    let queues: Vec<(u64, Option<u64>, u64)> = lines
        .iter()
        .map(|l| {
            assert_eq!((l["group"].as_str(), l["topic"].as_str()), (Some(group), Some(topic)), "{l}");
            (l["queue_id"].as_u64().expect("queue"), l["committed_offset"].as_u64(), l["lag"].as_u64().expect("lag"))
        })
        .collect();
    // The totals add up.
    assert_eq!(totals["queues"].as_u64(), Some(lines.len() as u64), "{totals}");
    assert_eq!(totals["lag"].as_u64(), Some(queues.iter().map(|q| q.2).sum()), "{totals}");
    let broker_offsets: u64 = lines.iter().map(|l| l["broker_offset"].as_u64().expect("broker offset")).sum();
    assert_eq!(totals["broker_offset"].as_u64(), Some(broker_offsets), "{totals}");
    (queues, totals)
}

/// `weir group reset-offset --json`: the offsets set per queue; one generation for all.
fn reset(broker: &BrokerProcess, group: &str, topic: &str, to: &str) -> Vec<u64> {
    let lines = broker.json(&["group", "reset-offset", "--group", group, "--topic", topic, "--to", to, "--json"]);
    assert!(
        lines.iter().all(|l| l["generation"] == lines[0]["generation"] && l["group"] == group && l["topic"] == topic)
    );
    lines.iter().map(|l| l["offset"].as_u64().expect("offset")).collect()
}

#[test]
fn lag_and_reset_offsets_to_earliest_latest_and_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(&dir.path().join("data"), "async");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = broker.client(&runtime);
    let producer = Producer::new(client.clone());
    runtime
        .block_on(client.create_topic(weir_client::TopicConfig {
            name: "ledger".to_owned(),
            read_queues: 4,
            write_queues: 4,
            permissions: weir_client::TopicPermissions::READ_WRITE,
        }))
        .expect("create topic");

    // Batch 1: four messages per queue; the group committed some of them.
    send(&runtime, &producer, "ledger", 4, 4);
    for (queue_id, offset) in [(0, 4), (1, 1), (3, 2)] {
        runtime.block_on(client.commit_offset("audit", "ledger", queue_id, offset)).expect("commit");
    }
    let (queues, totals) = lag(&broker, "audit", "ledger");
    assert_eq!(queues, [(0, Some(4), 0), (1, Some(1), 3), (2, None, 4), (3, Some(2), 2)]);
    assert_eq!((totals["lag"].as_u64(), totals["broker_offset"].as_u64()), (Some(9), Some(16)));
    assert_eq!(totals["committed_queues"].as_u64(), Some(3));
    let lines = broker.json(&["group", "lag", "--group", "audit", "--topic", "ledger", "--json"]);
    assert!(lines[2]["last_commit_ms"].is_null() && lines[2]["owner"].is_null() && lines[0]["last_commit_ms"].is_u64());
    // Without --topic the group's lag covers the topics it committed offsets in.
    let everything = broker.json(&["group", "lag", "--group", "audit", "--json"]);
    assert_eq!(everything.len(), 5, "four queues and the totals: {everything:?}");
    let unknown = broker.fails(&["group", "lag", "--group", "nobody"]);
    assert!(unknown.contains("no consumer group nobody"), "{unknown}");

    assert_eq!(reset(&broker, "audit", "ledger", "earliest"), [0, 0, 0, 0]);
    let (queues, totals) = lag(&broker, "audit", "ledger");
    assert_eq!(queues, [(0, Some(0), 4), (1, Some(0), 4), (2, Some(0), 4), (3, Some(0), 4)]);
    assert_eq!(totals["lag"].as_u64(), Some(16));

    assert_eq!(reset(&broker, "audit", "ledger", "latest"), [4, 4, 4, 4]);
    let (queues, _) = lag(&broker, "audit", "ledger");
    assert_eq!(queues, [(0, Some(4), 0), (1, Some(4), 0), (2, Some(4), 0), (3, Some(4), 0)]);

    // Batch 2, sent after a time between the batches: a reset to that time lands on its first message.
    std::thread::sleep(Duration::from_millis(50));
    let between = now_ms();
    std::thread::sleep(Duration::from_millis(50));
    send(&runtime, &producer, "ledger", 4, 2);
    assert_eq!(reset(&broker, "audit", "ledger", &between.to_string()), [4, 4, 4, 4]);
    let (queues, _) = lag(&broker, "audit", "ledger");
    assert_eq!(queues, [(0, Some(4), 2), (1, Some(4), 2), (2, Some(4), 2), (3, Some(4), 2)]);
    // RFC 3339 times: long before and long after every message.
    assert_eq!(reset(&broker, "audit", "ledger", "2000-01-01T00:00:00Z"), [0, 0, 0, 0]);
    assert_eq!(reset(&broker, "audit", "ledger", "2999-12-31T23:59:59.999+01:00"), [6, 6, 6, 6]);

    let bad = broker.cli(&["group", "reset-offset", "--group", "audit", "--topic", "ledger", "--to", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
    let unknown_topic =
        broker.fails(&["group", "reset-offset", "--group", "audit", "--topic", "nope", "--to", "latest"]);
    assert!(unknown_topic.contains("UNKNOWN_TOPIC"), "{unknown_topic}");
    runtime.block_on(producer.close());
    runtime.block_on(client.close());
}
