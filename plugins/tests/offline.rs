//! `weir plugin test` as a library: sample messages through a real plugin.

mod common;

use common::{guest, wat_filter};
use weir_plugins::{GuestLogLevel, Limits, LoadError, OfflineDecision, OfflineError, PluginKind, run_offline};

#[test]
fn each_message_gets_a_decision_its_cost_and_its_logs() {
    let messages = r#"{"topic": "orders", "tag": "deliver", "keys": "k1", "props": {"region": "SH"}, "body": "hi"}
{"tag": "other", "keys": ["a", "b"]}

{"body": "panic"}
{"tag": "deliver", "queue_offset": 99, "reconsume_times": 2}
"#;
    let report = run_offline(&guest("probe_filter"), messages.as_bytes(), "", Limits::default()).expect("runs");
    assert_eq!(report.kind, PluginKind::Filter);
    assert_eq!(report.manifest.and_then(|m| m.name).as_deref(), Some("probe_filter"));
    let decisions: Vec<_> = report.results.iter().map(|r| (r.line, r.decision)).collect();
    assert_eq!(
        decisions,
        [
            (1, Some(OfflineDecision::Deliver)),
            (2, Some(OfflineDecision::Skip)),
            (4, None),
            (5, Some(OfflineDecision::Deliver))
        ]
    );
    let first = &report.results[0];
    assert!(first.fuel > 0 && first.nanos > 0 && first.error.is_none());
    assert_eq!(
        first.logs[0].text,
        "topic=orders queue=0 offset=0 tag=deliver keys=[\"k1\"] props=[(\"region\", \"SH\")] body=hi born=0 reconsume=0"
    );
    assert!(report.results[1].logs[0].text.contains("offset=1 tag=other keys=[\"a\", \"b\"]"));
    let panic = &report.results[2];
    assert!(panic.error.as_deref().is_some_and(|e| e.contains("asked to panic")), "{panic:?}");
    assert_eq!(panic.logs.last().map(|log| log.level), Some(GuestLogLevel::Error));
    assert!(report.results[3].logs[0].text.contains("offset=99 tag=deliver"));
    assert!(report.results[3].logs[0].text.ends_with("reconsume=2"));
}

#[test]
fn repeated_failures_do_not_disable_offline() {
    let looping = wat_filter("(loop $spin (br $spin)) i32.const 1", "");
    let messages = "{}\n".repeat(7);
    let limits = Limits { fuel_per_call: 100_000, ..Limits::default() };
    let report = run_offline(&looping, messages.as_bytes(), "", limits).expect("runs");
    assert_eq!(report.results.len(), 7);
    for result in &report.results {
        assert_eq!(result.error.as_deref(), Some("CPU budget exhausted (100000 fuel units)"));
        assert_eq!(result.fuel, 100_000);
    }
}

#[test]
fn dlq_policies_run_with_group_and_reason() {
    let messages = r#"{"reason": "validation: bad"}
{"props": {"kind": "payment"}, "reconsume_times": 3, "reason": "timeout"}
{"reconsume_times": 1, "group": "g"}
"#;
    let report = run_offline(&guest("payment_policy"), messages.as_bytes(), "", Limits::default()).expect("runs");
    let decisions: Vec<_> = report.results.iter().map(|r| r.decision).collect();
    assert_eq!(
        decisions,
        [
            Some(OfflineDecision::DeadLetter),
            Some(OfflineDecision::DeadLetter),
            Some(OfflineDecision::Retry { after_ms: 2000 })
        ]
    );
    let json = serde_json::to_string(&report.results[2].decision).expect("json");
    assert_eq!(json, r#"{"decision":"retry","after_ms":2000}"#);
}

#[test]
fn bad_input_is_reported_with_its_line() {
    let error = run_offline(&wat_filter("i32.const 1", ""), "{}\n{\"topik\": 1}\n".as_bytes(), "", Limits::default());
    let Err(OfflineError::BadLine { line, error }) = error else { panic!("{error:?}") };
    assert_eq!(line, 2);
    assert!(error.contains("unknown field `topik`"), "{error}");
    let refused = run_offline(b"junk", "{}".as_bytes(), "", Limits::default());
    assert!(matches!(refused, Err(OfflineError::Load(LoadError::Invalid { .. }))));
}
