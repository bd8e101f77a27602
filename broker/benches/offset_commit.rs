//! What a durable consumer-offset commit costs: the redb store the broker uses (one
//! transaction and fsync per batch of waiting commits) against rewriting a JSON file
//! of every offset atomically (what `consumer_offsets.json` was), with 1 000 offsets
//! stored (10 groups × 100 queues).
//!
//! `cargo bench -p weir-broker --bench offset_commit`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use weir_broker::meta::json;
use weir_broker::meta::offsets::{OffsetKey, OffsetStore};

const GROUPS: usize = 10;
const QUEUES: u32 = 100;
const CONCURRENT: usize = 64;

fn key(group: usize, queue_id: u32) -> OffsetKey {
    OffsetKey { group: format!("group-{group}"), member: String::new(), topic: "orders".into(), queue_id }
}

fn offset_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(OffsetStore::open(dir.path()).expect("open"));
    let all: Vec<(OffsetKey, u64)> = (0..GROUPS).flat_map(|g| (0..QUEUES).map(move |q| (key(g, q), 1))).collect();
    runtime.block_on(store.commit(all)).expect("seed");
    let mut group = c.benchmark_group("offset_commit");
    group.sample_size(30);
    let mut next = 0u64;
    group.bench_function("redb/one", |b| {
        b.iter(|| {
            next += 1;
            runtime.block_on(store.commit(vec![(key(3, 7), next)])).expect("commit");
        })
    });
    group.bench_function(format!("redb/{CONCURRENT}_concurrent"), |b| {
        b.iter(|| {
            next += 1;
            runtime.block_on(async {
                let mut commits = tokio::task::JoinSet::new();
                for i in 0..CONCURRENT {
                    let store = store.clone();
                    commits.spawn(async move { store.commit(vec![(key(i % GROUPS, i as u32), next)]).await });
                }
                while let Some(done) = commits.join_next().await {
                    done.expect("task").expect("commit");
                }
            })
        })
    });
    let mut table: BTreeMap<String, BTreeMap<String, BTreeMap<u32, u64>>> = BTreeMap::new();
    for g in 0..GROUPS {
        table.entry(format!("group-{g}")).or_default().insert("orders".into(), (0..QUEUES).map(|q| (q, 1)).collect());
    }
    let path = dir.path().join("consumer_offsets.json");
    group.bench_function("json/one", |b| {
        b.iter(|| {
            next += 1;
            table.get_mut("group-3").and_then(|t| t.get_mut("orders")).map(|q| q.insert(7, next));
            json::store(&path, black_box(&table)).expect("store");
        })
    });
    group.finish();
}

criterion_group!(benches, offset_commit);
criterion_main!(benches);
