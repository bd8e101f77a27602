//! `weir bench produce`: acknowledged sends to a broker, `--concurrency` in
//! flight, with throughput and latency percentiles; over one topic or, with
//! `--topics N`, round-robin over N topics.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use parking_lot::Mutex;
use weir_client::{Client, DelayedDelivery, Error as ClientError, Producer};
use weir_protocol::{ErrorCode, Message, TopicConfig, TopicPermissions};

use super::vary::{PropertyTemplate, Variation};
use crate::ack_log::{Ack, AckLog};
use crate::cmd::BrokerAddr;
use crate::latency::{Percentiles, histogram};

/// Arguments of `weir bench produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic (created with `--queues` queues if missing); with `--topics K`, the prefix
    /// of the K topics `<topic>-0` … `<topic>-<K-1>`.
    #[arg(long)]
    topic: String,
    /// Spread the messages round-robin over K topics (message i to `<topic>-<i % K>`),
    /// creating those missing; 1 sends to `--topic` itself.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    topics: u32,
    /// Read and write queues of each topic the benchmark creates.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    queues: u32,
    /// Messages to send.
    #[arg(long)]
    count: u64,
    /// Body size in bytes.
    #[arg(long)]
    size: usize,
    /// Sends in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: u32,
    /// Messages per send request.
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// User properties: `k=v,k2=v2`; `%N` in a value is the message's index in the run
    /// modulo N (`region=r%100` gives r0..r99), `%%` a literal `%`.
    #[arg(long, value_delimiter = ',', value_parser = PropertyTemplate::parse)]
    props: Vec<PropertyTemplate>,
    /// Tags cycled through, one per message: `TagA,TagB,TagC`.
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Send every message delayed by this much (`500ms`, `30s`, `2m`…): the delayed
    /// produce path (stored in the timer topic, filed in the timer).
    #[arg(long, value_parser = crate::cmd::send::parse_delay)]
    delay: Option<std::time::Duration>,
    /// Mark every N-th message as shadow (stress-test) traffic (property `shadow=true`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    shadow_every: Option<u64>,
    /// Write one JSON line per acknowledged message to FILE.
    #[arg(long, value_name = "FILE")]
    ack_log: Option<PathBuf>,
    /// Print the summary as one JSON object (last line).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
    #[command(flatten)]
    pub threads: super::LoadThreads,
}

/// Totals shared by the sender tasks.
#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Runs `weir bench produce`.
pub async fn run(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.concurrency > 0 && args.batch > 0, "--concurrency and --batch must be positive");
    let client = args.broker.connect().await?;
    let names = topic_names(&args.topic, args.topics);
    create_missing_topics(&client, &names, args.queues).await?;
    let producer = Arc::new(Producer::new(client.clone()));
    let flushes_before = client.status().await?.flushes;
    let ack_log = args.ack_log.as_deref().map(AckLog::create).transpose()?.map(Arc::new);
    // One template per topic: message i is a copy of `templates[i % N]`.
    let body = weir_client::Bytes::from(vec![b'x'; args.size]);
    let templates: Arc<[Message]> = names.iter().map(|name| Message::new(name.clone(), body.clone())).collect();
    let variation =
        Arc::new(Variation { props: args.props.clone(), tags: args.tags.clone(), shadow_every: args.shadow_every });
    let totals = Arc::new(Totals::default());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (producer, ack_log, templates, totals, next, variation) =
            (producer.clone(), ack_log.clone(), templates.clone(), totals.clone(), next.clone(), variation.clone());
        let (count, batch, delay) = (args.count, u64::from(args.batch), args.delay);
        tasks.spawn(async move {
            let mut latencies = histogram();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= count {
                    return latencies;
                }
                let n = batch.min(count - first) as usize;
                let mut messages: Vec<Message> = (first..first + n as u64)
                    .map(|index| {
                        let mut m = templates[(index % templates.len() as u64) as usize].clone();
                        variation.apply(&mut m, index);
                        match delay {
                            Some(delay) => m.with_delay(delay),
                            None => m,
                        }
                    })
                    .collect();
                let t0 = Instant::now();
                let outcome = if n == 1 {
                    producer.send(messages.pop().expect("one message")).await.map(|r| vec![r])
                } else {
                    producer.send_batch(messages).await
                };
                let micros = t0.elapsed().as_micros().max(1) as u64;
                match outcome {
                    Ok(results) => {
                        for (index, r) in (first..).zip(&results) {
                            let _ = latencies.record(micros);
                            if let Some(log) = &ack_log {
                                let ack = Ack {
                                    msg_id: r.msg_id.clone(),
                                    topic: templates[(index % templates.len() as u64) as usize].topic.clone(),
                                    queue_id: r.queue_id,
                                    queue_offset: r.queue_offset,
                                };
                                if let Err(err) = log.record(&ack) {
                                    totals.first_error.lock().get_or_insert(err.to_string());
                                }
                            }
                        }
                        totals.sent.fetch_add(results.len() as u64, Ordering::Relaxed);
                    }
                    Err(err) => record_error(&totals, n as u64, &err),
                }
            }
        });
    }
    let progress = {
        let totals = totals.clone();
        super::report_progress(args.count, move || {
            totals.sent.load(Ordering::Relaxed) + totals.errors.load(Ordering::Relaxed)
        })
    };
    let mut latencies = histogram();
    while let Some(joined) = tasks.join_next().await {
        latencies.add(&joined?)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();
    producer.close().await;
    let flushes = client.status().await?.flushes.saturating_sub(flushes_before);
    client.close().await;
    let sent = totals.sent.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    let latency = Percentiles::from(&latencies);
    let summary = Summary { key: "sent", done: sent, errors, seconds, size: args.size, latency, filter: None };
    // Messages per CommitLog fsync: what group commit achieved (sync flush), or how
    // rarely the flusher ran (async).
    let per_flush = (sent as f64 / flushes.max(1) as f64 * 10.0).round() / 10.0;
    let figures = [("topics", args.topics.into()), ("flushes", flushes.into()), ("msgs_per_flush", per_flush.into())];
    print_summary_with(summary, &figures, args.json);
    if let Some(err) = totals.first_error.lock().take() {
        eprintln!("error: {errors} message(s) failed; first error: {err}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The topics of a run: `--topic` itself, or `<topic>-0` … `<topic>-<N-1>`.
fn topic_names(topic: &str, topics: u32) -> Vec<String> {
    if topics == 1 { vec![topic.to_owned()] } else { (0..topics).map(|i| format!("{topic}-{i}")).collect() }
}

/// Topic creations in flight at once, so that 10 000 topics take seconds, not minutes,
/// without flooding the broker.
const CREATES_IN_FLIGHT: usize = 16;

/// Creates each topic of `names` with `queues` read and write queues; one that exists
/// already is left as it is.
pub(super) async fn create_missing_topics(client: &Client, names: &[String], queues: u32) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut pending = names.iter().cloned();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut created = 0usize;
    loop {
        while in_flight.len() < CREATES_IN_FLIGHT
            && let Some(name) = pending.next()
        {
            let client = client.clone();
            in_flight.spawn(async move {
                let topic = TopicConfig {
                    name: name.clone(),
                    read_queues: queues,
                    write_queues: queues,
                    permissions: TopicPermissions::READ_WRITE,
                };
                match client.create_topic(topic).await {
                    Ok(_) => Ok(true),
                    Err(err) if err.code() == Some(ErrorCode::TopicExists) => Ok(false),
                    Err(err) => Err(err).with_context(|| format!("creating topic {name}")),
                }
            });
        }
        match in_flight.join_next().await {
            Some(joined) => created += usize::from(joined??),
            None => break,
        }
    }
    if names.len() > 1 {
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("{} topics: {created} created, {} existed ({seconds:.2} s)", names.len(), names.len() - created);
    }
    Ok(())
}

fn record_error(totals: &Totals, n: u64, err: &ClientError) {
    totals.errors.fetch_add(n, Ordering::Relaxed);
    totals.first_error.lock().get_or_insert(err.to_string());
}

/// A network benchmark's outcome.
pub struct Summary<'a> {
    /// `sent` or `received`.
    pub key: &'a str,
    /// Messages sent or received.
    pub done: u64,
    /// Failed messages.
    pub errors: u64,
    /// Wall time.
    pub seconds: f64,
    /// Body size in bytes.
    pub size: usize,
    /// Latency percentiles.
    pub latency: Percentiles,
    /// The consumer group's filter statistics, if any.
    pub filter: Option<serde_json::Value>,
}

/// Prints a benchmark summary: a table, or one JSON object with `key` (`sent`/`received`),
/// `errors`, `seconds`, `msgs_per_sec`, `mb_per_sec`, `p50_ms`, `p99_ms`, `p999_ms`, and
/// `filter` when given.
pub fn print_summary(summary: Summary<'_>, json: bool) {
    print_summary_with(summary, &[], json);
}

/// [`print_summary`] with more figures: each a JSON field, or a table row after the first line.
pub fn print_summary_with(summary: Summary<'_>, counts: &[(&str, serde_json::Value)], json: bool) {
    let Summary { key, done, errors, seconds, size, latency: p, filter } = summary;
    let msgs_per_sec = done as f64 / seconds;
    let mb_per_sec = msgs_per_sec * size as f64 / 1e6;
    let ms = |us: u64| us as f64 / 1000.0;
    if json {
        let mut out = serde_json::json!({
            "errors": errors, "seconds": seconds, "msgs_per_sec": msgs_per_sec, "mb_per_sec": mb_per_sec,
            "p50_ms": ms(p.p50), "p99_ms": ms(p.p99), "p999_ms": ms(p.p999), "max_ms": ms(p.max), "size": size,
        });
        out[key] = done.into();
        for (name, count) in counts {
            out[*name] = count.clone();
        }
        if let Some(filter) = filter {
            out["filter"] = filter;
        }
        println!("{out}");
    } else {
        println!("{key} {done} messages of {size} B in {seconds:.2} s ({errors} errors)");
        for (name, count) in counts {
            println!("  {name:<10}{:>12}", count.to_string());
        }
        println!("  {:<10}{:>12.0}", "msgs/s", msgs_per_sec);
        println!("  {:<10}{:>12.1}", "MB/s", mb_per_sec);
        println!("  {:<10}{:>9.3} ms", "p50", ms(p.p50));
        println!("  {:<10}{:>9.3} ms", "p99", ms(p.p99));
        println!("  {:<10}{:>9.3} ms", "p99.9", ms(p.p999));
    }
}
