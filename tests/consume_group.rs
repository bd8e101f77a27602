//! `weir consume --group` processes as members of one group against a `weir broker`
//! process with short heartbeat settings: they split the queues, together receive each
//! message once when nothing fails, and after one is killed with SIGKILL the other
//! takes its queues and receives everything (duplicates counted and reported).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::BrokerProcess;
use weir_client::{Client, ClientConfig, Message, Producer};

/// message body → the members that printed it.
type Printed = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// A `weir consume` process whose JSON lines are collected into `printed`.
fn consume(broker: &BrokerProcess, member: &str, printed: &Printed) -> Child {
    let mut child = broker
        .command(&[
            "consume",
            "--topic",
            "orders",
            "--group",
            "g",
            "--from",
            "earliest",
            "--member-id",
            member,
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn weir consume");
    let stdout = child.stdout.take().expect("stdout");
    let printed = printed.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let m: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
            let (body, member) = (m["body"].as_str().expect("body"), m["member_id"].as_str().expect("member_id"));
            printed.lock().unwrap().entry(body.to_owned()).or_default().push(member.to_owned());
        }
    });
    child
}

fn send(broker: &BrokerProcess, range: std::ops::Range<usize>) {
    let config = ClientConfig::default().with_broker(broker.addr.clone()).with_ca_file(broker.ca.clone());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let producer = Producer::new(Client::connect(config).await.expect("connect"));
        let batch: Vec<Message> = range.map(|i| Message::new("orders", format!("m{i}"))).collect();
        for chunk in batch.chunks(100) {
            producer.send_batch(chunk.to_vec()).await.expect("send");
        }
    });
}

fn wait_for(printed: &Printed, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while printed.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "{} of {count} messages printed", printed.lock().unwrap().len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_consume_processes_split_the_queues_and_survive_a_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "heartbeat_interval_ms = 200\nmember_timeout_ms = 1000\n").expect("write config");
    let broker =
        BrokerProcess::start_with(&dir.path().join("data"), "async", &["--config", config.to_str().expect("utf-8")]);
    assert!(broker.cli(&["topic", "create", "orders", "--queues", "8"]).status.success());
    let printed = Printed::default();
    let mut a = consume(&broker, "a", &printed);
    let mut b = consume(&broker, "b", &printed);
    std::thread::sleep(Duration::from_millis(500)); // both joined and settled
    send(&broker, 0..2000);
    wait_for(&printed, 2000);
    std::thread::sleep(Duration::from_millis(300));
    {
        let printed = printed.lock().unwrap();
        assert!(printed.values().all(|by| by.len() == 1), "nothing failed: each message printed once");
        let by_a = printed.values().filter(|by| by[0] == "a").count();
        assert!(by_a > 0 && by_a < 2000, "the members split the queues: a printed {by_a} of 2000");
    }

    // SIGKILL one member; the other takes its queues once the broker drops it (1 s).
    a.kill().expect("SIGKILL");
    a.wait().expect("reap");
    send(&broker, 2000..4000);
    wait_for(&printed, 4000);
    let printed = printed.lock().unwrap();
    let after: Vec<&Vec<String>> = (2000..4000).map(|i| &printed[&format!("m{i}")]).collect();
    assert!(after.iter().all(|by| by.iter().all(|m| m == "b")), "only b is left");
    let duplicates = printed.values().filter(|by| by.len() > 1).count();
    println!("4000 messages, {duplicates} printed more than once after the SIGKILL");
    b.kill().expect("stop");
    b.wait().expect("reap");
}
