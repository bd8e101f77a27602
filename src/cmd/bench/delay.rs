//! `weir bench delay`: how late delayed messages arrive. N messages are sent with
//! delivery times spread evenly over a window that starts once they are all sent
//! (issue 18's figure: 100 000 timers due in the same minute); each message's lateness is
//! the time it was stored in its topic (its delivery) minus its due time.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use weir_client::{DelayedDelivery, Producer, PullConsumer, PullStatus};
use weir_protocol::Message;

use crate::cmd::BrokerAddr;
use crate::latency::{Percentiles, histogram};

/// Arguments of `weir bench delay`.
#[derive(Debug, Args)]
pub struct DelayArgs {
    /// Topic (created with `--queues` queues if missing; use a fresh one).
    #[arg(long)]
    topic: String,
    /// Read and write queues of the topic if it is created.
    #[arg(long, default_value_t = 8)]
    queues: u32,
    /// Delayed messages to send.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Their due times are spread evenly over this window, in ms.
    #[arg(long, default_value_t = 60_000)]
    window_ms: u64,
    /// The window starts this long after the benchmark starts, in ms: every send should
    /// be acknowledged before its message is due (`acked_after_due` counts those that were not).
    #[arg(long, default_value_t = 20_000)]
    lead_ms: u64,
    /// Messages per send request.
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Send requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: u32,
    /// Print the summary as one JSON object (last line).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
    #[command(flatten)]
    pub threads: super::LoadThreads,
}

fn now_ms() -> u64 {
    u64::try_from(weir_storage::now_ms()).unwrap_or(0)
}

/// Runs `weir bench delay`.
pub async fn run(args: DelayArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.count > 0 && args.batch > 0 && args.concurrency > 0, "counts must be positive");
    let client = args.broker.connect().await?;
    super::produce::create_missing_topics(&client, std::slice::from_ref(&args.topic), args.queues).await?;
    let producer = Arc::new(Producer::new(client.clone()));
    let start = now_ms() + args.lead_ms;
    let due = move |i: u64| start + i * args.window_ms / args.count;
    let next = Arc::new(AtomicU64::new(0));
    let sent_late = Arc::new(AtomicU64::new(0));
    let sending = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (producer, next, sent_late, topic) =
            (producer.clone(), next.clone(), sent_late.clone(), args.topic.clone());
        let (count, batch) = (args.count, u64::from(args.batch));
        tasks.spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= count {
                    return anyhow::Ok(());
                }
                let messages: Vec<Message> = (first..count.min(first + batch))
                    .map(|i| Message::new(topic.clone(), due(i).to_string()).with_deliver_at(due(i)))
                    .collect();
                let end = count.min(first + batch);
                producer.send_batch(messages).await?;
                let acked = now_ms();
                sent_late.fetch_add((first..end).filter(|&i| due(i) < acked).count() as u64, Ordering::Relaxed);
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    let send_seconds = sending.elapsed().as_secs_f64();
    eprintln!(
        "sent {} delayed messages in {send_seconds:.1} s; due from {} ms from now over {} ms",
        args.count,
        start.saturating_sub(now_ms()),
        args.window_ms
    );

    let consumer = PullConsumer::new(client.clone(), "bench-delay");
    let mut offsets = vec![0u64; args.queues as usize];
    let mut lateness = histogram();
    let mut received = 0u64;
    let deadline = start + args.window_ms + 60_000;
    let mut early = 0u64;
    while received < args.count && now_ms() < deadline {
        for queue_id in 0..args.queues {
            let offset = &mut offsets[queue_id as usize];
            let page = consumer.pull(&args.topic, queue_id, *offset, 1024, Duration::from_millis(20)).await?;
            *offset = page.next_offset;
            if page.status != PullStatus::Found {
                continue;
            }
            for message in page.messages {
                let due_ms: u64 = String::from_utf8_lossy(&message.body).parse().unwrap_or(0);
                if message.store_timestamp_ms < due_ms {
                    early += 1;
                }
                // Microsecond histogram, millisecond values: recorded ×1000 (at least 1 µs).
                let _ = lateness.record(message.store_timestamp_ms.saturating_sub(due_ms) * 1000 + 1);
                received += 1;
            }
        }
    }
    let timers = client.status().await?.timers;
    producer.close().await;
    client.close().await;
    let p = Percentiles::from(&lateness);
    let ms = |us: u64| us / 1000;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "sent": args.count, "received": received, "early": early, "window_ms": args.window_ms,
                "send_seconds": send_seconds, "sends_per_sec": args.count as f64 / send_seconds,
                "acked_after_due": sent_late.load(Ordering::Relaxed),
                "lateness_p50_ms": ms(p.p50), "lateness_p99_ms": ms(p.p99), "lateness_p999_ms": ms(p.p999),
                "lateness_max_ms": ms(p.max), "broker_lateness_max_ms": timers.lateness_max_ms,
                "broker_lateness_mean_ms": timers.lateness_mean_ms,
            })
        );
    } else {
        println!(
            "{received}/{} delivered ({early} early); lateness p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms (broker: take max {} ms, mean {} ms); sends {:.0}/s",
            args.count,
            ms(p.p50),
            ms(p.p99),
            ms(p.p999),
            ms(p.max),
            timers.lateness_max_ms,
            timers.lateness_mean_ms,
            args.count as f64 / send_seconds
        );
    }
    Ok(if received == args.count && early == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
