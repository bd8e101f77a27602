//! `weir plugin new` as a library: the generated crates build for wasm32 as
//! generated, pass their own tests, and load in the host.

use std::path::Path;
use std::process::Command;

use weir_plugins::{
    Limits, NewPlugin, OfflineDecision, PluginHost, PluginKind, bundled_sdk_path, run_offline, scaffold,
};

fn cargo(crate_dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffolded");
    let status = Command::new(cargo)
        .args(args)
        .arg("--quiet")
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo {args:?} failed in {}", crate_dir.display());
}

fn generate_and_build(name: &str, kind: PluginKind) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sdk = bundled_sdk_path();
    let root = scaffold(NewPlugin { name, kind, dir: dir.path(), sdk_path: &sdk }).expect("generated");
    cargo(&root, &["build", "--target", "wasm32-unknown-unknown", "--release"]);
    let wasm = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scaffolded/wasm32-unknown-unknown/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(wasm).expect("built module")
}

#[test]
fn a_generated_filter_builds_tests_and_runs() {
    let wasm = generate_and_build("new-filter", PluginKind::Filter);
    let plugin = PluginHost::new(Limits::default()).expect("host").compile(&wasm, None).expect("accepted");
    assert_eq!(plugin.kind(), PluginKind::Filter);
    let manifest = plugin.manifest().expect("manifest");
    assert_eq!((manifest.name.as_deref(), manifest.version.as_deref()), (Some("new-filter"), Some("0.1.0")));
    assert_eq!(manifest.hints, ["region=SH"]);
    assert!(wasm.len() < 200 << 10, "a small module: {} bytes", wasm.len());
    let messages = "{\"props\": {\"region\": \"SH\"}}\n{\"props\": {\"region\": \"BJ\"}}\n";
    let report = run_offline(&wasm, messages.as_bytes(), "", Limits::default()).expect("runs");
    let decisions: Vec<_> = report.results.iter().map(|r| r.decision).collect();
    assert_eq!(decisions, [Some(OfflineDecision::Deliver), Some(OfflineDecision::Skip)]);
}

#[test]
fn a_generated_dlq_policy_builds_and_runs() {
    let wasm = generate_and_build("new_policy", PluginKind::DlqPolicy);
    let messages = "{\"reason\": \"validation: x\"}\n{\"reason\": \"timeout\"}\n";
    let report = run_offline(&wasm, messages.as_bytes(), "", Limits::default()).expect("runs");
    assert_eq!(report.kind, PluginKind::DlqPolicy);
    let decisions: Vec<_> = report.results.iter().map(|r| r.decision).collect();
    assert_eq!(decisions, [Some(OfflineDecision::DeadLetter), Some(OfflineDecision::Retry { after_ms: 5000 })]);
}

#[test]
fn a_generated_crate_passes_its_own_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sdk = bundled_sdk_path();
    let new = NewPlugin { name: "tested", kind: PluginKind::Filter, dir: dir.path(), sdk_path: &sdk };
    let root = scaffold(new).expect("generated");
    cargo(&root, &["test"]);
}
