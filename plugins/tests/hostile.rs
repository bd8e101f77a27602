//! Hand-written hostile and malformed modules (WAT): each is refused at upload
//! with a typed error, or fails only its own calls while the host keeps
//! serving others.

mod common;

use std::time::{Duration, Instant};

use common::{message, wat, wat_filter};
use weir_filters::{FilterCallError, MessageFilter};
use weir_plugins::{CallError, HandleState, Limits, LoadError, PluginHost, PluginKind, WasmFilter};

fn host() -> PluginHost {
    PluginHost::new(Limits::default()).expect("host")
}

fn filter(wasm: &[u8]) -> WasmFilter {
    let plugin = host().compile(wasm, None).expect("accepted");
    WasmFilter::new("test", plugin, "").expect("a filter")
}

fn call(filter: &WasmFilter) -> Result<bool, CallError> {
    filter.decide_traced(&message(&[], b"body")).result
}

fn load_error(wasm: &[u8]) -> LoadError {
    host().compile(wasm, None).expect_err("refused")
}

const LOOP_FOREVER: &str = "(loop $spin (br $spin)) i32.const 1";

#[test]
fn an_endless_loop_is_stopped_within_its_budget_and_others_keep_working() {
    let looping = filter(&wat_filter(LOOP_FOREVER, ""));
    let good = filter(&wat_filter("i32.const 1", ""));
    for _ in 0..3 {
        let started = Instant::now();
        let trace = looping.decide_traced(&message(&[], b""));
        let elapsed = started.elapsed();
        assert_eq!(trace.result, Err(CallError::BudgetExhausted { budget: 10_000_000 }));
        assert_eq!(trace.cost.fuel, 10_000_000, "the whole budget, not more");
        assert!(elapsed < Duration::from_secs(1), "stopped after {elapsed:?}");
        assert_eq!(call(&good), Ok(true), "the host keeps serving other plugins");
    }
}

/// Fluvio's bug #1245: fuel refilled to "unlimited" before each call. Here
/// each call gets exactly its budget: a call using most of it succeeds every
/// time, and the next loop is stopped again.
#[test]
fn fuel_is_reset_to_the_budget_before_every_call() {
    let count_to = |n: u32| {
        format!(
            "(local $i i32) (loop $again (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br_if $again (i32.lt_u (local.get $i) (i32.const {n})))) i32.const 1"
        )
    };
    let busy = filter(&wat_filter(&count_to(1_000_000), ""));
    let fuel: Vec<u64> = (0..10).map(|_| busy.decide_traced(&message(&[], b"")).cost.fuel).collect();
    assert!(fuel[0] > 3_000_000 && fuel[0] < 10_000_000, "a call uses {}", fuel[0]);
    // The first call also runs `weir_alloc` for the input buffer.
    assert!(fuel[1..].iter().all(|f| *f == fuel[1]) && fuel[0] - fuel[1] < 10, "the same budget each call: {fuel:?}");
    let too_busy = filter(&wat_filter(&count_to(100_000_000), ""));
    assert_eq!(call(&too_busy), Err(CallError::BudgetExhausted { budget: 10_000_000 }));
}

#[test]
fn k_consecutive_failures_disable_and_enable_restores() {
    let looping = filter(&wat_filter(LOOP_FOREVER, ""));
    for _ in 0..4 {
        assert!(matches!(call(&looping), Err(CallError::BudgetExhausted { .. })));
        assert_eq!(looping.handle().state(), HandleState::Active);
    }
    assert!(matches!(call(&looping), Err(CallError::BudgetExhausted { .. })));
    let HandleState::Disabled { reason } = looping.handle().state() else { panic!("still active") };
    assert!(reason.starts_with("5 consecutive failed calls; last: CPU budget exhausted"), "{reason}");
    let started = Instant::now();
    let refused = looping.decide(&message(&[], b""));
    assert!(matches!(refused, Err(FilterCallError::Disabled(_))), "{refused:?}");
    assert!(started.elapsed() < Duration::from_millis(5), "a disabled plugin is not called");
    let stats = looping.handle().stats();
    assert_eq!((stats.calls, stats.errors), (5, 5), "refused calls are not counted");
    looping.handle().enable();
    assert_eq!(looping.handle().state(), HandleState::Active);
    assert!(matches!(call(&looping), Err(CallError::BudgetExhausted { .. })), "called again");
}

#[test]
fn a_success_resets_the_failure_count() {
    // Traps when the body (the input's last field) ends in 'x', delivers otherwise.
    let last_byte = "(i32.load8_u (i32.sub (i32.add (local.get $ptr) (local.get $len)) (i32.const 1)))";
    let flaky =
        filter(&wat_filter(&format!("(if (i32.eq {last_byte} (i32.const 120)) (then unreachable)) i32.const 1"), ""));
    let fail = || flaky.decide_traced(&message(&[], b"x")).result;
    for _ in 0..4 {
        assert!(fail().is_err());
    }
    assert_eq!(flaky.decide_traced(&message(&[], b"y")).result, Ok(true));
    for _ in 0..4 {
        assert!(fail().is_err());
    }
    assert_eq!(flaky.handle().state(), HandleState::Active, "4 consecutive failures only");
    assert!(fail().is_err());
    assert!(matches!(flaky.handle().state(), HandleState::Disabled { .. }));
}

#[test]
fn memory_growth_past_the_cap_fails_the_call() {
    let grow_forever = "(loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
    let hog = filter(&wat_filter(grow_forever, ""));
    assert_eq!(call(&hog), Err(CallError::MemoryLimit { limit: 16 << 20 }));
    // Growth that stays under the cap is fine.
    let modest = filter(&wat_filter("(drop (memory.grow (i32.const 100))) i32.const 1", ""));
    assert_eq!(call(&modest), Ok(true));
}

#[test]
fn an_initial_memory_over_the_cap_is_refused_at_upload() {
    let text = r#"(module (memory (export "memory") 1000)
        (func (export "weir_abi_version") (result i32) i32.const 1)
        (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
        (func (export "weir_dealloc") (param i32 i32))
        (func (export "weir_filter") (param i32 i32) (result i32) i32.const 1))"#;
    assert!(matches!(load_error(&wat(text)), LoadError::Instantiation { .. }));
}

#[test]
fn out_of_bounds_access_traps_only_that_call() {
    let oob = filter(&wat_filter("(i32.load (i32.const 0x7ffffff0))", ""));
    let error = call(&oob).expect_err("traps");
    assert!(matches!(&error, CallError::Trap { message } if message.contains("out of bounds")), "{error}");
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let recursion = r#"(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))"#;
    let deep = filter(&wat_filter("(call $down (i32.const 0))", recursion));
    assert_eq!(call(&deep), Err(CallError::StackOverflow { limit: 512 << 10 }));
}

#[test]
fn undefined_results_are_errors() {
    let seven = filter(&wat_filter("i32.const 7", ""));
    assert_eq!(call(&seven), Err(CallError::BadResult { function: "weir_filter", value: 7 }));
}

#[test]
fn a_trapping_instance_is_replaced() {
    // A global counts calls on this instance; the call with count 1 traps.
    let counter = r#"(global $calls (mut i32) (i32.const 0))"#;
    let body = "(global.set $calls (i32.add (global.get $calls) (i32.const 1)))
                (if (i32.eq (global.get $calls) (i32.const 2)) (then unreachable)) (global.get $calls)";
    let once = filter(&wat_filter(body, counter));
    assert_eq!(call(&once), Ok(true), "first call on a fresh instance");
    assert!(matches!(call(&once), Err(CallError::Trap { .. })), "second call on it traps");
    assert_eq!(call(&once), Ok(true), "a fresh instance replaced the trapped one");
}

#[test]
fn instances_are_reused_between_calls() {
    let counter = r#"(global $calls (mut i32) (i32.const 0))"#;
    // Delivers (1) on this instance's first call, skips (0) afterwards.
    let body = "(global.set $calls (i32.add (global.get $calls) (i32.const 1)))
                (i32.eq (global.get $calls) (i32.const 1))";
    let first_only = filter(&wat_filter(body, counter));
    assert_eq!(call(&first_only), Ok(true));
    assert_eq!(call(&first_only), Ok(false), "the same instance served the second call");
}

#[test]
fn wrong_abi_version_is_refused() {
    let text = r#"(module (memory (export "memory") 1)
        (func (export "weir_abi_version") (result i32) i32.const 2)
        (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
        (func (export "weir_dealloc") (param i32 i32))
        (func (export "weir_filter") (param i32 i32) (result i32) i32.const 1))"#;
    let error = load_error(&wat(text));
    assert_eq!(error, LoadError::AbiVersion { found: 2 });
    assert_eq!(error.to_string(), "module implements ABI version 2; this host implements version 1");
}

#[test]
fn forbidden_imports_are_refused() {
    let wasi = r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#;
    let error = load_error(&wat_filter("i32.const 1", wasi));
    assert_eq!(error, LoadError::ForbiddenImport { module: "wasi_snapshot_preview1".into(), name: "fd_write".into() });
    assert_eq!(
        error.to_string(),
        "forbidden import `wasi_snapshot_preview1.fd_write`: only `weir.log(i32, i32, i32)` is provided"
    );
    let log_wrong_type = r#"(import "weir" "log" (func (param i32)))"#;
    assert!(matches!(load_error(&wat_filter("i32.const 1", log_wrong_type)), LoadError::ForbiddenImport { .. }));
    let memory = r#"(import "env" "mem" (memory 1))"#;
    let text = format!(r#"(module {memory} (func (export "weir_abi_version") (result i32) i32.const 1))"#);
    assert!(matches!(load_error(&wat(&text)), LoadError::ForbiddenImport { .. }));
    let log_ok = r#"(import "weir" "log" (func (param i32 i32 i32)))"#;
    assert!(host().compile(&wat_filter("i32.const 1", log_ok), None).is_ok());
}

#[test]
fn missing_or_mistyped_exports_are_refused() {
    let no_alloc = r#"(module (memory (export "memory") 1)
        (func (export "weir_abi_version") (result i32) i32.const 1)
        (func (export "weir_dealloc") (param i32 i32))
        (func (export "weir_filter") (param i32 i32) (result i32) i32.const 1))"#;
    let error = load_error(&wat(no_alloc));
    assert_eq!(error, LoadError::MissingExport { name: "weir_alloc", expected: "(i32) -> i32" });
    assert_eq!(error.to_string(), "missing export `weir_alloc` ((i32) -> i32)");
    let no_entry = r#"(module (memory (export "memory") 1)
        (func (export "weir_abi_version") (result i32) i32.const 1)
        (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
        (func (export "weir_dealloc") (param i32 i32)))"#;
    assert_eq!(load_error(&wat(no_entry)), LoadError::EntryPoints);
    let both = r#"(func (export "weir_dlq_policy") (param i32 i32) (result i64) i64.const -1)"#;
    assert_eq!(load_error(&wat_filter("i32.const 1", both)), LoadError::EntryPoints);
    let mistyped_init = r#"(func (export "weir_init") (param i32) (result i32) i32.const 0)"#;
    let error = load_error(&wat_filter("i32.const 1", mistyped_init));
    assert_eq!(error, LoadError::ExportType { name: "weir_init", expected: "(i32, i32) -> i32" });
    let no_memory = r#"(module (func (export "weir_abi_version") (result i32) i32.const 1))"#;
    assert_eq!(load_error(&wat(no_memory)), LoadError::MissingExport { name: "memory", expected: "a memory" });
}

#[test]
fn declared_kind_must_match_the_entry_point() {
    let error = host().compile(&wat_filter("i32.const 1", ""), Some(PluginKind::DlqPolicy)).expect_err("refused");
    assert_eq!(error, LoadError::KindMismatch { declared: PluginKind::DlqPolicy, exported: PluginKind::Filter });
    let manifest = r#"(@custom "weir-manifest" "kind=dlq-policy")"#;
    assert!(matches!(load_error(&wat_filter("i32.const 1", manifest)), LoadError::KindMismatch { .. }));
}

#[test]
fn garbage_and_huge_modules_are_refused() {
    assert!(matches!(load_error(b"\0asm garbage"), LoadError::Invalid { .. }));
    assert!(matches!(load_error(b"not wasm at all"), LoadError::Invalid { .. }));
    // A valid module made huge by a custom section.
    let mut huge = wat_filter("i32.const 1", "");
    let payload = 11 << 20;
    huge.push(0); // custom section id
    let name = b"\x04junk";
    let mut size = payload + name.len();
    while size >= 0x80 {
        huge.push((size as u8 & 0x7f) | 0x80);
        size >>= 7;
    }
    huge.push(size as u8);
    huge.extend_from_slice(name);
    huge.resize(huge.len() + payload, 0);
    let error = load_error(&huge);
    assert!(matches!(error, LoadError::TooLarge { limit, .. } if limit == 10 << 20), "{error}");
    let roomy = PluginHost::new(Limits { max_module_bytes: 12 << 20, ..Limits::default() }).expect("host");
    assert!(roomy.compile(&huge, None).is_ok(), "only the size was wrong");
}

#[test]
fn a_trapping_start_function_is_refused_at_upload() {
    let error = load_error(&wat_filter("i32.const 1", "(func $boom unreachable) (start $boom)"));
    assert!(matches!(error, LoadError::Instantiation { .. }), "{error}");
}

#[test]
fn a_bad_allocator_fails_the_call() {
    let text = r#"(module (memory (export "memory") 1)
        (func (export "weir_abi_version") (result i32) i32.const 1)
        (func (export "weir_alloc") (param i32) (result i32) i32.const 65000)
        (func (export "weir_dealloc") (param i32 i32))
        (func (export "weir_filter") (param i32 i32) (result i32) i32.const 1))"#;
    let bad = filter(&wat(text));
    assert_eq!(call(&bad), Err(CallError::BadAlloc { size: 1024, ptr: 65000 }));
}

#[test]
fn concurrent_calls_use_separate_instances() {
    let busy = "(local $i i32) (loop $again (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $again (i32.lt_u (local.get $i) (i32.const 100000)))) i32.const 1";
    let shared = filter(&wat_filter(busy, ""));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20 {
                    assert_eq!(call(&shared), Ok(true));
                }
            });
        }
    });
    assert_eq!(shared.handle().stats().calls, 80);
}
