//! `weir bench produce --topics K` end to end: a real broker process on loopback,
//! messages spread round-robin over K topics created by the benchmark, every one
//! stored in the topic its ack-log line names.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// A `weir broker` child process and how to reach it.
struct BrokerProcess {
    child: Child,
    addr: String,
    ca: PathBuf,
}

impl BrokerProcess {
    fn start(data_dir: &Path) -> Self {
        // A free UDP port: bind, read, release (a tiny race a test can live with).
        let port = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let addr = format!("127.0.0.1:{port}");
        let child = weir()
            .args(["broker", "--listen", &addr, "--flush", "async"])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn broker");
        let broker = Self { child, addr, ca: data_dir.join("tls/cert.pem") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !broker.cli(&["status"]).status.success() {
            assert!(Instant::now() < deadline, "broker did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = weir();
        cmd.args(args).env("WEIR_BROKER", &self.addr).env("WEIR_CA", &self.ca);
        cmd
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run weir")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "command failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
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
    let broker = BrokerProcess::start(&dir.path().join("data"));
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
    let broker = BrokerProcess::start(&dir.path().join("data"));
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
