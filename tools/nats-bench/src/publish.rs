//! `publish`: acked JetStream publishes with a fixed number in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use serde_json::json;

use crate::progress::Progress;
use crate::stats::{Latencies, Summary};

#[derive(clap::Args)]
pub struct Args {
    /// NATS server URL.
    #[arg(long, default_value = crate::DEFAULT_URL)]
    url: String,
    /// Stream name.
    #[arg(long, default_value = "BENCH")]
    stream: String,
    /// The subject published to; with `--subjects N`, the prefix of N subjects
    /// `<subject>.0` .. `<subject>.<N-1>`, message i going to `<subject>.<i mod N>`.
    #[arg(long, default_value = "bench.msgs")]
    subject: String,
    /// Spread messages over this many subjects (the stream takes `<subject>.>`).
    #[arg(long)]
    subjects: Option<u64>,
    /// Number of messages to publish.
    #[arg(long)]
    count: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Publishes in flight: this many tasks each publish and await the PubAck in turn.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Keep an existing stream (and its messages) instead of deleting and recreating it.
    #[arg(long)]
    keep: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What one publishing task measured.
struct TaskResult {
    acked: u64,
    errors: u64,
    latencies: Latencies,
}

pub async fn run(args: Args) -> Result<(), async_nats::Error> {
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let client = async_nats::connect(&args.url).await?;
    let server_version = client.server_info().version;
    let js = jetstream::new(client);
    prepare_stream(&js, &args).await?;

    let payload = Bytes::from((0..args.size).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>());
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let progress = Progress::start("published", acked.clone(), args.count, start);

    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let js = js.clone();
            let (subject, subjects) = (args.subject.clone(), args.subjects);
            let payload = payload.clone();
            let (next, acked) = (next.clone(), acked.clone());
            let count = args.count;
            tokio::spawn(async move {
                let mut result = TaskResult { acked: 0, errors: 0, latencies: Latencies::new() };
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let subject = match subjects {
                        Some(n) => format!("{subject}.{}", index % n),
                        None => subject.clone(),
                    };
                    let sent_at = Instant::now();
                    match publish_one(&js, &subject, payload.clone()).await {
                        Ok(()) => {
                            result.latencies.record(sent_at.elapsed());
                            result.acked += 1;
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => {
                            if result.errors == 0 {
                                eprintln!("publish error: {err}");
                            }
                            result.errors += 1;
                        }
                    }
                }
                result
            })
        })
        .collect();

    let mut total = TaskResult { acked: 0, errors: 0, latencies: Latencies::new() };
    for task in tasks {
        let result = task.await?;
        total.acked += result.acked;
        total.errors += result.errors;
        total.latencies.merge(&result.latencies);
    }
    let elapsed = start.elapsed();
    drop(progress);

    Summary {
        op: "publish",
        count_field: "sent",
        count: total.acked,
        errors: total.errors,
        elapsed,
        payload_bytes: total.acked * args.size as u64,
        latencies: Some(total.latencies),
        settings: vec![
            ("server_version", json!(server_version)),
            ("size", json!(args.size)),
            ("concurrency", json!(args.concurrency)),
            ("storage", json!("file")),
            ("subjects", json!(args.subjects.unwrap_or(1))),
        ],
    }
    .print(args.json);
    Ok(())
}

/// Publishes one message and waits for the stream's PubAck.
async fn publish_one(js: &jetstream::Context, subject: &str, payload: Bytes) -> Result<(), async_nats::Error> {
    js.publish(subject.to_owned(), payload).await?.await?;
    Ok(())
}

/// Creates the stream (file storage, one subject, one replica), first deleting
/// any stream of that name unless `--keep` was given.
async fn prepare_stream(js: &jetstream::Context, args: &Args) -> Result<(), async_nats::Error> {
    let config = stream::Config {
        name: args.stream.clone(),
        subjects: vec![match args.subjects {
            Some(_) => format!("{}.>", args.subject),
            None => args.subject.clone(),
        }],
        storage: stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    };
    if args.keep {
        js.get_or_create_stream(config).await?;
        return Ok(());
    }
    if js.get_stream(&args.stream).await.is_ok() {
        js.delete_stream(&args.stream).await?;
    }
    js.create_stream(config).await?;
    Ok(())
}
