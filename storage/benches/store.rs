//! Criterion benchmarks of the storage engine's hot paths: append (async
//! flush, page-cache speed) and queue reads.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use weir_storage::{Message, Store, StoreConfig};

fn message(size: usize, queue_id: u32) -> Message {
    Message {
        topic: "bench".into(),
        queue_id,
        tag: "TagA".into(),
        keys: Vec::new(),
        properties: vec![("region".into(), "SH".into())],
        body: vec![b'x'; size].into(),
        born_timestamp_ms: 0,
        born_host: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        flags: 0,
    }
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(StoreConfig { segment_size: 256 << 20, ..StoreConfig::new(dir) }).expect("open")
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    for size in [128usize, 1024] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let msg = message(size, 0);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("single_{size}B"), |b| b.iter(|| black_box(store.append(&msg).expect("append"))));
        let batch: Vec<Message> = (0..32).map(|i| message(size, i % 4)).collect();
        group.throughput(Throughput::Bytes((size * batch.len()) as u64));
        group.bench_function(format!("batch32_{size}B"), |b| {
            b.iter(|| black_box(store.append_batch(&batch).expect("append")))
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let batch: Vec<Message> = (0..100).map(|_| message(1024, 0)).collect();
    for _ in 0..100 {
        store.append_batch(&batch).expect("append");
    }
    assert!(store.wait_dispatched(std::time::Duration::from_secs(10)));
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Elements(32));
    group.bench_function("read_queue_32x1KiB", |b| {
        b.iter_batched(
            fastrand_offset,
            |offset| black_box(store.read_queue("bench", 0, offset, 32).expect("read")),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A cheap varying start offset inside the 10 000 written messages.
fn fastrand_offset() -> u64 {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9) });
    STATE.with(|s| {
        let x = s.get().wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        s.set(x);
        (x >> 33) % 9_968
    })
}

criterion_group!(benches, append, read);
criterion_main!(benches);
