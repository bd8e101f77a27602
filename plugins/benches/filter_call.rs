//! Per-call cost of a trivial filter plugin: a WAT module that delivers every
//! message, and the SDK's `region_filter` (decodes the message, compares one
//! property), on a 1 KiB message, through `MessageFilter::decide`; and how
//! long the default fuel budget lets an endless loop run. The same decision as
//! `sdk_region_filter` written in SQL92 (`region = 'SH'`) is the reference.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use weir_filters::MessageFilter;
use weir_plugins::{Limits, PluginHost, WasmFilter};

fn filter_call(c: &mut Criterion) {
    let host = PluginHost::new(Limits::default()).expect("host");
    let body = vec![b'x'; 1024];
    let properties = [("region", "SH"), ("tenant", "acme"), ("kind", "payment")];
    let message = common::message(&properties, &body);
    let modules = [
        ("wat_deliver_all", common::wat_filter("i32.const 1", "")),
        ("sdk_region_filter", common::guest("region_filter")),
    ];
    let mut group = c.benchmark_group("filter_call");
    for (name, wasm) in modules {
        let filter = WasmFilter::new(name, host.compile(&wasm, None).expect("compiles"), "").expect("a filter");
        assert_eq!(filter.decide(&message), Ok(true));
        group.bench_function(name, |b| b.iter(|| filter.decide(std::hint::black_box(&message))));
    }
    let sql = weir_sql92::Filter::parse("region = 'SH'").expect("valid");
    assert_eq!(sql.evaluate(&properties[..]), Ok(weir_sql92::Truth::True));
    group.bench_function("sql92_same_logic", |b| b.iter(|| sql.evaluate(std::hint::black_box(&properties[..]))));
    group.finish();
}

/// How long an endless loop runs before the default fuel budget stops it.
fn budget(c: &mut Criterion) {
    let host = PluginHost::new(Limits::default()).expect("host");
    let looping = common::wat_filter("(loop $spin (br $spin)) i32.const 1", "");
    let filter = WasmFilter::new("loop", host.compile(&looping, None).expect("compiles"), "").expect("a filter");
    let message = common::message(&[], b"");
    let mut group = c.benchmark_group("budget");
    group.sample_size(10);
    group.bench_function("endless_loop_default_fuel", |b| {
        b.iter(|| {
            assert!(filter.decide(&message).is_err());
            filter.handle().enable();
        })
    });
    group.finish();
}

criterion_group!(benches, filter_call, budget);
criterion_main!(benches);
