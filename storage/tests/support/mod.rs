//! Helpers the storage crate's integration tests share.

#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::sync::Arc;

use weir_storage::{Message, ReadStatus, Store, StoreConfig};

/// Small files so tests roll segments and ConsumeQueue files often.
pub fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segment_size: 64 * 1024,
        max_message_size: 8 * 1024,
        consume_queue_entries_per_file: 64,
        index_slots: 64,
        index_entries: 256,
        ..StoreConfig::new(dir)
    }
}

pub fn message(topic: &str, queue_id: u32, n: usize) -> Message {
    Message {
        topic: topic.to_owned(),
        queue_id,
        tag: if n.is_multiple_of(2) { "even".into() } else { "odd".into() },
        keys: vec![format!("key-{n}")],
        properties: vec![("n".into(), n.to_string())],
        body: format!("body-{n}-{}", "x".repeat(n % 200)).into_bytes().into(),
        born_timestamp_ms: 1_700_000_000_000 + n as i64,
        born_host: "127.0.0.1:9000".parse().expect("addr"),
        flags: 0,
    }
}

/// Every message of a queue, read page by page: (queue offset, n property).
pub fn read_all(store: &Store, topic: &str, queue_id: u32) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = store.read_queue(topic, queue_id, offset, 7).expect("read");
        match page.status {
            ReadStatus::Found => {
                for m in &page.messages {
                    out.push((m.queue_offset, m.record.view().property("n").expect("n").to_owned()));
                }
                offset = page.next_offset;
            }
            ReadStatus::OffsetTooSmall => offset = page.next_offset,
            _ => return out,
        }
    }
}

/// Polls `future` to completion on this thread (the storage crate has no runtime).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
