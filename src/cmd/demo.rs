//! `weir demo`: a short, visible tour in a temporary directory.
//!
//! It starts an embedded broker on a loopback port, then talks to it over
//! QUIC with the client library: creates a topic, sends orders with tags,
//! keys and properties, consumes them (all, by tag, by SQL92 with the filter
//! statistics), looks messages up, lets two members of a consumer group split
//! the queues (and one take over when the other leaves), measures a burst of acknowledged sends and its consumption, and finally
//! kills a child process writing with sync flush to show that recovery kept
//! every message it acknowledged.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use weir_broker::{Broker, BrokerConfig};
use weir_client::{Client, ClientConfig, ConsumeStatus, Producer, PullConsumer, PushConsumer, Subscription};
use weir_protocol::{Message, StoredMessage, TopicConfig, TopicPermissions};
use weir_storage::{Store, StoreConfig};

use crate::render::message_line;

/// Arguments of `weir demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Messages in the throughput burst.
    #[arg(long, default_value_t = 20_000)]
    burst: u64,
}

fn order(n: u64) -> Message {
    let regions = ["SH", "BJ", "SZ"];
    let region = regions[n as usize % regions.len()];
    let mut m = Message::new("orders", format!("{{\"order\":{n},\"region\":\"{region}\"}}").into_bytes());
    m.tag = Some(if n.is_multiple_of(3) { "paid".into() } else { "created".into() });
    m.keys = vec![format!("order-{n}")];
    m.properties = vec![("region".into(), region.into()), ("amount".into(), (n * 37 % 500).to_string())];
    m
}

/// Pulls every queue of `topic` from offset 0 until `want` messages arrived.
async fn drain(consumer: &PullConsumer, topic: &str, queues: u32, want: usize) -> anyhow::Result<Vec<StoredMessage>> {
    let mut offsets = vec![0u64; queues as usize];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < want && Instant::now() < deadline {
        for (queue_id, offset) in offsets.iter_mut().enumerate() {
            let page = consumer.pull(topic, queue_id as u32, *offset, 256, Duration::from_millis(50)).await?;
            *offset = page.next_offset;
            out.extend(page.messages);
        }
    }
    Ok(out)
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    crate::cmd::block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("weir-demo-").tempdir()?;
    let mut config = BrokerConfig::new(dir.path().join("broker"));
    config.listen = "127.0.0.1:0".parse()?;
    config.segment_size = 256 << 20;
    let broker = Broker::start(config).await.context("starting the embedded broker")?;
    println!("1. Broker listening on {} (QUIC, TLS 1.3), data in {}", broker.local_addr(), dir.path().display());

    let client_config =
        ClientConfig::default().with_broker(broker.local_addr().to_string()).with_ca_file(broker.cert_path());
    let client = Client::connect(client_config).await?;
    let topic = TopicConfig {
        name: "orders".into(),
        read_queues: 4,
        write_queues: 4,
        permissions: TopicPermissions::READ_WRITE,
    };
    client.create_topic(topic).await?;
    println!(
        "2. Created topic `orders` with 4 queues; sending 12 orders (tag paid|created, key, region and amount properties)"
    );
    let producer = Producer::new(client.clone());
    for n in 0..12 {
        let r = producer.send(order(n)).await?;
        println!("   order-{n:<3} -> queue {} offset {}  id {}  {}", r.queue_id, r.queue_offset, r.msg_id, r.status);
    }

    println!("3. Consuming everything (long-polling pulls over QUIC)");
    let consumer = PullConsumer::new(client.clone(), "demo-all");
    for m in drain(&consumer, "orders", 4, 12).await? {
        println!("   {}", message_line(&m));
    }
    println!("4. Consuming with the tag subscription `paid` (filtered at the broker on ConsumeQueue tag hashes)");
    let mut paid = PullConsumer::new(client.clone(), "demo-paid");
    paid.subscribe("orders", &Subscription::tag("paid")).await?;
    for m in drain(&paid, "orders", 4, 4).await? {
        println!("   {}", message_line(&m));
    }
    let sql = "region = 'SH' AND amount > 100";
    println!("   ... and with the SQL92 subscription `{sql}` (bloom index first, SQL on what passes)");
    let mut shanghai = PullConsumer::new(client.clone(), "demo-sh");
    shanghai.subscribe("orders", &Subscription::sql(sql)).await?;
    for m in drain(&shanghai, "orders", 4, 3).await? {
        println!("   {}", message_line(&m));
    }
    for stats in client.group_stats("demo-sh", Some("orders")).await? {
        println!("   statistics: {}", crate::cmd::group::stats_line(&stats));
    }

    println!("5. Lookups");
    let by_key = client.messages_by_key("orders", "order-7", 4).await?;
    for m in &by_key {
        println!("   by key order-7 -> {}", message_line(m));
    }
    if let Some(m) = by_key.first() {
        let by_id = client.message_by_id(&m.msg_id).await?;
        println!("   by id  {} -> {}", m.msg_id, String::from_utf8_lossy(&by_id.body));
    }

    consumer_group(&client, &producer).await?;

    println!("7. Burst: {} x 1 KiB acknowledged sends, 16 in flight, then consuming them", args.burst);
    let burst = TopicConfig {
        name: "burst".into(),
        read_queues: 8,
        write_queues: 8,
        permissions: TopicPermissions::READ_WRITE,
    };
    client.create_topic(burst).await?;
    let producer = Arc::new(producer);
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for task in 0..16u64 {
        let producer = producer.clone();
        let share = args.burst / 16 + u64::from(task < args.burst % 16);
        senders.spawn(async move {
            for _ in 0..share {
                producer.send(Message::new("burst", vec![b'x'; 1024])).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = senders.join_next().await {
        joined??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "   sent {} in {secs:.2} s = {:.0} msgs/s ({:.1} MB/s)",
        args.burst,
        args.burst as f64 / secs,
        args.burst as f64 * 1024.0 / secs / 1e6
    );
    let started = Instant::now();
    let received =
        drain(&PullConsumer::new(client.clone(), "demo-burst"), "burst", 8, args.burst as usize).await?.len();
    let secs = started.elapsed().as_secs_f64();
    println!("   consumed {received} in {secs:.2} s = {:.0} msgs/s", received as f64 / secs);
    producer.close().await;
    client.close().await;
    broker.shutdown().await?;
    println!("   broker stopped cleanly (offsets persisted, store flushed)");

    crash_test(dir.path())?;
    println!("Done. Next: `weir broker` in one terminal, `weir send` / `weir consume` in another (see README).");
    Ok(ExitCode::SUCCESS)
}

/// Two members of one consumer group split the topic's queues, each order is consumed
/// once, and when one member leaves the other takes its queues at once.
async fn consumer_group(client: &Client, producer: &Producer) -> anyhow::Result<()> {
    println!("6. Consumer group `billing`: two members join; the broker splits the 4 queues between them");
    let consumed: Arc<std::sync::Mutex<Vec<(String, u64)>>> = Arc::default();
    let member = |name: &'static str| {
        let consumed = consumed.clone();
        PushConsumer::builder(client.clone(), "billing", "orders")
            .member_id(name)
            .commit_interval(Duration::from_millis(100))
            .start(move |m: StoredMessage| {
                let consumed = consumed.clone();
                async move {
                    consumed.lock().expect("lock").push((name.to_owned(), m.queue_offset));
                    ConsumeStatus::Success
                }
            })
    };
    let a = member("member-a").await?;
    let b = member("member-b").await?;
    let settled = |members: &[&PushConsumer], queues: usize| {
        members.iter().map(|m| m.queue_ids().len()).sum::<usize>() == queues
            && members.iter().all(|m| !m.queue_ids().is_empty())
    };
    wait_until(|| settled(&[&a, &b], 4)).await?;
    println!("   member-a owns queues {:?}, member-b owns queues {:?}", a.queue_ids(), b.queue_ids());
    for n in 100..108 {
        producer.send(order(n)).await?;
    }
    wait_until(|| consumed.lock().expect("lock").len() >= 8).await?;
    let by = |name: &str| consumed.lock().expect("lock").iter().filter(|(m, _)| m == name).count();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let twice = consumed.lock().expect("lock").len() - 8;
    println!(
        "   8 new orders: member-a consumed {}, member-b {}; {twice} delivered twice",
        by("member-a"),
        by("member-b")
    );
    let left = Instant::now();
    a.shutdown().await?;
    wait_until(|| b.queue_ids().len() == 4).await?;
    println!("   member-a left: member-b owns all 4 queues {} ms later", left.elapsed().as_millis());
    b.shutdown().await?;
    Ok(())
}

/// Waits up to 10 s for `done`.
async fn wait_until(mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "the consumer group did not settle in 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Kills a child `weir bench store --flush sync` with SIGKILL, then checks every ack.
fn crash_test(dir: &std::path::Path) -> anyhow::Result<()> {
    println!("8. Crash test: a child process appends with sync flush and is killed with SIGKILL after 1 s");
    let crash_dir = dir.join("crash");
    let acks = dir.join("acks.jsonl");
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
    std::thread::sleep(Duration::from_secs(1));
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
    Ok(())
}
