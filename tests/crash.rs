//! Crash safety end to end: a child `weir bench store --flush sync` is killed
//! with SIGKILL at a random moment; `weir store check` must then find every
//! acknowledged message intact.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// Runs `weir store check --json` and returns its JSON report and exit status.
fn check(data_dir: &Path, ack_log: &Path) -> (serde_json::Value, bool) {
    let out = weir()
        .args(["store", "check", "--json"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--ack-log")
        .arg(ack_log)
        .output()
        .expect("run weir store check");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let last =
        stdout.lines().last().unwrap_or_else(|| panic!("no output; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    (serde_json::from_str(last).expect("JSON report"), out.status.success())
}

/// A pseudo-random kill delay per round, from a seed printed for replay.
fn kill_delays(seed: u64, rounds: usize) -> Vec<Duration> {
    let mut x = seed | 1;
    (0..rounds)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(200 + x % 1300)
        })
        .collect()
}

#[test]
fn sigkill_during_sync_appends_loses_no_acknowledged_message() {
    let seed = std::env::var("WEIR_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64
    });
    eprintln!("crash test seed: {seed} (set WEIR_CRASH_SEED to replay)");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    // Several rounds on the same store: each recovery is followed by more appends and another crash.
    for (round, delay) in kill_delays(seed, 4).into_iter().enumerate() {
        let ack_log = dir.path().join(format!("acks-{round}.jsonl"));
        let mut child = weir()
            .args(["bench", "store", "--json", "--flush", "sync", "--writers", "8", "--size", "300"])
            .args(["--topics", "3", "--queues", "4", "--count", "50000000", "--segment-size", "1048576"])
            .args(["--max-message-size", "65536"])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--ack-log")
            .arg(&ack_log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");

        let (report, ok) = check(&data_dir, &ack_log);
        eprintln!("round {round} (kill after {delay:?}): {report}");
        assert!(report["acked"].as_u64().expect("acked") > 0, "the writer acknowledged nothing before the kill");
        assert_eq!(report["missing"], 0, "acknowledged messages lost: {report}");
        assert_eq!(report["corrupt"], 0, "corruption after recovery: {report}");
        assert!(ok, "store check failed: {report}");
    }
}

#[test]
fn store_check_fails_when_an_acknowledged_message_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let ack_log = dir.path().join("acks.jsonl");
    let status = weir()
        .args(["bench", "store", "--json", "--flush", "async", "--count", "100", "--size", "64"])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--ack-log")
        .arg(&ack_log)
        .stdout(Stdio::null())
        .status()
        .expect("bench");
    assert!(status.success());
    let (report, ok) = check(&data_dir, &ack_log);
    assert!(ok, "{report}");
    assert_eq!(
        (report["acked"].as_u64(), report["missing"].as_u64(), report["records"].as_u64()),
        (Some(100), Some(0), Some(100))
    );
    // An ack for a message that was never stored must be reported.
    let mut text = std::fs::read_to_string(&ack_log).expect("read");
    let first = text.lines().next().expect("a line").to_owned();
    text.push_str(&first.replace("\"queue_offset\":0", "\"queue_offset\":999"));
    text.push('\n');
    std::fs::write(&ack_log, text).expect("write");
    let (report, ok) = check(&data_dir, &ack_log);
    assert!(!ok);
    assert_eq!(report["missing"], 1, "{report}");
}

#[test]
fn bench_store_json_summary_has_the_documented_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = weir()
        .args(["bench", "store", "--json", "--flush", "sync", "--writers", "4", "--count", "200", "--size", "128"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("bench");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    for field in ["appended", "seconds", "msgs_per_sec", "mb_per_sec", "p50_us", "p99_us"] {
        assert!(summary.get(field).is_some(), "missing {field}: {summary}");
    }
    assert_eq!(summary["appended"], 200);
    assert_eq!(summary["errors"], 0);
}

#[test]
fn usage_errors_exit_with_status_2() {
    let out = weir().args(["bench", "store", "--count", "x"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    for bench in [&["produce", "--size", "1"][..], &["consume", "--group", "g"][..]] {
        let out = weir()
            .arg("bench")
            .args(bench)
            .args(["--topic", "t", "--count", "1", "--threads", "0"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{bench:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"), "{bench:?}");
    }
    let out = weir().args(["store", "check", "--data-dir", "/nonexistent/weir"]).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Weir store"));
}
