//! Criterion benchmarks: parse+compile cost per subscription and evaluation
//! cost per message. Figures and commands are recorded in the crate README.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use weir_sql92::{Filter, Truth};

/// Ten predicates of every kind, as one subscription.
const TEN_TERMS: &str = "region = 'SH' AND amount > 100 AND city IN ('BJ', 'SH', 'GZ') \
    AND level >= 3 AND vip = TRUE AND name STARTSWITH 'x' AND age BETWEEN 18 AND 60 \
    AND score < 99.5 AND channel <> 'web' AND coupon IS NULL";

/// A typical message: the tag, a key and a few business properties.
const MESSAGE: [(&str, &str); 6] = [
    ("TAGS", "order"),
    ("KEYS", "o-20240101-0001"),
    ("channel", "app"),
    ("region", "SH"),
    ("amount", "150"),
    ("city", "HZ"),
];

/// `p0 = 'v0' AND n1 > 1 AND p2 = 'v2' ...`: twenty terms, all TRUE for
/// [`twenty_properties`], so every one is evaluated.
fn twenty_terms() -> String {
    (0..20)
        .map(|i| if i % 2 == 0 { format!("p{i} = 'v{i}'") } else { format!("p{i} > {i}") })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn twenty_properties() -> Vec<(String, String)> {
    (0..20)
        .map(|i| {
            let value = if i % 2 == 0 { format!("v{i}") } else { format!("{}", i * 10) };
            (format!("p{i}"), value)
        })
        .collect()
}

fn parse_and_compile(c: &mut Criterion) {
    c.bench_function("parse+compile 10 terms", |b| b.iter(|| Filter::parse(black_box(TEN_TERMS)).expect("valid")));
}

fn evaluate(c: &mut Criterion) {
    let region = Filter::parse("region = 'SH' AND amount > 100").expect("valid");
    assert_eq!(region.evaluate(&MESSAGE), Ok(Truth::True));
    c.bench_function("eval region = 'SH' AND amount > 100", |b| b.iter(|| region.evaluate(black_box(&MESSAGE))));

    let in_list = Filter::parse("city IN ('BJ', 'SH', 'GZ', 'SZ', 'HZ')").expect("valid");
    assert_eq!(in_list.evaluate(&MESSAGE), Ok(Truth::True));
    c.bench_function("eval 5-element IN", |b| b.iter(|| in_list.evaluate(black_box(&MESSAGE))));

    let twenty = Filter::parse(&twenty_terms()).expect("valid");
    let properties = twenty_properties();
    assert_eq!(twenty.evaluate(properties.as_slice()), Ok(Truth::True));
    c.bench_function("eval 20 terms", |b| b.iter(|| twenty.evaluate(black_box(properties.as_slice()))));
}

criterion_group!(benches, parse_and_compile, evaluate);
criterion_main!(benches);
