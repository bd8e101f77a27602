//! The filtering examples are user stories: they must run from a fresh clone
//! and reach their checks. Each one verifies what it prints (a wrong delivery
//! makes it exit non-zero); here we run the binaries cargo built beside the tests.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/<name>`, built by `cargo test`/`cargo nextest` with the tests.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().expect("test binary path");
    let profile_dir = deps.parent().and_then(|d| d.parent()).expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(path.exists(), "{} is missing: cargo builds examples with the tests", path.display());
    path
}

fn run(name: &str) -> String {
    let output = Command::new(example(name)).output().expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{name} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn region_filter_delivers_each_region_to_its_group_reading_few_bodies() {
    let out = run("region_filter");
    assert!(out.contains("every group received exactly its region's orders"), "{out}");
    // Each group reads only its own region's bodies: 10 % of the topic.
    assert_eq!(out.lines().filter(|l| l.starts_with("billing-") && l.contains("10.00%")).count(), 10, "{out}");
}

#[test]
fn stress_test_isolation_keeps_shadow_traffic_apart() {
    let out = run("stress_test_isolation");
    assert!(out.contains("production and stress-test traffic stayed apart"), "{out}");
    assert!(out.contains("skipped_shadow   2500"), "{out}");
}
