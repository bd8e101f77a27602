//! `weir demo`: a short, visible tour in a temporary directory.
//!
//! It opens a store, appends an order stream over several topics and queues,
//! reads a queue back, finds messages by id and business key, measures a
//! burst of appends, then kills a child process writing with sync flush and
//! shows that recovery kept every message it acknowledged.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use weir_storage::{Message, Store, StoreConfig};

/// Arguments of `weir demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Messages in the throughput burst.
    #[arg(long, default_value_t = 200_000)]
    burst: u64,
}

fn order(topic: &str, queue_id: u32, n: u64, region: &str) -> Message {
    Message {
        topic: topic.into(),
        queue_id,
        tag: if n.is_multiple_of(3) { "paid".into() } else { "created".into() },
        keys: vec![format!("order-{n}")],
        properties: vec![("region".into(), region.into()), ("amount".into(), (n * 37 % 500).to_string())],
        body: format!("{{\"order\":{n},\"region\":\"{region}\"}}").into_bytes().into(),
        born_timestamp_ms: weir_storage::now_ms(),
        born_host: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        flags: 0,
    }
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("weir-demo-").tempdir()?;
    let config = StoreConfig { segment_size: 64 << 20, ..StoreConfig::new(dir.path()) };
    println!("1. Opening a store in {}", dir.path().display());
    let store = Store::open(config.clone()).context("opening the demo store")?;

    println!("2. Appending 12 orders to topic `orders` (4 queues) and 3 to `payments`");
    let regions = ["SH", "BJ", "SZ"];
    let mut ids = Vec::new();
    for n in 0..12u64 {
        let r = store.append(&order("orders", (n % 4) as u32, n, regions[n as usize % 3]))?;
        ids.push(r.msg_id);
        println!(
            "   order-{n:<3} -> queue {} offset {}  id {}  {}",
            r.queue_id,
            r.queue_offset,
            r.msg_id,
            r.status.as_str()
        );
    }
    for n in 100..103u64 {
        store.append(&order("payments", 0, n, "SH"))?;
    }
    store.wait_dispatched(std::time::Duration::from_secs(5));

    println!("3. Reading queue orders/1 from offset 0 (ConsumeQueue -> CommitLog)");
    let page = store.read_queue("orders", 1, 0, 32)?;
    for m in &page.messages {
        let v = m.record.view();
        println!(
            "   offset {}  tag {:<8} region {}  body {}",
            m.queue_offset,
            v.tag(),
            v.property("region").unwrap_or("-"),
            String::from_utf8_lossy(v.body())
        );
    }

    println!("4. Lookups");
    let by_id = store.message_by_id(&ids[5].to_string())?;
    println!("   by id  {} -> {}", ids[5], String::from_utf8_lossy(by_id.view().body()));
    for r in store.messages_by_key("orders", "order-7", 4) {
        println!("   by key order-7 -> queue {} offset {}", r.view().queue_id(), r.view().queue_offset());
    }

    println!("5. Appending a burst of {} x 128-byte messages (async flush)", args.burst);
    let burst: Vec<Message> = (0..256)
        .map(|i| Message {
            keys: Vec::new(),
            body: vec![b'x'; 128].into(),
            ..order("burst", i % 8, u64::from(i), "SH")
        })
        .collect();
    let started = Instant::now();
    let mut appended = 0;
    while appended < args.burst {
        let n = (args.burst - appended).min(burst.len() as u64) as usize;
        store.append_batch(&burst[..n])?;
        appended += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("   {appended} messages in {secs:.3} s = {:.0} msgs/s", appended as f64 / secs);

    store.close()?;

    println!("6. Crash test: a child process appends with sync flush and is killed with SIGKILL after 1 s");
    let crash_dir = dir.path().join("crash");
    let acks = dir.path().join("acks.jsonl");
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "bench",
            "store",
            "--json",
            "--flush",
            "sync",
            "--writers",
            "16",
            "--size",
            "256",
            "--count",
            "100000000",
        ])
        .arg("--data-dir")
        .arg(&crash_dir)
        .arg("--ack-log")
        .arg(&acks)
        .arg("--segment-size")
        .arg((64u64 << 20).to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting the child writer")?;
    std::thread::sleep(std::time::Duration::from_secs(1));
    child.kill()?; // SIGKILL
    child.wait()?;
    let acked = crate::ack_log::read(&acks)?;
    let reopened = Store::open(StoreConfig::new(&crash_dir)).context("reopening after the crash")?;
    let rec = *reopened.recovery();
    let intact = acked.iter().filter(|a| reopened.message_by_id(&a.msg_id).is_ok()).count();
    println!(
        "   previous shutdown: {}; verified {} records; cut {} torn bytes",
        if rec.clean_shutdown { "clean" } else { "crash" },
        rec.records_verified,
        rec.truncated_bytes
    );
    println!("   acknowledged before the kill: {}; found intact after recovery: {intact}", acked.len());
    reopened.close()?;
    anyhow::ensure!(intact == acked.len(), "{} acknowledged messages were lost", acked.len() - intact);
    println!("Done. Run `weir bench store --help` for the storage benchmark.");
    Ok(ExitCode::SUCCESS)
}
