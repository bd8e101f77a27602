//! Codec throughput: a Send of 16 × 1 KiB messages and a Pull response of 32 × 1 KiB
//! messages, each encoded into a reused buffer and decoded from a whole frame.

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use weir_protocol::{
    DEFAULT_MAX_PAYLOAD_LEN, Message, PullResponse, PullStatus, Request, Response, SendRequest, StoredMessage,
    decode_frame,
};

fn properties() -> Vec<(String, String)> {
    vec![("region".to_owned(), "SH".to_owned()), ("tenant".to_owned(), "acme".to_owned())]
}

fn send_request() -> Request {
    let messages = (0..16)
        .map(|i| {
            let mut message = Message::new("orders", Bytes::from(vec![b'x'; 1024]));
            message.tag = Some("TagA".to_owned());
            message.keys = vec![format!("order-{i}")];
            message.properties = properties();
            message.born_timestamp_ms = 1_700_000_000_000 + i;
            message
        })
        .collect();
    Request::Send(SendRequest { messages })
}

fn pull_response() -> Response {
    let messages = (0..32u64)
        .map(|i| StoredMessage {
            msg_id: format!("{:032X}", 4096 * i),
            topic: "orders".to_owned(),
            queue_id: 3,
            queue_offset: 1000 + i,
            commitlog_offset: 4096 * i,
            born_timestamp_ms: 1_700_000_000_000 + i,
            store_timestamp_ms: 1_700_000_000_001 + i,
            born_host: "127.0.0.1:50412".to_owned(),
            flags: 0,
            reconsume_times: 0,
            tag: Some("TagA".to_owned()),
            keys: vec![format!("order-{i}")],
            properties: properties(),
            body: Bytes::from(vec![b'x'; 1024]),
        })
        .collect();
    Response::Pull(PullResponse {
        status: PullStatus::Found,
        next_offset: 1032,
        min_offset: 0,
        max_offset: 5000,
        messages,
    })
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");

    let send = send_request();
    let mut wire = BytesMut::new();
    send.encode(&mut wire).unwrap();
    let wire = wire.freeze();
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("send_16x1KiB/encode", |b| {
        let mut dst = BytesMut::new();
        b.iter(|| {
            dst.clear();
            black_box(&send).encode(&mut dst).unwrap();
        });
    });
    group.bench_function("send_16x1KiB/decode", |b| {
        b.iter(|| {
            let frame = decode_frame(black_box(wire.clone()), DEFAULT_MAX_PAYLOAD_LEN).unwrap();
            Request::decode(frame).unwrap()
        });
    });

    let pull = pull_response();
    let mut wire = BytesMut::new();
    pull.encode(&mut wire).unwrap();
    let wire = wire.freeze();
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("pull_response_32x1KiB/encode", |b| {
        let mut dst = BytesMut::new();
        b.iter(|| {
            dst.clear();
            black_box(&pull).encode(&mut dst).unwrap();
        });
    });
    group.bench_function("pull_response_32x1KiB/decode", |b| {
        b.iter(|| {
            let frame = decode_frame(black_box(wire.clone()), DEFAULT_MAX_PAYLOAD_LEN).unwrap();
            Response::decode(frame).unwrap()
        });
    });

    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
