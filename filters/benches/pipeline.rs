//! Does the block-summary stage pay? The read path over 64 Ki stored messages
//! (5 properties, 100 regions), with block summaries and without (an index
//! whose blocks never complete), for a 1 % subscription (`region = 'r7'`,
//! present in every block), an absent value (`region = 'nowhere'`) and a
//! shadow group on a topic without shadow traffic; and, as the baseline, the
//! 1 % subscription with every pre-filter off (every body read and evaluated).

#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use weir_filters::{
    BloomIndex, BloomShape, Expression, FilterStats, IndexShape, PageLimits, ReadPath, Subscription, TrafficRole,
};
use weir_storage::{MapBudget, Message, Store, StoreConfig};

const MESSAGES: u64 = 64 * 1024;

fn shape(block_entries: u64) -> IndexShape {
    IndexShape {
        message: BloomShape { bytes: 32, hashes: 6 },
        block_entries,
        block: BloomShape { bytes: 4096, hashes: 3 },
        shadow_property: "shadow".into(),
        entries_per_file: 1 << 20,
    }
}

fn store(dir: &std::path::Path, block_entries: u64) -> (Store, Arc<BloomIndex>) {
    let index = Arc::new(
        BloomIndex::open(&dir.join("bloomindex"), shape(block_entries), MapBudget::unlimited()).expect("index"),
    );
    let config = StoreConfig { segment_size: 256 << 20, ..StoreConfig::new(dir) };
    let store = Store::open_with_hooks(config, MapBudget::unlimited(), vec![index.clone()]).expect("store");
    let messages: Vec<Message> = (0..MESSAGES)
        .map(|i| Message {
            topic: "orders".into(),
            queue_id: 0,
            tag: String::new(),
            keys: Vec::new(),
            properties: vec![
                ("region".into(), format!("r{}", i % 100)),
                ("amount".into(), (i % 1000).to_string()),
                ("currency".into(), "CNY".into()),
                ("channel".into(), format!("c{}", i % 7)),
                ("customer".into(), format!("u{}", i % 5000)),
            ],
            body: bytes::Bytes::from(vec![b'x'; 1024]),
            born_timestamp_ms: 0,
            born_host: "127.0.0.1:1".parse().expect("addr"),
            flags: 0,
        })
        .collect();
    for chunk in messages.chunks(256) {
        store.append_batch(chunk).expect("append");
    }
    assert!(store.wait_dispatched(std::time::Duration::from_secs(60)));
    (store, index)
}

/// Scans the whole queue with `sub`; returns the number delivered.
fn scan(store: &Store, index: &BloomIndex, sub: &Subscription, prefilter: bool) -> usize {
    let stats = FilterStats::default();
    let entries = store.queue_entries("orders", 0, 0, MESSAGES as usize).expect("entries");
    let blooms = index.queue("orders", 0);
    let path = ReadPath {
        subscription: sub,
        stats: &stats,
        blooms: blooms.as_deref(),
        prefilter,
        shadow_property: "shadow",
        limits: PageLimits { max_messages: usize::MAX, max_bytes: usize::MAX },
    };
    path.run(0, MESSAGES, &entries, |e| store.read_entry(e).map(Some)).expect("read").records.len()
}

fn block_summaries(c: &mut Criterion) {
    let with_blocks = tempfile::tempdir().expect("tempdir");
    let without_blocks = tempfile::tempdir().expect("tempdir");
    let stores = [("blocks", store(with_blocks.path(), 1024)), ("no blocks", store(without_blocks.path(), u64::MAX))];
    let subscriptions = [
        ("region = 'r7'", Expression::Sql("region = 'r7'".into()), TrafficRole::Production),
        ("region = 'nowhere'", Expression::Sql("region = 'nowhere'".into()), TrafficRole::Production),
        ("shadow group, no shadow traffic", Expression::All, TrafficRole::Shadow),
    ];
    let mut group = c.benchmark_group("read path over 64 Ki messages");
    group.sample_size(20);
    for (label, expression, role) in subscriptions {
        for (name, (store, index)) in &stores {
            let sub = Subscription::compile(expression.clone(), role, index.shape()).expect("valid");
            group.bench_function(format!("{label} / {name}"), |b| b.iter(|| scan(store, index, &sub, true)));
        }
    }
    // The baseline: every body read and evaluated.
    let (store, index) = &stores[0].1;
    let sub = Subscription::compile(Expression::Sql("region = 'r7'".into()), TrafficRole::Production, index.shape())
        .expect("valid");
    group.bench_function("region = 'r7' / no pre-filter", |b| b.iter(|| scan(store, index, &sub, false)));
    group.finish();
}

criterion_group!(benches, block_summaries);
criterion_main!(benches);
