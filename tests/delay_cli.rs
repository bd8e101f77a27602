//! The delayed-delivery commands of the `weir` binary against a broker process:
//! `weir send --delay | --deliver-at | --delay-level`, `weir message cancel --id`, and the
//! timers in `weir status`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod support;

use support::{BrokerProcess, stdout_lines};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

#[test]
fn send_delayed_cancel_and_see_the_timers_in_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "timer_precision_ms = 100\ndelay_levels = \"1s 2s\"\nmax_delay_ms = 600000\n")
        .expect("config");
    let broker =
        BrokerProcess::start_with(&dir.path().join("data"), "sync", &["--config", config.to_str().expect("utf-8")]);
    assert!(broker.cli(&["topic", "create", "orders", "--queues", "1"]).status.success());

    let sent_at = now_ms();
    let delayed = stdout_lines(&broker.cli(&["send", "--topic", "orders", "--delay", "1s", "--json", "later"]));
    let deliver_at = delayed[0]["deliver_at_ms"].as_u64().expect("deliver_at_ms");
    assert!((sent_at + 1000..sent_at + 2000).contains(&deliver_at), "{}", delayed[0]);
    let levelled = stdout_lines(&broker.cli(&["send", "--topic", "orders", "--delay-level", "2", "--json", "level"]));
    assert_eq!(levelled[0]["delay_level"], 2);
    let cancelled = stdout_lines(&broker.cli(&["send", "--topic", "orders", "--delay", "5m", "--json", "never"]));
    let past = stdout_lines(&broker.cli(&[
        "send",
        "--topic",
        "orders",
        "--deliver-at",
        "2020-01-01T00:00:00Z",
        "--json",
        "past",
    ]));
    let status = stdout_lines(&broker.cli(&["status", "--json"]));
    assert_eq!(status[0]["timers"]["pending"], 3, "{}", status[0]);

    let id = cancelled[0]["msg_id"].as_str().expect("msg_id");
    let out = stdout_lines(&broker.cli(&["message", "cancel", "--id", id, "--json"]));
    assert_eq!(out[0]["topic"], "orders");
    assert!(broker.fails(&["message", "cancel", "--id", id]).contains("already cancelled"));
    let past_id = past[0]["msg_id"].as_str().expect("msg_id");
    assert!(broker.fails(&["message", "cancel", "--id", past_id]).contains("not a pending delayed message"));
    assert!(broker.fails(&["send", "--topic", "orders", "--delay", "11m", "x"]).contains("max_delay_ms"));
    assert!(!broker.cli(&["send", "--topic", "orders", "--delay", "soon", "x"]).status.success());
    let both = broker.cli(&["send", "--topic", "orders", "--delay", "1s", "--deliver-at", "0", "x"]);
    assert_eq!(both.status.code(), Some(2), "--delay and --deliver-at exclude each other");

    // The immediate one at once, then the delayed ones at their time; never the cancelled.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut bodies = Vec::new();
    while bodies.len() < 3 && Instant::now() < deadline {
        let consumed = stdout_lines(&broker.cli(&[
            "consume",
            "--topic",
            "orders",
            "--group",
            "g",
            "--from",
            "earliest",
            "--idle-exit",
            "0.5",
            "--json",
        ]));
        bodies.extend(consumed.iter().map(|m| m["body"].as_str().expect("body").to_owned()));
    }
    assert_eq!(bodies, ["past", "later", "level"]);
    assert!(now_ms() >= deliver_at);
    let status = stdout_lines(&broker.cli(&["status", "--json"]));
    let timers = &status[0]["timers"];
    // The cancelled one counts as pending until its due tick is read (in 5 minutes).
    assert_eq!((timers["pending"].as_u64(), timers["delivered"].as_u64()), (Some(1), Some(2)), "{timers}");
    assert_eq!(timers["cancelled"], 1);
}
