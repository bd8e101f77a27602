//! `consume`: drain a stream's backlog with a durable pull consumer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use serde_json::json;

use crate::progress::Progress;
use crate::stats::Summary;

/// Give up when no message arrives for this long (the backlog is already stored).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    /// NATS server URL.
    #[arg(long, default_value = crate::DEFAULT_URL)]
    url: String,
    /// Stream to read; it must already hold at least `--count` messages.
    #[arg(long, default_value = "BENCH")]
    stream: String,
    /// Durable consumer name; an existing consumer of that name is deleted first
    /// so every run reads from the start of the stream.
    #[arg(long, default_value = "bench-consumer")]
    consumer: String,
    /// Deliver only messages of this subject (a JetStream consumer filter subject).
    #[arg(long)]
    filter_subject: Option<String>,
    /// Number of messages to receive.
    #[arg(long)]
    count: u64,
    /// Messages per pull request; the client sends the next request when half of
    /// the outstanding batch has arrived (async-nats `Consumer::stream`).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Ack policy: `all` acks every `--batch`-th message (which acks everything
    /// before it, like a consumer-offset commit) and waits for the server to
    /// confirm the final ack; `none` acks nothing.
    #[arg(long, value_enum, default_value_t = Ack::All)]
    ack: Ack,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// The consumer's ack policy.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Ack {
    None,
    All,
}

impl Ack {
    fn policy(self) -> consumer::AckPolicy {
        match self {
            Ack::None => consumer::AckPolicy::None,
            Ack::All => consumer::AckPolicy::All,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ack::None => "none",
            Ack::All => "all",
        }
    }
}

pub async fn run(args: Args) -> Result<(), async_nats::Error> {
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let client = async_nats::connect(&args.url).await?;
    let server_version = client.server_info().version;
    let js = jetstream::new(client);
    let stream = js.get_stream(&args.stream).await?;
    let stored = stream.get_info().await?.state.messages;
    if stored < args.count {
        return Err(format!("stream {} holds {stored} messages, fewer than --count {}", args.stream, args.count).into());
    }
    if stream.consumer_info(&args.consumer).await.is_ok() {
        stream.delete_consumer(&args.consumer).await?;
    }
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(args.consumer.clone()),
            ack_policy: args.ack.policy(),
            // Acks come once per batch; leave room for the batch being read plus prefetched ones.
            max_ack_pending: (args.batch as i64) * 10,
            filter_subject: args.filter_subject.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await?;

    let received = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let progress = Progress::start("received", received.clone(), args.count, start);
    let mut messages = consumer.stream().max_messages_per_batch(args.batch).messages().await?;
    let mut payload_bytes = 0u64;
    let mut count = 0u64;
    while count < args.count {
        let message = tokio::time::timeout(IDLE_TIMEOUT, messages.next())
            .await
            .map_err(|_| format!("no message for {IDLE_TIMEOUT:?} after {count} received"))?
            .ok_or("message stream ended early")??;
        count += 1;
        payload_bytes += message.payload.len() as u64;
        received.store(count, Ordering::Relaxed);
        if let Ack::All = args.ack {
            if count == args.count {
                // Wait for the server to confirm the final ack, so the run ends fully acknowledged.
                message.double_ack().await?;
            } else if count.is_multiple_of(args.batch as u64) {
                message.ack().await?;
            }
        }
    }
    let elapsed = start.elapsed();
    drop(progress);

    Summary {
        op: "consume",
        count_field: "received",
        count,
        errors: 0,
        elapsed,
        payload_bytes,
        latencies: None,
        settings: vec![
            ("server_version", json!(server_version)),
            ("batch", json!(args.batch)),
            ("ack", json!(args.ack.name())),
            ("filter_subject", json!(args.filter_subject)),
        ],
    }
    .print(args.json);
    Ok(())
}
