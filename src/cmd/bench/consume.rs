//! `weir bench consume`: drain `--count` messages of a topic as a consumer
//! group, every read queue in parallel, and report throughput and
//! end-to-end latency (store time to receipt).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use weir_client::PullConsumer;

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
