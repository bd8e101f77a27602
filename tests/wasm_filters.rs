//! The example plugins in `examples/wasm_filters/` build for wasm32 from a
//! fresh clone and decide as their documentation says, in the broker's host
//! with its default limits (`weir plugin test`'s runner).

use std::path::{Path, PathBuf};
use std::process::Command;

use weir_plugins::{Limits, OfflineDecision, run_offline};

/// Builds the examples once per test run (cargo makes later builds no-ops); returns their folder.
fn built() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm_filters");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/wasm_filters/Cargo.toml");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--release", "--examples", "--target", "wasm32-unknown-unknown", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building examples/wasm_filters failed");
    target.join("wasm32-unknown-unknown/release/examples")
}

/// Runs plugin `name` over JSON-lines `samples` with `params`; one decision per line.
fn decisions(name: &str, samples: &str, params: &str) -> Vec<OfflineDecision> {
    let wasm = std::fs::read(built().join(format!("{name}.wasm"))).expect("example built");
    let report = run_offline(&wasm, samples.as_bytes(), params, Limits::default()).expect("runs");
    report.results.iter().map(|r| r.decision.unwrap_or_else(|| panic!("{name} failed: {:?}", r.error))).collect()
}

#[test]
fn json_priority_filter_reads_the_body() {
    let samples = [
        r#"{"body": "{\"priority\": \"high\", \"amount\": 250}"}"#,
        r#"{"body": "{\"priority\": \"high\", \"amount\": 20}"}"#,
        r#"{"body": "{\"priority\": \"low\", \"amount\": 900}"}"#,
        r#"{"body": "not json"}"#,
    ]
    .join("\n");
    use OfflineDecision::{Deliver, Skip};
    assert_eq!(decisions("json_priority_filter", &samples, ""), [Deliver, Deliver, Skip, Skip]);
    assert_eq!(decisions("json_priority_filter", &samples, "min_amount=100"), [Deliver, Skip, Skip, Skip]);
}

#[test]
fn tenant_router_routes_tenants_and_stress_traffic() {
    let samples = [
        r#"{"props": {"tenant": "acme"}}"#,
        r#"{"props": {"tenant": "acme", "stress": "true"}}"#,
        r#"{"props": {"tenant": "initech"}}"#,
        r#"{"props": {}}"#,
    ]
    .join("\n");
    use OfflineDecision::{Deliver, Skip};
    assert_eq!(decisions("tenant_router", &samples, "tenants=acme|globex"), [Deliver, Skip, Skip, Skip]);
    assert_eq!(decisions("tenant_router", &samples, "tenants=acme,stress=only"), [Skip, Deliver, Skip, Skip]);
}

#[test]
fn payment_dlq_policy_caps_payment_retries() {
    let samples = [
        r#"{"props": {"kind": "payment"}, "reason": "validation: bad iban", "reconsume_times": 0}"#,
        r#"{"props": {"kind": "payment"}, "reason": "timeout", "reconsume_times": 1}"#,
        r#"{"props": {"kind": "payment"}, "reason": "timeout", "reconsume_times": 3}"#,
        r#"{"props": {"kind": "order"}, "reason": "timeout", "reconsume_times": 3}"#,
    ]
    .join("\n");
    let got = decisions("payment_dlq_policy", &samples, "");
    assert_eq!(got[0], OfflineDecision::DeadLetter, "validation errors go straight to the DLQ");
    assert!(matches!(got[1], OfflineDecision::Retry { .. }), "{got:?}");
    assert_eq!(got[2], OfflineDecision::DeadLetter, "a payment is not retried past 3 attempts: {got:?}");
    assert!(matches!(got[3], OfflineDecision::Retry { .. }), "{got:?}");
}
