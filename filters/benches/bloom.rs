//! Per-message costs of the bloom stage: building a message's filters at
//! dispatch (5 properties into the 32-byte message bloom and the 4 KiB block
//! summary), and testing a subscription's condition against a stored bloom.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use weir_filters::BloomShape;
use weir_filters::bloom::{BloomCondition, message_terms};

const MESSAGE: BloomShape = BloomShape { bytes: 32, hashes: 6 };
const BLOCK: BloomShape = BloomShape { bytes: 4096, hashes: 3 };

fn properties(i: u64) -> Vec<(String, String)> {
    vec![
        ("region".into(), format!("r{}", i % 100)),
        ("amount".into(), (i % 1000).to_string()),
        ("currency".into(), "CNY".into()),
        ("channel".into(), format!("c{}", i % 7)),
        ("customer".into(), format!("u{}", i % 5000)),
    ]
}

fn build(c: &mut Criterion) {
    let props = properties(4242);
    let mut block = vec![0u8; BLOCK.bytes];
    c.bench_function("bloom build: 5 properties into message bloom and block summary", |b| {
        b.iter(|| {
            let mut filter = [0u8; 32];
            message_terms("", props.iter().map(|(k, v)| (k.as_str(), v.as_str())), |term| {
                MESSAGE.insert(&mut filter, term);
                BLOCK.insert(&mut block, term);
            });
            std::hint::black_box(filter)
        })
    });
}

fn test(c: &mut Criterion) {
    let filters: Vec<[u8; 32]> = (0..1024)
        .map(|i| {
            let mut filter = [0u8; 32];
            let props = properties(i);
            message_terms("", props.iter().map(|(k, v)| (k.as_str(), v.as_str())), |t| MESSAGE.insert(&mut filter, t));
            filter
        })
        .collect();
    let sql = weir_sql92::Filter::parse("region = 'r7' AND amount > 100").expect("valid");
    let condition = BloomCondition::compile(sql.necessary_condition(), MESSAGE);
    c.bench_function("bloom test: `region = 'r7' AND amount > 100` over 1024 stored blooms", |b| {
        b.iter(|| filters.iter().filter(|f| condition.may_match(&f[..])).count())
    });
}

criterion_group!(benches, build, test);
criterion_main!(benches);
