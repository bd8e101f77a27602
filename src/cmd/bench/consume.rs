//! `weir bench consume`: drain `--count` messages of a topic as a consumer
//! group, every read queue in parallel, and report throughput and
//! end-to-end latency (store time to receipt). With `--members N`, N push
//! consumers join the group (each on its own connection, as N processes would)
//! and split the queues; each member's share is reported too.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use weir_client::{Client, ConsumeStatus, PullConsumer, PushConsumer, StartPosition, StoredMessage};

use super::produce::{Summary, print_summary};
use crate::cmd::{BrokerAddr, SubscriptionArgs};
use crate::latency::{Percentiles, histogram};

/// Arguments of `weir bench consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to drain.
    #[arg(long)]
    topic: String,
    /// Consumer group (its committed offsets are the starting point; earliest when none).
    #[arg(long)]
    group: String,
    /// Messages to receive before stopping.
    #[arg(long)]
    count: u64,
    #[command(flatten)]
    subscription: SubscriptionArgs,
    /// Messages per pull.
    #[arg(long, default_value_t = 256)]
    batch: u32,
    /// Consume as N members of the group (push consumers that split the queues) instead
    /// of pulling every queue directly; reports each member's share (one JSON line each).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    members: Option<u32>,
    /// Print the summary as one JSON object (last line).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
    #[command(flatten)]
    pub threads: super::LoadThreads,
}

/// Runs `weir bench consume`.
pub async fn run(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    if let Some(members) = args.members {
        return run_members(args, members).await;
    }
    let client = args.broker.connect().await?;
    let topic = client.topic(&args.topic).await?;
    let received = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut subscribed = PullConsumer::new(client.clone(), args.group.clone());
    subscribed.subscribe(&args.topic, &args.subscription.subscription()).await?;
    let started = Instant::now();
    // Set when `--count` messages arrived: held pulls of drained queues stop waiting.
    let (done_tx, done) = tokio::sync::watch::channel(None::<Instant>);
    let done_tx = Arc::new(done_tx);
    let mut tasks = tokio::task::JoinSet::new();
    for queue_id in 0..topic.read_queues {
        let consumer = subscribed.clone();
        let mut offset = match consumer.fetch_offset(&args.topic, queue_id).await? {
            Some(committed) => committed,
            None => client.queue_offsets(&args.topic, queue_id).await?.start,
        };
        let (topic, received, bytes, count, batch) =
            (args.topic.clone(), received.clone(), bytes.clone(), args.count, args.batch);
        let (done_tx, mut done) = (done_tx.clone(), done.clone());
        tasks.spawn(async move {
            let mut latencies = histogram();
            let mut errors = 0u64;
            while done.borrow().is_none() {
                let pulled = tokio::select! {
                    pulled = consumer.pull(&topic, queue_id, offset, batch, Duration::from_millis(500)) => pulled,
                    _ = done.changed() => break,
                };
                match pulled {
                    Ok(page) => {
                        let now = weir_storage::now_ms() as u64;
                        for m in &page.messages {
                            let _ = latencies.record(now.saturating_sub(m.store_timestamp_ms).max(1) * 1000);
                            bytes.fetch_add(m.body.len() as u64, Ordering::Relaxed);
                        }
                        let n = page.messages.len() as u64;
                        if n > 0 && received.fetch_add(n, Ordering::Relaxed) + n >= count {
                            let now = Instant::now();
                            done_tx.send_if_modified(|at| at.get_or_insert(now) == &now);
                        }
                        offset = page.next_offset;
                    }
                    Err(err) => {
                        errors += 1;
                        tracing::warn!(queue_id, %err, "pull failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            let _ = consumer.commit_offset(&topic, queue_id, offset).await;
            (latencies, errors)
        });
    }
    let progress = {
        let received = received.clone();
        super::report_progress(args.count, move || received.load(Ordering::Relaxed))
    };
    let mut latencies = histogram();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (h, e) = joined?;
        latencies.add(&h)?;
        errors += e;
    }
    let finished = done.borrow().unwrap_or_else(Instant::now);
    let seconds = finished.duration_since(started).as_secs_f64();
    progress.abort();
    let stats = client.group_stats(&args.group, Some(&args.topic)).await?;
    client.close().await;
    let received = received.load(Ordering::Relaxed);
    let size = (bytes.load(Ordering::Relaxed) / received.max(1)) as usize;
    if !args.json {
        for s in &stats {
            println!("  filter: {}", crate::cmd::group::stats_line(s));
        }
    }
    let filter = stats.first().map(crate::cmd::group::stats_json);
    let latency = Percentiles::from(&latencies);
    print_summary(Summary { key: "received", done: received, errors, seconds, size, latency, filter }, args.json);
    Ok(ExitCode::SUCCESS)
}

/// What one member received.
#[derive(Debug, Default)]
struct Share {
    received: AtomicU64,
    bytes: AtomicU64,
}

/// `--members N`: N push consumers of the group drain `--count` messages together.
async fn run_members(args: ConsumeArgs, members: u32) -> anyhow::Result<ExitCode> {
    let config = args.broker.config();
    let received = Arc::new(AtomicU64::new(0));
    let (done_tx, mut done) = tokio::sync::watch::channel(None::<Instant>);
    let done_tx = Arc::new(done_tx);
    let latencies = Arc::new(parking_lot::Mutex::new(histogram()));
    let started = Instant::now();
    let mut consumers = Vec::new();
    for _ in 0..members {
        let share = Arc::new(Share::default());
        let (received, done_tx, latencies, count) = (received.clone(), done_tx.clone(), latencies.clone(), args.count);
        let listener = {
            let share = share.clone();
            move |m: StoredMessage| {
                let (share, received, done_tx, latencies) =
                    (share.clone(), received.clone(), done_tx.clone(), latencies.clone());
                async move {
                    let now = weir_storage::now_ms() as u64;
                    let _ = latencies.lock().record(now.saturating_sub(m.store_timestamp_ms).max(1) * 1000);
                    share.received.fetch_add(1, Ordering::Relaxed);
                    share.bytes.fetch_add(m.body.len() as u64, Ordering::Relaxed);
                    if received.fetch_add(1, Ordering::Relaxed) + 1 >= count {
                        let now = Instant::now();
                        done_tx.send_if_modified(|at| at.get_or_insert(now) == &now);
                    }
                    ConsumeStatus::Success
                }
            }
        };
        let consumer = PushConsumer::builder(Client::connect(config.clone()).await?, &args.group, &args.topic)
            .subscription(args.subscription.subscription())
            .start_position(StartPosition::CommittedOrEarliest)
            .pull_batch_size(args.batch)
            .concurrency(64)
            .start(listener)
            .await?;
        consumers.push((consumer, share));
    }
    let progress = {
        let received = received.clone();
        super::report_progress(args.count, move || received.load(Ordering::Relaxed))
    };
    let _ = done.wait_for(Option::is_some).await;
    let finished = done.borrow().unwrap_or_else(Instant::now);
    let seconds = finished.duration_since(started).as_secs_f64();
    progress.abort();
    for (consumer, share) in &consumers {
        let n = share.received.load(Ordering::Relaxed);
        let (member, queues) = (consumer.member_id().to_owned(), consumer.queue_ids());
        if args.json {
            let line = serde_json::json!({
                "member_id": member, "queues": queues, "received": n, "msgs_per_sec": n as f64 / seconds,
            });
            println!("{line}");
        } else {
            println!("  member {member}: queues {queues:?}, {n} received, {:.0} msgs/s", n as f64 / seconds);
        }
    }
    let mut bytes = 0;
    for (consumer, share) in consumers {
        bytes += share.bytes.load(Ordering::Relaxed);
        consumer.shutdown().await?;
    }
    let received = received.load(Ordering::Relaxed);
    let size = (bytes / received.max(1)) as usize;
    let latency = Percentiles::from(&*latencies.lock());
    let summary = Summary { key: "received", done: received, errors: 0, seconds, size, latency, filter: None };
    print_summary(summary, args.json);
    Ok(ExitCode::SUCCESS)
}
