//! Helpers shared by the integration tests and the bench: the SDK's example
//! plugins built for wasm32, hand-written modules, sample messages.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};
use std::process::Command;

use weir_filters::FilterInput;

/// Builds the SDK's example plugins for wasm32 (once per target dir; cargo
/// makes later builds no-ops) and returns the bytes of `name`.
pub fn guest(name: &str) -> Vec<u8> {
    let dir = guest_dir();
    std::fs::read(dir.join(format!("{name}.wasm"))).expect("example plugin built")
}

/// Where the example plugins are built.
pub fn guest_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--release", "--examples", "--target", "wasm32-unknown-unknown", "--manifest-path"])
        .arg(&sdk)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the SDK's example plugins failed");
    target.join("wasm32-unknown-unknown/release/examples")
}

/// A filter module in WAT with the ABI's exports around `body` (the body of
/// `weir_filter(ptr, len) -> i32`) and `extra` module fields. `weir_alloc`
/// always returns 1024.
pub fn wat_filter(body: &str, extra: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
            {extra}
            (memory (export "memory") 1)
            (func (export "weir_abi_version") (result i32) i32.const 1)
            (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "weir_dealloc") (param i32 i32))
            (func (export "weir_filter") (param $ptr i32) (param $len i32) (result i32) {body}))"#
    );
    wat::parse_str(text).expect("valid WAT")
}

/// Compiles WAT text.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

/// A message with the given properties and body.
pub fn message<'a>(properties: &'a [(&'a str, &'a str)], body: &'a [u8]) -> FilterInput<'a> {
    FilterInput {
        topic: "orders",
        queue_id: 1,
        queue_offset: 7,
        tag: "",
        keys: &[],
        properties,
        body,
        born_timestamp_ms: 1_700_000_000_000,
        reconsume_times: 0,
    }
}
