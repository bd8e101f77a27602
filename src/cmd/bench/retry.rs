//! `weir bench retry`: the retry path's throughput, the failures per second the broker
//! turns into retry copies (issue 18's figure). N messages are sent one per request,
//! `--concurrency` in flight (the baseline, same run), pulled back, then each is
//! reported failed (one nack per request, as a consumer does, same concurrency); each
//! nack stores a retry copy through the timer before it is answered.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use weir_client::{Client, Producer, PullConsumer, PullStatus};
use weir_protocol::Message;

use crate::cmd::BrokerAddr;

/// Arguments of `weir bench retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Topic (created with `--queues` queues if missing; use a fresh one).
    #[arg(long)]
    topic: String,
    /// Read and write queues of the topic if it is created.
    #[arg(long, default_value_t = 8)]
    queues: u32,
    /// Consumer group that fails the messages.
    #[arg(long, default_value = "bench-retry")]
    group: String,
    /// Messages to send, then fail.
    #[arg(long, default_value_t = 50_000)]
    count: usize,
    /// Requests in flight, for the sends and for the nacks.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
    #[command(flatten)]
    pub threads: super::LoadThreads,
}

/// Runs `work(i)` for `i` in `0..count`, `concurrency` at a time; returns the seconds taken.
async fn timed<F, Fut>(count: usize, concurrency: usize, work: F) -> anyhow::Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (work, next) = (work.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                work(i).await?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The ids of the first `count` messages of `topic`'s queues.
async fn pull_ids(client: &Client, group: &str, topic: &str, queues: u32, count: usize) -> anyhow::Result<Vec<String>> {
    let consumer = PullConsumer::new(client.clone(), group);
    let mut offsets = vec![0u64; queues as usize];
    let mut ids = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(120);
    while ids.len() < count {
        anyhow::ensure!(Instant::now() < deadline, "pulled {} of {count} messages in 120 s", ids.len());
        for (queue_id, offset) in offsets.iter_mut().enumerate() {
            let page = consumer.pull(topic, queue_id as u32, *offset, 1024, Duration::from_millis(20)).await?;
            *offset = page.next_offset;
            if page.status == PullStatus::Found {
                ids.extend(page.messages.into_iter().map(|m| m.msg_id));
            }
        }
    }
    ids.truncate(count);
    Ok(ids)
}

/// Runs `weir bench retry`.
pub async fn run(args: RetryArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.count > 0 && args.concurrency > 0, "counts must be positive");
    let client = args.broker.connect().await?;
    super::produce::create_missing_topics(&client, std::slice::from_ref(&args.topic), args.queues).await?;
    let producer = Arc::new(Producer::new(client.clone()));
    let (topic, body) = (args.topic.clone(), bytes::Bytes::from(vec![b'x'; args.size]));
    let sender = producer.clone();
    let send_seconds = timed(args.count, args.concurrency, move |_| {
        let (producer, message) = (sender.clone(), Message::new(topic.clone(), body.clone()));
        async move {
            // One message per request, as a nack is (`send` would coalesce concurrent sends).
            producer.send_batch(vec![message]).await?;
            Ok(())
        }
    })
    .await?;
    let ids = Arc::new(pull_ids(&client, &args.group, &args.topic, args.queues, args.count).await?);
    let pending_before = client.status().await?.timers.pending;
    let (nacker, group) = (client.clone(), args.group.clone());
    let nack_seconds = timed(args.count, args.concurrency, move |i| {
        let (client, group, ids) = (nacker.clone(), group.clone(), ids.clone());
        async move {
            client.nack(&group, &ids[i], "bench: always failing", None).await?;
            Ok(())
        }
    })
    .await?;
    let retry = client.describe_group(&args.group).await?.retry;
    let pending = client.status().await?.timers.pending.saturating_sub(pending_before);
    producer.close().await;
    client.close().await;
    let (sends_per_sec, nacks_per_sec) = (args.count as f64 / send_seconds, args.count as f64 / nack_seconds);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "count": args.count, "concurrency": args.concurrency, "size": args.size,
                "sends_per_sec": sends_per_sec, "nacks_per_sec": nacks_per_sec,
                "nack_to_send_ratio": nacks_per_sec / sends_per_sec,
                "retries": retry.stats.retries, "retry_copies_pending": pending,
            })
        );
    } else {
        println!(
            "{} failures turned into retry copies at {nacks_per_sec:.0}/s; plain sends {sends_per_sec:.0}/s (same \
             run, one per request, {} in flight): ratio {:.2}; {pending} retry copies waiting in the timer",
            retry.stats.retries,
            args.concurrency,
            nacks_per_sec / sends_per_sec
        );
    }
    Ok(ExitCode::SUCCESS)
}
