//! `weir bench store` appends straight into the storage engine (no network)
//! from several writer threads and reports throughput and append latency.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use weir_storage::{AppendResult, AppendStatus, Message, Store, StoreConfig};

use super::FlushArg;
use crate::ack_log::{Ack, AckLog};
use crate::latency::{Percentiles, histogram};

/// Arguments of `weir bench store`.
#[derive(Debug, Args)]
pub struct StoreBenchArgs {
    /// Store directory (created if missing; appends go after existing data).
    #[arg(long)]
    data_dir: PathBuf,
    /// Messages to append.
    #[arg(long)]
    count: u64,
    /// Body size in bytes.
    #[arg(long)]
    size: usize,
    /// Topics to spread messages over (`bench-0`, `bench-1`, ...).
    #[arg(long, default_value_t = 1)]
    topics: u32,
    /// Queues per topic.
    #[arg(long, default_value_t = 4)]
    queues: u32,
    /// Concurrent writers: threads, or with `--async-writers` tasks.
    #[arg(long, default_value_t = 1)]
    writers: u32,
    /// Run the writers as async tasks on one thread, each awaiting its flush as a
    /// future (as the broker's sync sends do) instead of a blocked thread per writer.
    #[arg(long)]
    async_writers: bool,
    /// Messages per append call (a batch shares one lock and one flush).
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// Flush policy.
    #[arg(long, value_enum)]
    flush: FlushArg,
    /// CommitLog segment size in bytes (new stores only).
    #[arg(long, default_value_t = 1 << 30)]
    segment_size: u64,
    /// Largest accepted body in bytes (new stores only need segments of at least twice this).
    #[arg(long, default_value_t = 4 << 20)]
    max_message_size: usize,
    /// Write one JSON line per acknowledged message to FILE.
    #[arg(long, value_name = "FILE")]
    ack_log: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What one writer thread measured.
struct WriterResult {
    latencies: hdrhistogram::Histogram<u64>,
    appended: u64,
    flush_timeouts: u64,
    errors: u64,
    first_error: Option<String>,
}

/// One writer's messages, position and results.
struct Writer {
    index: u32,
    share: u64,
    sent: u64,
    batch: usize,
    /// Every (topic, queue) pair once, then wrapped around by a batch, so that any batch
    /// is a contiguous slice and the loop allocates nothing per message.
    templates: Vec<Message>,
    ack_log: Option<Arc<AckLog>>,
    result: WriterResult,
}

impl Writer {
    fn new(index: u32, args: &StoreBenchArgs, body: &bytes::Bytes, ack_log: Option<Arc<AckLog>>) -> Self {
        let writers = u64::from(args.writers);
        let share = args.count / writers + u64::from(u64::from(index) < args.count % writers);
        let (topics, batch) = (u64::from(args.topics), args.batch as usize);
        let pairs = topics * u64::from(args.queues);
        let templates = (0..pairs + batch as u64)
            .map(|i| {
                let seq = i % pairs;
                Message {
                    topic: format!("bench-{}", seq % topics),
                    queue_id: (seq / topics) as u32,
                    tag: "bench".into(),
                    keys: Vec::new(),
                    properties: Vec::new(),
                    body: body.clone(),
                    born_timestamp_ms: weir_storage::now_ms(),
                    born_host: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    flags: 0,
                }
            })
            .collect();
        let result =
            WriterResult { latencies: histogram(), appended: 0, flush_timeouts: 0, errors: 0, first_error: None };
        Writer { index, share, sent: 0, batch, templates, ack_log, result }
    }

    /// Where in `templates` the next batch to append lies, until the writer's share is sent.
    fn next_batch(&mut self) -> Option<std::ops::Range<usize>> {
        if self.sent >= self.share {
            return None;
        }
        let n = (self.batch as u64).min(self.share - self.sent) as usize;
        let pairs = (self.templates.len() - self.batch) as u64;
        let first = ((u64::from(self.index) * self.share + self.sent) % pairs) as usize;
        self.sent += n as u64;
        Some(first..first + n)
    }

    /// Records the append of the batch at `batch`, started at `t0`.
    fn record(
        &mut self,
        outcome: Result<Vec<AppendResult>, String>,
        batch: std::ops::Range<usize>,
        t0: Instant,
        done: &AtomicU64,
    ) {
        let micros = t0.elapsed().as_micros().max(1) as u64;
        let n = batch.len();
        match outcome {
            Ok(results) => {
                for (r, m) in results.iter().zip(&self.templates[batch]) {
                    let _ = self.result.latencies.record(micros);
                    self.result.appended += 1;
                    if r.status == AppendStatus::FlushDiskTimeout {
                        self.result.flush_timeouts += 1;
                        continue;
                    }
                    if let Some(log) = &self.ack_log {
                        let ack = Ack {
                            msg_id: r.msg_id.to_string(),
                            topic: m.topic.clone(),
                            queue_id: r.queue_id,
                            queue_offset: r.queue_offset,
                        };
                        if let Err(err) = log.record(&ack) {
                            self.result.first_error.get_or_insert(err.to_string());
                        }
                    }
                }
            }
            Err(err) => {
                self.result.errors += n as u64;
                self.result.first_error.get_or_insert(err);
            }
        }
        done.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Appends `messages` and, under sync flush, awaits their flush (`FlushDiskTimeout`
/// after `timeout`).
async fn append_durably(
    store: &Store,
    messages: &[Message],
    timeout: Option<Duration>,
) -> Result<Vec<AppendResult>, String> {
    let (mut results, durable) = store.append_batch_deferred(messages).map_err(|e| e.to_string())?;
    if let (Some(durable), Some(timeout)) = (durable, timeout) {
        match tokio::time::timeout(timeout, durable).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(why),
            Err(_) => results.iter_mut().for_each(|r| r.status = AppendStatus::FlushDiskTimeout),
        }
    }
    Ok(results)
}

/// Runs `weir bench store`.
pub fn run(args: StoreBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.writers > 0 && args.topics > 0 && args.queues > 0 && args.batch > 0,
        "--writers, --topics, --queues and --batch must be positive"
    );
    let config = StoreConfig {
        flush: args.flush.mode(),
        segment_size: args.segment_size,
        max_message_size: args.max_message_size,
        ..StoreConfig::new(&args.data_dir)
    };
    let store =
        Arc::new(Store::open(config).with_context(|| format!("cannot open store {}", args.data_dir.display()))?);
    let ack_log = args.ack_log.as_deref().map(AckLog::create).transpose()?.map(Arc::new);
    let body = bytes::Bytes::from((0..args.size).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>());
    let done = Arc::new(AtomicU64::new(0));
    let progress = crate::cmd::progress_bar(args.count, args.json);

    let started = Instant::now();
    let writer = |w: u32| Writer::new(w, &args, &body, ack_log.clone());
    let writers: Vec<std::thread::JoinHandle<Vec<WriterResult>>> = if args.async_writers {
        // Every writer a task on one thread, each waiting for its flush as a future.
        let mut tasks: Vec<Writer> = (0..args.writers).map(writer).collect();
        let timeout = match args.flush.mode() {
            weir_storage::FlushMode::Sync { timeout } => Some(timeout),
            weir_storage::FlushMode::Async { .. } => None,
        };
        let (store, done) = (store.clone(), done.clone());
        vec![std::thread::Builder::new().name("bench-writers".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
            runtime.block_on(async {
                let runs = tasks.drain(..).map(|mut w| {
                    let (store, done) = (store.clone(), done.clone());
                    tokio::spawn(async move {
                        while let Some(batch) = w.next_batch() {
                            let t0 = Instant::now();
                            let outcome = append_durably(&store, &w.templates[batch.clone()], timeout).await;
                            w.record(outcome, batch, t0, &done);
                        }
                        w.result
                    })
                });
                let handles: Vec<_> = runs.collect();
                let mut results = Vec::new();
                for handle in handles {
                    results.push(handle.await.expect("writer task"));
                }
                results
            })
        })?]
    } else {
        (0..args.writers)
            .map(|w| {
                let (store, done, mut w) = (store.clone(), done.clone(), writer(w));
                std::thread::Builder::new().name(format!("bench-writer-{}", w.index)).spawn(move || {
                    while let Some(batch) = w.next_batch() {
                        let t0 = Instant::now();
                        let outcome = store.append_batch(&w.templates[batch.clone()]).map_err(|e| e.to_string());
                        w.record(outcome, batch, t0, &done);
                    }
                    vec![w.result]
                })
            })
            .collect::<Result<_, _>>()?
    };

    while done.load(Ordering::Relaxed) < args.count && writers.iter().any(|w| !w.is_finished()) {
        progress.set_position(done.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut latencies = histogram();
    let (mut appended, mut flush_timeouts, mut errors, mut first_error) = (0, 0, 0, None);
    for r in writers
        .into_iter()
        .map(|w| w.join())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("a writer panicked"))?
        .into_iter()
        .flatten()
    {
        latencies.add(&r.latencies)?;
        appended += r.appended;
        flush_timeouts += r.flush_timeouts;
        errors += r.errors;
        first_error = first_error.or(r.first_error);
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let flushes = store.stats().flushes;
    store.close().context("closing the store")?;
    let per_flush = appended as f64 / flushes.max(1) as f64;

    let p = Percentiles::from(&latencies);
    let msgs_per_sec = appended as f64 / seconds;
    let mb_per_sec = msgs_per_sec * args.size as f64 / 1e6;
    let flush = match args.flush {
        FlushArg::Async => "async",
        FlushArg::Sync => "sync",
    };
    if args.json {
        let summary = serde_json::json!({
            "appended": appended, "errors": errors, "flush_timeouts": flush_timeouts, "seconds": seconds,
            "msgs_per_sec": msgs_per_sec, "mb_per_sec": mb_per_sec,
            "p50_us": p.p50, "p99_us": p.p99, "p999_us": p.p999, "max_us": p.max,
            "size": args.size, "writers": args.writers, "batch": args.batch, "flush": flush,
            "flushes": flushes, "msgs_per_flush": per_flush,
        });
        println!("{summary}");
    } else {
        println!(
            "appended {appended} messages of {} B in {seconds:.2} s with {} writer(s), {flush} flush",
            args.size, args.writers
        );
        println!("  {:<14}{:>14.0}", "msgs/s", msgs_per_sec);
        println!("  {:<14}{:>14.1}", "MB/s", mb_per_sec);
        println!("  {:<14}{:>11} µs", "p50 latency", p.p50);
        println!("  {:<14}{:>11} µs", "p99 latency", p.p99);
        println!("  {:<14}{:>11} µs", "p99.9 latency", p.p999);
        println!("  {:<14}{:>14}", "flushes", flushes);
        println!("  {:<14}{:>14.1}", "msgs/flush", per_flush);
        println!("  {:<14}{:>14}", "flush timeouts", flush_timeouts);
        println!("  {:<14}{:>14}", "errors", errors);
    }
    if let Some(err) = first_error {
        eprintln!("error: {errors} append(s) failed; first error: {err}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
