//! The `weir` binary end to end: a real broker process on loopback, the CLI
//! talking QUIC to it through `WEIR_BROKER`/`WEIR_CA`, graceful shutdown,
//! SIGKILL of the broker during sync-flush sends, and `weir bench produce
//! --topics K` (messages spread round-robin over K topics created by the
//! benchmark, every one stored in the topic its ack-log line names).

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

mod support;

use support::{BrokerProcess, stdout_lines, weir};

#[test]
fn send_and_consume_through_a_broker_process_then_stop_it_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProcess::start(&dir.path().join("data"), "async");
    assert!(broker.cli(&["topic", "create", "orders", "--queues", "2"]).status.success());
    let sent = stdout_lines(&broker.cli(&[
        "send",
        "--topic",
        "orders",
        "--tag",
        "TagA",
        "--key",
        "o-1",
        "--prop",
        "region=SH",
        "--json",
        "hello weir",
    ]));
    assert_eq!(sent[0]["status"], "SEND_OK");
    let consumed = stdout_lines(
        &broker.cli(&["consume", "--topic", "orders", "--group", "g", "--from", "earliest", "--count", "1", "--json"]),
    );
    let m = &consumed[0];
    assert_eq!(
        (m["topic"].as_str(), m["tag"].as_str(), m["body"].as_str()),
        (Some("orders"), Some("TagA"), Some("hello weir"))
    );
    assert_eq!((m["keys"][0].as_str(), m["props"]["region"].as_str()), (Some("o-1"), Some("SH")));
    assert_eq!(m["msg_id"], sent[0]["msg_id"]);
    // The group's offset was committed: nothing is left for it.
    let rest = broker.cli(&["consume", "--topic", "orders", "--group", "g", "--idle-exit", "0.5", "--json"]);
    assert!(stdout_lines(&rest).is_empty());
    let by_key = stdout_lines(&broker.cli(&["message", "get", "--topic", "orders", "--key", "o-1", "--json"]));
    assert_eq!(by_key[0]["msg_id"], sent[0]["msg_id"]);
    let status = stdout_lines(&broker.cli(&["status", "--json"]));
    assert_eq!((status[0]["topics"].as_u64(), status[0]["flush"].as_str()), (Some(1), Some("async")));
    assert!(status[0]["flushes"].is_u64(), "{}", status[0]);
    // Errors are clear and non-zero.
    let unknown = broker.cli(&["send", "--topic", "nope", "x"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).to_lowercase().contains("topic"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    broker.signal("TERM");
    let status = broker.child.wait().expect("wait");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let down = broker.cli(&["status"]);
    assert!(!down.status.success(), "status fails when no broker answers");
}

/// Under sync flush, concurrent sends share fsyncs (group commit), and `bench produce`
/// says how many messages each fsync covered.
#[test]
fn sync_sends_share_fsyncs_and_the_bench_reports_messages_per_fsync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(&dir.path().join("data"), "sync");
    let args =
        ["bench", "produce", "--topic", "t", "--count", "4000", "--size", "256", "--concurrency", "64", "--json"];
    let summary = &stdout_lines(&broker.cli(&args))[0];
    assert_eq!(summary["sent"], 4000, "{summary}");
    let flushes = summary["flushes"].as_u64().expect("flushes");
    assert!(flushes > 0 && flushes < 4000, "{summary}");
    assert!(summary["msgs_per_flush"].as_f64().expect("msgs_per_flush") > 1.0, "{summary}");
}

#[test]
fn sigkill_of_the_broker_during_sync_sends_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let ack_log = dir.path().join("acks.jsonl");
    let broker = BrokerProcess::start(&data_dir, "sync");
    let mut producer = broker
        .command(&[
            "bench",
            "produce",
            "--topic",
            "crash",
            "--count",
            "100000000",
            "--size",
            "512",
            "--concurrency",
            "16",
            "--json",
        ])
        .arg("--ack-log")
        .arg(&ack_log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn producer");
    std::thread::sleep(Duration::from_millis(1500));
    let mut broker = broker;
    broker.child.kill().expect("SIGKILL the broker");
    broker.child.wait().expect("reap");
    let _ = producer.kill();
    let _ = producer.wait();

    let out = weir()
        .args(["store", "check", "--json"])
        .arg("--data-dir")
        .arg(&broker.data_dir)
        .arg("--ack-log")
        .arg(&ack_log)
        .output()
        .expect("check");
    let report = &stdout_lines(&out)[0];
    assert!(report["acked"].as_u64().expect("acked") > 0, "nothing was acknowledged before the kill: {report}");
    assert_eq!((report["missing"].as_u64(), report["corrupt"].as_u64()), (Some(0), Some(0)), "{report}");
}

#[test]
fn a_connected_client_recovers_at_once_when_a_killed_broker_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut broker = BrokerProcess::start(&data_dir, "async");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = weir_client::ClientConfig::default().with_broker(broker.addr.clone()).with_ca_file(broker.ca.clone());
    let client = runtime.block_on(weir_client::Client::connect(config)).expect("connect");
    runtime.block_on(client.status()).expect("status before the crash");

    broker.child.kill().expect("SIGKILL");
    broker.child.wait().expect("reap");
    let _restarted = BrokerProcess::start_on(&data_dir, "async", broker.addr.clone(), &[]);
    // The restarted broker signs stateless resets with the persisted key, so the stale
    // connection is reset on its next packet (instead of hanging until the idle timeout,
    // longer than the request timeout) and the client redials.
    let recovered = (0..2).any(|_| runtime.block_on(client.status()).is_ok());
    assert!(recovered, "the client did not reconnect to the restarted broker");
}

/// A filter plugin in WAT (ABI v1) that delivers a message whose encoding is longer
/// than 80 bytes (`plugins/ABI.md`: the input is the whole encoded message).
const LONG_MESSAGE_FILTER: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "weir_abi_version") (result i32) i32.const 1)
    (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
    (func (export "weir_dealloc") (param i32 i32))
    (func (export "weir_filter") (param $ptr i32) (param $len i32) (result i32)
        local.get $len
        i32.const 80
        i32.gt_u))"#;

#[test]
fn filtering_and_plugins_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(&dir.path().join("data"), "async");
    assert!(broker.cli(&["topic", "create", "orders", "--queues", "1"]).status.success());
    let sent = stdout_lines(&broker.cli(&[
        "bench",
        "produce",
        "--topic",
        "orders",
        "--count",
        "200",
        "--size",
        "16",
        "--props",
        "region=r%10,amount=%100",
        "--tags",
        "A,B",
        "--shadow-every",
        "5",
        "--json",
    ]));
    assert_eq!(sent[0]["sent"], 200);
    let shanghai = stdout_lines(&broker.cli(&[
        "consume",
        "--from",
        "earliest",
        "--topic",
        "orders",
        "--group",
        "r7",
        "--sql",
        "region = 'r7' AND amount > 50",
        "--idle-exit",
        "0.5",
        "--json",
    ]));
    // i % 10 == 7 and i % 100 > 50: 57, 67, 77, 87, 97, then 157 ... 197 (none is the 5th of a run).
    assert_eq!(shanghai.len(), 10);
    assert!(shanghai.iter().all(|m| m["props"]["region"] == "r7" && m["props"]["shadow"].is_null()));
    let stats = stdout_lines(&broker.cli(&["group", "stats", "--group", "r7", "--json"]));
    assert_eq!((stats[0]["examined"].as_u64(), stats[0]["delivered"].as_u64()), (Some(200), Some(10)));
    assert!(stats[0]["body_reads"].as_u64() < Some(30) && stats[0]["skipped_shadow"].as_u64() > Some(0));

    // A shadow group receives only the 40 shadow messages.
    assert!(broker.cli(&["group", "create", "stress", "--shadow"]).status.success());
    let shadow = stdout_lines(&broker.cli(&[
        "consume",
        "--from",
        "earliest",
        "--topic",
        "orders",
        "--group",
        "stress",
        "--idle-exit",
        "0.5",
        "--json",
    ]));
    assert_eq!(shadow.len(), 40);

    // A filter plugin after a tag expression.
    let wasm = dir.path().join("long.wasm");
    std::fs::write(&wasm, wat::parse_str(LONG_MESSAGE_FILTER).expect("valid WAT")).expect("write module");
    let uploaded = stdout_lines(&broker.cli(&[
        "plugin",
        "upload",
        "--name",
        "long",
        "--kind",
        "filter",
        "--json",
        wasm.to_str().expect("utf-8"),
    ]));
    assert_eq!((uploaded[0]["name"].as_str(), uploaded[0]["state"].as_str()), (Some("long"), Some("active")));
    let samples = dir.path().join("samples.jsonl");
    std::fs::write(
        &samples,
        "{\"body\":\"x\"}\n{\"body\":\"a much longer body than the other one, well past the threshold\"}\n",
    )
    .expect("write samples");
    let offline = stdout_lines(&broker.cli(&[
        "plugin",
        "test",
        wasm.to_str().expect("utf-8"),
        "--messages",
        samples.to_str().expect("utf-8"),
        "--json",
    ]));
    assert_eq!(offline[0]["decision"]["decision"], "skip");
    assert_eq!(offline[1]["decision"]["decision"], "deliver");
    let filtered = stdout_lines(&broker.cli(&[
        "consume",
        "--from",
        "earliest",
        "--topic",
        "orders",
        "--group",
        "p",
        "--tag",
        "A",
        "--filter",
        "long",
        "--idle-exit",
        "0.5",
        "--json",
    ]));
    let listed = stdout_lines(&broker.cli(&["plugin", "list", "--json"]));
    assert_eq!(
        (listed[0]["calls"].as_u64(), listed[0]["errors"].as_u64()),
        (Some(80), Some(0)),
        "called only for the 80 production messages tagged A"
    );
    let stats = stdout_lines(&broker.cli(&["group", "stats", "--group", "p", "--json"]));
    assert_eq!(stats[0]["plugin_rejected"].as_u64(), Some(80 - filtered.len() as u64));
    let in_use = broker.cli(&["plugin", "remove", "long"]);
    assert!(!in_use.status.success() && String::from_utf8_lossy(&in_use.stderr).contains("PLUGIN_IN_USE"));
    assert!(broker.cli(&["plugin", "remove", "long", "--force"]).status.success());
}

/// `weir topic list --json`: name → (read queues, write queues).
fn topics(broker: &BrokerProcess) -> BTreeMap<String, (u64, u64)> {
    stdout_lines(&broker.cli(&["topic", "list", "--json"]))
        .into_iter()
        .map(|t| {
            let name = t["name"].as_str().expect("name").to_owned();
            (name, (t["read_queues"].as_u64().expect("read"), t["write_queues"].as_u64().expect("write")))
        })
        .collect()
}

#[test]
fn bench_produce_spreads_messages_over_many_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(&dir.path().join("data"), "async");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let config = weir_client::ClientConfig::default().with_broker(broker.addr.clone()).with_ca_file(broker.ca.clone());
    let client = runtime.block_on(weir_client::Client::connect(config)).expect("connect");
    // Single sends (coalesced across topics), and batches of three whose messages go to
    // three different topics.
    for (prefix, batch) in [("single", "1"), ("batched", "3")] {
        // One of the five exists already, with other queue counts: the benchmark leaves it be.
        let existing = format!("{prefix}-3");
        assert!(broker.cli(&["topic", "create", &existing, "--queues", "3"]).status.success());
        let ack_log = dir.path().join(format!("{prefix}.jsonl"));
        let out = broker
            .command(&["bench", "produce", "--topic", prefix, "--topics", "5", "--queues", "2", "--count", "50"])
            .args(["--size", "16", "--concurrency", "4", "--batch", batch, "--json", "--ack-log"])
            .arg(&ack_log)
            .output()
            .expect("run bench");
        let summary = stdout_lines(&out).pop().expect("summary line");
        assert_eq!(
            (summary["sent"].as_u64(), summary["errors"].as_u64(), summary["topics"].as_u64()),
            (Some(50), Some(0), Some(5)),
            "{summary}"
        );

        let listed = topics(&broker);
        let names: Vec<String> = (0..5).map(|i| format!("{prefix}-{i}")).collect();
        for name in &names {
            let expected = if *name == existing { (3, 3) } else { (2, 2) };
            assert_eq!(listed.get(name), Some(&expected), "{name} in {listed:?}");
        }
        assert!(!listed.contains_key(prefix), "with --topics 5 the bare --topic is not used: {listed:?}");

        // Each topic holds exactly its ten messages (message i went to <prefix>-<i % 5>).
        for name in &names {
            let queues = listed[name].0 as u32;
            let stored: u64 = (0..queues)
                .map(|queue| {
                    let offsets = runtime.block_on(client.queue_offsets(name, queue)).expect("offsets");
                    offsets.end - offsets.start
                })
                .sum();
            assert_eq!(stored, 10, "{name}");
        }
        // Every ack-log line names the topic, queue and offset its message is stored at.
        let acks: Vec<serde_json::Value> = std::fs::read_to_string(&ack_log)
            .expect("ack log")
            .lines()
            .map(|line| serde_json::from_str(line).expect("ack line"))
            .collect();
        assert_eq!(acks.len(), 50);
        let mut per_topic: BTreeMap<String, HashSet<(u64, u64)>> = BTreeMap::new();
        for ack in &acks {
            let topic = ack["topic"].as_str().expect("topic");
            let msg_id = ack["msg_id"].as_str().expect("msg_id");
            let stored = runtime.block_on(client.message_by_id(msg_id)).expect("lookup");
            assert_eq!(
                (stored.topic.as_str(), u64::from(stored.queue_id), stored.queue_offset),
                (topic, ack["queue_id"].as_u64().expect("queue"), ack["queue_offset"].as_u64().expect("offset")),
                "{ack}"
            );
            per_topic.entry(topic.to_owned()).or_default().insert((stored.queue_id.into(), stored.queue_offset));
        }
        let counts: Vec<(String, usize)> = per_topic.into_iter().map(|(topic, acked)| (topic, acked.len())).collect();
        assert_eq!(counts, names.iter().map(|name| (name.clone(), 10)).collect::<Vec<_>>(), "--batch {batch}");
    }
    runtime.block_on(client.close());
}

#[test]
fn bench_produce_without_topics_sends_to_the_topic_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(&dir.path().join("data"), "async");
    let out =
        broker.cli(&["bench", "produce", "--topic", "one", "--count", "3", "--size", "1", "--json", "--queues", "4"]);
    let summary = stdout_lines(&out).pop().expect("summary line");
    assert_eq!((summary["sent"].as_u64(), summary["topics"].as_u64()), (Some(3), Some(1)), "{summary}");
    let listed = topics(&broker);
    assert_eq!(listed.keys().collect::<Vec<_>>(), ["one"], "{listed:?}");
    assert_eq!(listed["one"], (4, 4));
    // The text summary shows the topic count too.
    let out = broker.cli(&["bench", "produce", "--topic", "one", "--count", "1", "--size", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|line| line.split_whitespace().eq(["topics", "1"])), "{text}");
}

#[test]
fn bench_produce_refuses_zero_topics_or_queues_as_a_usage_error() {
    for flag in ["--topics", "--queues"] {
        let out = weir()
            .args(["bench", "produce", "--topic", "t", "--count", "1", "--size", "1", flag, "0"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{flag}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
