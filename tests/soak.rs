//! The soak test's short version (`tools/soak.sh` runs the long one): `weir bench soak`
//! against a real broker on loopback for a few seconds, 32 connections sending random
//! valid and invalid requests, some closing abruptly or going silent. The broker must stay
//! up, answer `weir status` within 1 s throughout, and deliver every message it
//! acknowledged; and the soak must fail when it does not.

mod support;

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::BrokerProcess;

/// A seed per run, printed for replay.
fn seed() -> String {
    let seed = std::env::var("WEIR_SOAK_SEED").unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        (nanos as u64).to_string()
    });
    eprintln!("soak seed: {seed} (set WEIR_SOAK_SEED to replay)");
    seed
}

/// The soak's JSON report: the last line of its output.
fn report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!("no report; stderr: {}", String::from_utf8_lossy(&out.stderr));
    });
    serde_json::from_str(last).expect("a JSON report")
}

fn soak_args<'a>(seed: &'a str, pid: &'a str, connections: &'a str, seconds: &'a str) -> Vec<&'a str> {
    vec![
        "bench",
        "soak",
        "--json",
        "--connections",
        connections,
        "--duration",
        seconds,
        "--seed",
        seed,
        "--broker-pid",
        pid,
    ]
}

#[test]
fn a_short_soak_leaves_the_broker_up_answering_and_every_acknowledged_message_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(&dir.path().join("data"), "async");
    let (seed, pid) = (seed(), broker.child.id().to_string());
    let out = broker.cli(&soak_args(&seed, &pid, "32", "6"));
    let report = report(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the soak failed: {report}\n{stderr}");

    let count = |field: &str| report[field].as_u64().unwrap_or_else(|| panic!("no {field} in {report}"));
    assert!(count("acked") > 0, "{report}");
    assert_eq!(count("delivered"), count("acked"), "{report}");
    assert_eq!(count("missing"), 0, "{report}");
    assert_eq!(report["broker_alive"], true);
    assert_eq!(count("status_failures"), 0, "{report}");
    assert!(count("status_probes") > 0, "{report}");
    assert!(report["status_worst_ms"].as_f64().expect("worst") < 1000.0, "{report}");
    for problem in ["broken", "hung", "internal", "invalid_accepted", "unexpected_closes", "connect_failures"] {
        assert_eq!(count(problem), 0, "{problem}: {report}");
    }
    // The mix reached the broker: refusals of invalid requests, bad frames, new connections.
    assert!(count("refused") > 0 && count("answered") > count("refused"), "{report}");
    assert!(count("connections_opened") >= 32, "{report}");
    assert!(report["anon_end_mib"].as_f64().expect("memory sampled") > 0.0, "{report}");
    // And it still serves afterwards.
    assert!(broker.cli(&["status"]).status.success());
}

#[test]
fn a_soak_fails_when_the_broker_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(&dir.path().join("data"), "async");
    let (seed, pid) = (seed(), broker.child.id().to_string());
    let soak = broker
        .command(&soak_args(&seed, &pid, "8", "30"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the soak");
    std::thread::sleep(Duration::from_secs(2));
    broker.signal("KILL");
    let out = soak.wait_with_output().expect("the soak ends");
    let report = report(&out);
    assert!(!out.status.success(), "{report}");
    assert_eq!(report["broker_alive"], false, "{report}");
    assert!(report["seconds"].as_f64().expect("seconds") < 20.0, "the soak stops when the broker dies: {report}");
    let failures = report["failures"].to_string();
    assert!(failures.contains("the broker process died"), "{report}");
}
