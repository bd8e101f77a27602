//! Real plugins built with the SDK (`plugins/sdk/examples`) run by the host:
//! every input field arrives, panics and memory hogs fail only their call,
//! parameters reach `weir_init`, manifests and hints are read, dlq-policy
//! decisions map to the broker's.

mod common;

use std::time::Duration;

use common::{guest, message};
use weir_filters::{FilterInput, MessageFilter};
use weir_plugins::{
    CallError, DlqPolicy, FailedDelivery, GuestLogLevel, HandleState, Limits, PluginHost, PluginKind, RetryDecision,
    WasmDlqPolicy, WasmFilter,
};
use weir_sql92::Term;

fn host() -> PluginHost {
    PluginHost::new(Limits::default()).expect("host")
}

fn filter(name: &str, params: &str) -> WasmFilter {
    let plugin = host().compile(&guest(name), None).expect("accepted");
    WasmFilter::new(name, plugin, params).expect("a filter")
}

#[test]
fn the_guest_decodes_every_field() {
    let probe = filter("probe_filter", "");
    let keys = ["k1", "k2"];
    let properties = [("region", "SH"), ("ünï", "cødé")];
    let input = FilterInput {
        topic: "orders",
        queue_id: 3,
        queue_offset: 1 << 40,
        tag: "deliver",
        keys: &keys,
        properties: &properties,
        body: b"hello",
        born_timestamp_ms: -12,
        reconsume_times: 4,
    };
    let trace = probe.decide_traced(&input);
    assert_eq!(trace.result, Ok(true));
    assert_eq!(trace.logs.len(), 1);
    assert_eq!(trace.logs[0].level, GuestLogLevel::Info);
    assert_eq!(
        trace.logs[0].text,
        "topic=orders queue=3 offset=1099511627776 tag=deliver keys=[\"k1\", \"k2\"] \
         props=[(\"region\", \"SH\"), (\"ünï\", \"cødé\")] body=hello born=-12 reconsume=4"
    );
    assert!(trace.cost.fuel > 0);
    assert_eq!(probe.decide(&FilterInput { tag: "other", ..input }), Ok(false));
}

#[test]
fn large_messages_get_a_larger_buffer() {
    let region = filter("region_filter", "");
    let body = vec![b'a'; 3 << 20];
    for len in [10, body.len(), 100, body.len() - 1] {
        assert_eq!(region.decide_traced(&message(&[("region", "SH")], &body[..len])).result, Ok(true));
    }
}

#[test]
fn a_panic_fails_its_call_with_the_panic_message() {
    let probe = filter("probe_filter", "");
    let error = probe.decide_traced(&message(&[], b"panic")).result.expect_err("panics");
    let CallError::Trap { message: text } = &error else { panic!("{error:?}") };
    assert!(text.contains("unreachable"), "{text}");
    assert!(text.contains("asked to panic"), "{text}");
    assert_eq!(probe.decide_traced(&message(&[], b"fine")).result, Ok(false), "the next call works");
}

#[test]
fn a_guest_allocating_past_the_cap_hits_the_memory_limit() {
    let probe = filter("probe_filter", "");
    let error = probe.decide_traced(&message(&[("grow_mib", "32")], b"")).result;
    assert_eq!(error, Err(CallError::MemoryLimit { limit: 16 << 20 }));
    assert_eq!(probe.decide_traced(&message(&[("grow_mib", "4")], b"")).result, Ok(false));
}

#[test]
fn parameters_reach_the_plugin() {
    let sh = filter("region_filter", "");
    let bj = filter("region_filter", "region=BJ");
    let from = |region| [("region", region)];
    assert_eq!(sh.decide(&message(&from("SH"), b"")), Ok(true));
    assert_eq!(sh.decide(&message(&from("BJ"), b"")), Ok(false));
    assert_eq!(bj.decide(&message(&from("BJ"), b"")), Ok(true));
    assert_eq!(bj.decide(&message(&[], b"")), Ok(false));
    let rejected = filter("region_filter", "region=");
    let error = rejected.decide_traced(&message(&from("SH"), b"")).result;
    assert_eq!(error, Err(CallError::ParamsRejected { params: "region=".into(), code: 1 }));
}

#[test]
fn manifests_and_hints_come_from_the_sdk() {
    let region = filter("region_filter", "");
    let manifest = region.handle().plugin().manifest().cloned().expect("manifest");
    assert_eq!(manifest.name.as_deref(), Some("region_filter"));
    assert_eq!(manifest.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(manifest.kind, Some(PluginKind::Filter));
    assert_eq!(manifest.abi, Some(1));
    assert_eq!(manifest.params, ["region: the region to deliver (default SH)"]);
    assert_eq!(region.index_hints(), [Term::Has("region".into())]);
    let probe = filter("probe_filter", "");
    assert_eq!(probe.index_hints(), []);
    assert_eq!(probe.handle().plugin().manifest().and_then(|m| m.version.clone()).as_deref(), Some("1.2.3"));
}

fn failed<'a>(properties: &'a [(&'a str, &'a str)], reason: &'a str, reconsume_times: u32) -> FailedDelivery<'a> {
    FailedDelivery { group: "pay", reason, message: FilterInput { reconsume_times, ..message(properties, b"{}") } }
}

#[test]
fn a_dlq_policy_decides_failed_deliveries() {
    let plugin = host().compile(&guest("payment_policy"), None).expect("accepted");
    assert_eq!(plugin.kind(), PluginKind::DlqPolicy);
    assert!(WasmFilter::new("payment_policy", plugin.clone(), "").is_err(), "not a filter");
    let policy = WasmDlqPolicy::new("payment_policy", plugin, "").expect("a policy");
    let payment = [("kind", "payment")];
    assert_eq!(policy.decide(&failed(&[], "validation: no amount", 0)), RetryDecision::DeadLetter);
    assert_eq!(policy.decide(&failed(&[], "obsolete", 0)), RetryDecision::Discard);
    assert_eq!(policy.decide(&failed(&payment, "timeout", 2)), RetryDecision::RetryAfter(Duration::from_secs(3)));
    assert_eq!(policy.decide(&failed(&payment, "timeout", 3)), RetryDecision::DeadLetter);
    assert_eq!(policy.decide(&failed(&[], "timeout", 9)), RetryDecision::RetryAfter(Duration::from_secs(10)));
    assert_eq!(policy.handle().stats().calls, 5);
}

#[test]
fn a_failing_dlq_policy_falls_back_to_the_default_schedule() {
    let text = r#"(module (memory (export "memory") 1)
        (func (export "weir_abi_version") (result i32) i32.const 1)
        (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
        (func (export "weir_dealloc") (param i32 i32))
        (func (export "weir_dlq_policy") (param i32 i32) (result i64) i64.const -7))"#;
    let plugin = host().compile(&common::wat(text), None).expect("accepted");
    let policy = WasmDlqPolicy::new("broken", plugin, "").expect("a policy");
    let trace = policy.decide_traced(&failed(&[], "", 0));
    assert_eq!(trace.result, Err(CallError::BadResult { function: "weir_dlq_policy", value: -7 }));
    // RocketMQ's first retry delay (level 3).
    assert_eq!(policy.decide(&failed(&[], "", 0)), RetryDecision::RetryAfter(Duration::from_secs(10)));
}

#[test]
fn repeated_panics_disable_and_enable_restores() {
    let probe = filter("probe_filter", "");
    for _ in 0..5 {
        assert!(probe.decide_traced(&message(&[], b"panic")).result.is_err());
    }
    assert!(matches!(probe.handle().state(), HandleState::Disabled { .. }));
    assert!(matches!(probe.decide_traced(&message(&[], b"fine")).result, Err(CallError::Disabled { .. })));
    probe.handle().enable();
    assert_eq!(probe.decide_traced(&message(&[], b"fine")).result, Ok(false));
}
