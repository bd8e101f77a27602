//! Edge inputs to the plugin API (zero and maximum limits, empty and huge
//! inputs, names and stored records that cannot be right) are answered with a
//! value or a typed error, never a panic.

mod common;

use common::{message, wat, wat_filter};
use weir_filters::FilterInput;
use weir_plugins::{
    CallError, DefaultRetryPolicy, DlqPolicy, FailedDelivery, HandleState, Limits, LoadError, Manifest, NewPlugin,
    OfflineDecision, OfflineError, PluginHost, PluginKind, Registry, RegistryError, RetryDecision, ScaffoldError,
    Upload, WasmDlqPolicy, WasmFilter, run_offline, scaffold,
};

fn host(limits: Limits) -> PluginHost {
    PluginHost::new(limits).expect("host")
}

fn accept() -> Vec<u8> {
    wat_filter("i32.const 1", "")
}

fn filter(limits: Limits, wasm: &[u8]) -> WasmFilter {
    WasmFilter::new("edge", host(limits).compile(wasm, None).expect("accepted"), "").expect("a filter")
}

fn call(filter: &WasmFilter, input: &FilterInput<'_>) -> Result<bool, CallError> {
    filter.decide_traced(input).result
}

/// A dlq-policy answering `result` to every failed delivery.
fn policy(result: i64) -> Vec<u8> {
    wat(&format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "weir_abi_version") (result i32) i32.const 1)
            (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "weir_dealloc") (param i32 i32))
            (func (export "weir_dlq_policy") (param i32 i32) (result i64) i64.const {result}))"#
    ))
}

#[test]
fn edge_inputs_are_answered_not_panicked_on() {
    let defaults = Limits::default();

    // Zero limits refuse what cannot run under them, with the reason.
    let no_fuel = host(Limits { fuel_per_call: 0, ..defaults }).compile(&accept(), None);
    assert!(
        matches!(&no_fuel, Err(LoadError::Instantiation { reason }) if reason.contains("CPU budget")),
        "{no_fuel:?}"
    );
    let no_memory = host(Limits { max_memory_bytes: 0, ..defaults }).compile(&accept(), None);
    assert!(matches!(no_memory, Err(LoadError::Instantiation { .. })), "{no_memory:?}");
    let tabled = wat_filter("i32.const 1", "(table 1 funcref)");
    let no_table = host(Limits { max_table_elements: 0, ..defaults }).compile(&tabled, None);
    assert!(matches!(no_table, Err(LoadError::Instantiation { .. })), "{no_table:?}");
    assert_eq!(
        host(Limits { max_module_bytes: 0, ..defaults }).compile(&accept(), None).expect_err("too large"),
        LoadError::TooLarge { size: accept().len(), limit: 0 }
    );
    let no_stack = PluginHost::new(Limits { max_wasm_stack_bytes: 0, ..defaults }).expect_err("refused");
    assert!(no_stack.to_string().contains("cannot be zero"), "{no_stack}");

    // Maximum limits run calls as usual.
    let unlimited = Limits {
        fuel_per_call: u64::MAX,
        max_memory_bytes: usize::MAX,
        max_table_elements: usize::MAX,
        max_module_bytes: usize::MAX,
        ..defaults
    };
    let trace = filter(unlimited, &accept()).decide_traced(&message(&[], b""));
    assert_eq!(trace.result, Ok(true));
    assert!(trace.cost.fuel < 1_000, "fuel used is counted from the budget: {}", trace.cost.fuel);

    // No idle instances kept: every call starts one.
    let fresh = filter(Limits { max_idle_instances: 0, ..defaults }, &accept());
    for _ in 0..3 {
        assert_eq!(call(&fresh, &message(&[], b"")), Ok(true));
    }

    // Zero tolerated failures disables at the first; u32::MAX never does.
    let trapping = wat_filter("unreachable", "");
    let strict = filter(Limits { max_consecutive_failures: 0, ..defaults }, &trapping);
    assert!(matches!(call(&strict, &message(&[], b"")), Err(CallError::Trap { .. })));
    assert!(matches!(strict.handle().state(), HandleState::Disabled { .. }));
    let patient = filter(Limits { max_consecutive_failures: u32::MAX, ..defaults }, &trapping);
    for _ in 0..10 {
        assert!(matches!(call(&patient, &message(&[], b"")), Err(CallError::Trap { .. })));
    }
    assert_eq!(patient.handle().state(), HandleState::Active);

    // Empty and huge messages: encoded and called, or refused as not fitting the
    // guest's buffer (this one lends 1024 bytes into a 64 KiB memory).
    let accepting = filter(defaults, &accept());
    let empty = FilterInput {
        topic: "",
        queue_id: u32::MAX,
        queue_offset: u64::MAX,
        tag: "",
        keys: &[],
        properties: &[],
        body: b"",
        born_timestamp_ms: i64::MIN,
        reconsume_times: u32::MAX,
    };
    assert_eq!(call(&accepting, &empty), Ok(true));
    let body = vec![0u8; 1 << 20];
    assert!(matches!(call(&accepting, &message(&[], &body)), Err(CallError::BadAlloc { .. })));
    assert_eq!(call(&accepting, &message(&[], b"small again")), Ok(true), "a refused input fails only its call");
    let keys: Vec<&str> = vec![""; 100_000];
    assert!(matches!(call(&accepting, &FilterInput { keys: &keys, ..empty }), Err(CallError::BadAlloc { .. })));

    // Dlq-policy results at the edges of the ABI; the default schedule at the edges of its counts.
    for (result, want) in [
        (i64::MAX, None),
        (i64::MIN, None),
        (-3, None),
        (0, Some(RetryDecision::RetryAfter(std::time::Duration::ZERO))),
    ] {
        let plugin = host(defaults).compile(&policy(result), None).expect("accepted");
        let policy = WasmDlqPolicy::new("edge", plugin, "").expect("a policy");
        let failed = FailedDelivery { group: "", reason: "", message: empty };
        assert_eq!(policy.decide_traced(&failed).result.ok(), want, "{result}");
        // A call that fails falls back to the default schedule, which dead-letters here.
        let fallback = policy.decide(&failed);
        assert_eq!(fallback, want.unwrap_or(RetryDecision::DeadLetter), "{result}");
    }
    let failed = FailedDelivery { group: "g", reason: "", message: empty };
    assert_eq!(DefaultRetryPolicy { max_reconsume_times: 0 }.decide(&failed), RetryDecision::DeadLetter);
    assert!(matches!(
        DefaultRetryPolicy { max_reconsume_times: u32::MAX }
            .decide(&FailedDelivery { message: FilterInput { reconsume_times: u32::MAX - 1, ..empty }, ..failed }),
        RetryDecision::RetryAfter(_)
    ));

    // Manifests: empty, huge, and a wrong ABI version reported on its own line.
    assert_eq!(Manifest::parse(b""), Ok(Manifest::default()));
    let hints = "hint=h\n".repeat(100_000);
    assert_eq!(Manifest::parse(hints.as_bytes()).expect("parses").hint_terms().len(), 100_000);
    let wrong = Manifest::parse(b"abiding=yes\n# abi=0\nabi=7").expect_err("wrong abi").to_string();
    assert!(wrong.starts_with("manifest line 3:"), "{wrong}");

    // Offline runs: no messages, a line that is not UTF-8, extreme counters.
    let report = run_offline(&accept(), &b""[..], "", defaults).expect("runs");
    assert!(report.results.is_empty());
    let not_utf8 = run_offline(&accept(), &b"{\"body\": \"\xff\"}\n"[..], "", defaults);
    assert!(matches!(not_utf8, Err(OfflineError::Io(_))), "{not_utf8:?}");
    let extreme = format!(
        r#"{{"queue_id": {}, "queue_offset": {}, "born_timestamp_ms": {}, "reconsume_times": {}}}"#,
        u32::MAX,
        u64::MAX,
        i64::MIN,
        u32::MAX
    );
    let report = run_offline(&accept(), extreme.as_bytes(), "", defaults).expect("runs");
    assert_eq!(report.results[0].decision, Some(OfflineDecision::Deliver));
    let overflowing = run_offline(&accept(), &br#"{"queue_id": 4294967296}"#[..], "", defaults);
    assert!(matches!(overflowing, Err(OfflineError::BadLine { line: 1, .. })), "{overflowing:?}");

    // Scaffolding refuses names it cannot use as a crate and a folder.
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["", "../up", &"x".repeat(65)] {
        let new = NewPlugin { name, kind: PluginKind::Filter, dir: dir.path(), sdk_path: dir.path() };
        assert!(matches!(scaffold(new), Err(ScaffoldError::InvalidName { .. })), "{name:?}");
    }
}

fn open(dir: &std::path::Path) -> Registry {
    Registry::open(dir, host(Limits::default())).expect("opens")
}

fn upload<'a>(wasm: &'a [u8], name: &'a str) -> Upload<'a> {
    Upload { wasm, name: Some(name), kind: None, version: None }
}

#[test]
fn registry_edges_are_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    let module = accept();
    {
        let registry = open(dir.path());
        for name in ["", "../x", "a/b"] {
            assert!(matches!(registry.info(name), Err(RegistryError::NotFound { .. })), "{name:?}");
            assert!(matches!(registry.remove(name), Err(RegistryError::NotFound { .. })), "{name:?}");
            assert!(matches!(registry.filter(name, ""), Err(RegistryError::NotFound { .. })), "{name:?}");
            assert!(matches!(registry.upload(upload(&module, name)), Err(RegistryError::InvalidName { .. })));
        }
        assert!(matches!(registry.upload(upload(b"", "empty")), Err(RegistryError::Load(LoadError::Invalid { .. }))));
        registry.upload(upload(&module, "last")).expect("uploaded");
        registry.upload(upload(&module, "escape")).expect("uploaded");
        registry.upload(upload(&module, "huge")).expect("uploaded");
    }
    // Stored records that cannot be right: the last revision, a module outside the
    // folder, a module over the size limit.
    let edit = |name: &str, from: &str, to: &str| {
        let path = plugins.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).expect("record");
        assert!(text.contains(from), "{text}");
        std::fs::write(&path, text.replace(from, to)).expect("edit");
    };
    edit("last", "\"revision\": 1", &format!("\"revision\": {}", u64::MAX));
    std::fs::rename(plugins.join("last-1.wasm"), plugins.join(format!("last-{}.wasm", u64::MAX))).expect("rename");
    edit("last", "last-1.wasm", &format!("last-{}.wasm", u64::MAX));
    let outside = dir.path().join("outside.wasm");
    std::fs::write(&outside, &module).expect("outside");
    edit("escape", "escape-1.wasm", "../outside.wasm");
    let limit = Limits::default().max_module_bytes;
    std::fs::write(plugins.join("huge-1.wasm"), vec![0u8; limit + 1]).expect("huge");

    let registry = open(dir.path());
    let error = registry.upload(upload(&module, "last")).expect_err("no revision left");
    assert!(matches!(error, RegistryError::RevisionExhausted { revision: u64::MAX, .. }), "{error}");
    assert!(registry.filter("last", "").is_ok(), "the stored revision still serves");
    let error = registry.filter("escape", "").expect_err("broken");
    assert!(error.to_string().contains("module file \"../outside.wasm\""), "{error}");
    registry.remove("escape").expect("removed");
    assert!(outside.exists(), "a record cannot make the registry delete a file outside its folder");
    let error = registry.filter("huge", "").expect_err("broken");
    assert!(error.to_string().contains(&format!("over the {limit}-byte limit")), "{error}");
}
