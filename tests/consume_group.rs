//! `weir consume --group` processes as members of one group against a `weir broker`
//! process with short heartbeat settings: they split the queues, together receive each
//! message once when nothing fails, and after one is killed with SIGKILL the other
//! takes its queues and receives everything (duplicates counted and reported).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::BrokerProcess;
use weir_client::{Message, Producer};

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
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = broker.client(&runtime);
    runtime.block_on(async {
        let producer = Producer::new(client);
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

/// A broker with 200 ms heartbeats and a 1 s member timeout, and its config file.
fn start_broker(dir: &Path) -> (BrokerProcess, String) {
    let config = dir.join("broker.toml");
    std::fs::write(&config, "heartbeat_interval_ms = 200\nmember_timeout_ms = 1000\n").expect("write config");
    let config = config.to_str().expect("utf-8").to_owned();
    (BrokerProcess::start_with(&dir.join("data"), "async", &["--config", &config]), config)
}

/// The group's lag lines (without the totals line).
fn lag(broker: &BrokerProcess) -> Vec<serde_json::Value> {
    let mut lines = broker.json(&["group", "lag", "--group", "g", "--json"]);
    lines.retain(|line| line["total"].is_null());
    lines
}

#[test]
fn two_consume_processes_split_the_queues_and_survive_a_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, _) = start_broker(dir.path());
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
    let described = broker.json(&["group", "describe", "--group", "g", "--json"]);
    let members = described[0]["members"].as_array().expect("members");
    let mut queues: Vec<u64> = members
        .iter()
        .flat_map(|m| m["queues"].as_array().expect("queues").iter())
        .map(|q| q["queue_id"].as_u64().expect("id"))
        .collect();
    queues.sort_unstable();
    assert_eq!((members.len(), queues), (2, (0..8).collect::<Vec<u64>>()), "{described:?}");
    assert!(lag(&broker).iter().all(|q| q["owner"].is_string()), "every queue has an owner");

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

/// Committed offsets survive a broker SIGKILL (the member rejoins the restarted broker
/// and resumes from them), and a reset to a time replays from the first message stored
/// at or after it while the member stays up.
#[test]
fn offsets_survive_a_broker_sigkill_and_a_reset_replays_while_the_member_stays_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, config) = start_broker(dir.path());
    assert!(broker.cli(&["topic", "create", "orders", "--queues", "4"]).status.success());
    send(&broker, 0..200);
    std::thread::sleep(Duration::from_millis(50));
    let between = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    std::thread::sleep(Duration::from_millis(50));
    send(&broker, 200..400);
    let printed = Printed::default();
    let mut member = consume(&broker, "a", &printed);
    wait_for(&printed, 400);
    let committed_everything = |broker: &BrokerProcess| {
        lag(broker).iter().all(|q| q["committed_offset"] == q["broker_offset"] && q["lag"] == 0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !committed_everything(&broker) {
        assert!(Instant::now() < deadline, "offsets committed: {:?}", lag(&broker));
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGKILL the broker; the member keeps running and rejoins the restarted one.
    broker.signal("KILL");
    let addr = broker.addr.clone();
    drop(broker);
    let broker = BrokerProcess::start_on(&dir.path().join("data"), "async", addr, &["--config", &config]);
    assert!(committed_everything(&broker), "committed offsets survived: {:?}", lag(&broker));
    send(&broker, 400..450);
    wait_for(&printed, 450);
    assert!(printed.lock().unwrap().values().all(|by| by.len() == 1), "resumed where it committed");

    // Reset to the time between the two first batches: m200.. come again, m0..m199 do not.
    let reset = broker.json(&[
        "group",
        "reset-offset",
        "--group",
        "g",
        "--topic",
        "orders",
        "--to",
        &between.to_string(),
        "--json",
    ]);
    assert_eq!(reset.len(), 4);
    let replayed = |i: usize| printed.lock().unwrap()[&format!("m{i}")].len() == 2;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(200..450).all(replayed) {
        assert!(Instant::now() < deadline, "the member replays from the reset offsets");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!((0..200).all(|i| printed.lock().unwrap()[&format!("m{i}")].len() == 1), "nothing before the time");
    member.kill().expect("stop");
    member.wait().expect("reap");
}
