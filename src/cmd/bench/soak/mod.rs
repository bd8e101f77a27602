//! `weir bench soak`: many connections send a random mix of valid and invalid requests to
//! a broker for a bounded time; the broker must stay up, answer `weir status` within 1 s
//! throughout, keep its memory bounded, and deliver every message it acknowledged.
//!
//! - `traffic`: the request mix (sans I/O): valid requests, requests that must be refused,
//!   bad frames and streams given up halfway.
//! - `connection`: connection slots: connections opened, used by a few lanes of requests,
//!   and ended gracefully, abruptly, or by going silent; every answer judged.
//! - `tally`: counters and problems.
//! - `watch`: the status probe and the memory samples.
//!
//! Afterwards every checked queue is read from where it stood before the run, and every
//! message acknowledged with `SEND_OK` must be found at its queue offset with its body.
//! Every random choice derives from `--seed`, printed at the start, so a run's mix replays.

mod connection;
mod tally;
mod traffic;
mod watch;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use parking_lot::Mutex;
use tokio::time::Instant;
use weir_protocol::{FilterExpression, PullRequest, PullStatus, Request, Response};

use self::connection::Shared;
use self::tally::{Problem, Tally};
use self::traffic::{Acked, Names, Rng};
use self::watch::{MemoryWatch, Probes, StatusProbe};
use super::memory::{self, Memory, mib};
use super::raw::{self, Dialer, Exchange};
use crate::cmd::BrokerAddr;

/// The status bound the issue sets: `weir status` answers within 1 s under load.
const STATUS_BOUND: Duration = Duration::from_secs(1);

/// Arguments of `weir bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Connections open at once; each is replaced by a new one when it ends.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// How long the load lasts, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    duration: u64,
    /// Seed of every random choice [default: from the clock; printed for replay].
    #[arg(long)]
    seed: Option<u64>,
    /// Prefix of the soak's topics (`<topic>-0` …) and groups.
    #[arg(long, default_value = "soak")]
    topic: String,
    /// Topics whose acknowledged messages are checked (created if missing).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1000))]
    topics: u32,
    /// Queues of each of those topics.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    queues: u32,
    /// The broker's process id: its memory (`/proc/<pid>/status`) is sampled every second
    /// and its death noticed.
    #[arg(long, value_name = "PID")]
    broker_pid: Option<u32>,
    /// How often to probe `weir status` on a fresh connection, in ms.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..))]
    status_interval_ms: u64,
    /// Fail when the broker's anonymous memory grows by more than this many MiB over the
    /// second half of the run (a leak grows steadily; warming up does not).
    #[arg(long, value_name = "MIB", requires = "broker_pid")]
    max_rss_growth_mib: Option<u64>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
    #[command(flatten)]
    pub threads: super::LoadThreads,
}

/// Where the acknowledged messages were found afterwards.
#[derive(Debug, Default)]
struct Delivery {
    delivered: u64,
    missing: u64,
    first_missing: Vec<String>,
}

/// The broker's memory over the run: first, middle, last and peak samples.
#[derive(Debug, Clone, Copy)]
struct MemoryFigures {
    start: Memory,
    mid: Memory,
    end: Memory,
    peak: Memory,
}

impl MemoryFigures {
    fn from_samples(samples: &[(Duration, Memory)], duration: Duration) -> Option<Self> {
        let (first, last) = (samples.first()?.1, samples.last()?.1);
        let mid = samples.iter().find(|(at, _)| *at >= duration / 2).map_or(last, |s| s.1);
        let peak = samples
            .iter()
            .fold(Memory::default(), |p, (_, m)| Memory { rss: p.rss.max(m.rss), anon: p.anon.max(m.anon) });
        Some(MemoryFigures { start: first, mid, end: last, peak })
    }

    /// Growth of anonymous memory over the second half of the run.
    fn late_growth(&self) -> u64 {
        self.end.anon.saturating_sub(self.mid.anon)
    }
}

/// Runs `weir bench soak`.
pub async fn run(args: SoakArgs) -> anyhow::Result<ExitCode> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "soak: seed {seed}, {} connections for {} s, topics {}-0..{} with {} queues",
        args.connections,
        args.duration,
        args.topic,
        args.topics - 1,
        args.queues
    );
    let names = Arc::new(Names::new(&args.topic, args.topics, args.queues));
    let client = args.broker.connect().await?;
    super::produce::create_missing_topics(&client, &names.topics, args.queues).await?;
    let mut starts = Vec::new();
    for topic in &names.topics {
        let mut ends = Vec::new();
        for queue in 0..args.queues {
            ends.push(client.queue_offsets(topic, queue).await.with_context(|| format!("offsets of {topic}"))?.end);
        }
        starts.push(ends);
    }
    client.close().await;

    let shared = Arc::new(Shared {
        names: names.clone(),
        tally: Tally::default(),
        acked: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
        dialer: Dialer::new(args.broker.config()).await?,
    });
    let memory_watch = args.broker_pid.map(MemoryWatch::start).transpose()?;
    let probe = StatusProbe::start(args.broker.config(), Duration::from_millis(args.status_interval_ms))?;
    let duration = Duration::from_secs(args.duration);
    let started = Instant::now();
    let deadline = started + duration;
    let mut root = Rng::new(seed);
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..args.connections {
        slots.spawn(connection::run_slot(shared.clone(), slot, root.fork(slot.into()), deadline));
    }
    let progress = report_progress(shared.clone(), args.broker_pid);
    let finished = async {
        while let Some(joined) = slots.join_next().await {
            joined.context("a connection slot failed")?;
        }
        anyhow::Ok(())
    };
    // A broker that dies ends the run at once: nothing more can be learned from it.
    let died = async {
        match args.broker_pid {
            Some(pid) => {
                while memory::alive(pid) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            None => std::future::pending().await,
        }
    };
    let mut alive = true;
    tokio::select! {
        finished = finished => finished?,
        () = died => alive = false,
    }
    slots.abort_all();
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();
    let probes = probe.finish();
    let samples = memory_watch.map(MemoryWatch::finish).unwrap_or_default();
    let memory = MemoryFigures::from_samples(&samples, duration);
    alive &= args.broker_pid.is_none_or(memory::alive);

    let acked = std::mem::take(&mut *shared.acked.lock());
    let delivery = if alive {
        match shared.dialer.connect().await {
            Ok(conn) => {
                let delivery = verify(&conn, &names, &starts, acked).await;
                conn.close(0u32.into(), b"soak: verified");
                delivery
            }
            Err(err) => Err(err.context("connecting to read the acknowledged messages back")),
        }
    } else {
        Err(anyhow::anyhow!("the broker is gone"))
    };

    let tally = &shared.tally;
    let mut failures = Vec::new();
    if !alive {
        failures.push("the broker process died".to_owned());
    }
    let delivery = delivery.unwrap_or_else(|err| {
        failures.push(format!("the acknowledged messages could not be read back: {err:#}"));
        Delivery::default()
    });
    if delivery.missing > 0 {
        failures.push(format!(
            "{} acknowledged message(s) not delivered, first: {}",
            delivery.missing,
            delivery.first_missing.join(", ")
        ));
    }
    if Tally::get(&tally.acked) == 0 {
        failures.push("the broker acknowledged no message".to_owned());
    }
    if probes.failures > 0 {
        failures.push(format!(
            "{} of {} status probes failed, first: {}",
            probes.failures,
            probes.count,
            probes.first_failure.as_deref().unwrap_or("?")
        ));
    }
    if probes.worst() > STATUS_BOUND {
        failures.push(format!("status took {:.0} ms at worst (bound: 1 s)", ms(probes.worst())));
    }
    for problem in Problem::ALL {
        let n = tally.problems(problem);
        if n > 0 {
            failures.push(format!("{n} {}", problem.name()));
        }
    }
    if let (Some(memory), Some(limit)) = (memory, args.max_rss_growth_mib)
        && memory.late_growth() > limit << 20
    {
        failures.push(format!(
            "anonymous memory grew by {:.1} MiB over the second half of the run (limit {limit} MiB)",
            mib(memory.late_growth())
        ));
    }
    let report = Report { seed, args: &args, seconds, tally, probes: &probes, memory, alive, delivery: &delivery };
    report.print(args.json, &failures);
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for failure in &failures {
            eprintln!("soak failed: {failure}");
        }
        for detail in tally.details() {
            eprintln!("  {detail}");
        }
        eprintln!("replay with --seed {seed}");
        Ok(ExitCode::FAILURE)
    }
}

/// Reads every checked queue from where it stood before the run and finds each
/// acknowledged message at its offset, with its body.
async fn verify(
    conn: &quinn::Connection,
    names: &Names,
    starts: &[Vec<u64>],
    mut acked: Vec<Acked>,
) -> anyhow::Result<Delivery> {
    acked.sort_unstable();
    let mut delivery = Delivery::default();
    let missed = |delivery: &mut Delivery, a: &Acked, why: &str| {
        delivery.missing += 1;
        if delivery.first_missing.len() < 10 {
            let topic = &names.topics[usize::from(a.topic)];
            delivery.first_missing.push(format!("{topic}/{}@{} ({why})", a.queue_id, a.queue_offset));
        }
    };
    let mut rest = &acked[..];
    for (t, topic) in names.topics.iter().enumerate() {
        for queue_id in 0..names.queues {
            let here = rest.iter().take_while(|a| usize::from(a.topic) == t && a.queue_id == queue_id).count();
            let (wanted, later) = rest.split_at(here);
            rest = later;
            let mut wanted = wanted.iter().peekable();
            let mut offset = starts[t][queue_id as usize];
            loop {
                let request = Request::Pull(PullRequest {
                    consumer_group: String::new(),
                    topic: topic.clone(),
                    queue_id,
                    offset,
                    max_messages: 1024,
                    max_wait_ms: 0,
                    filter: FilterExpression::All,
                    member: None,
                });
                let page = match raw::call(conn, &request, Duration::from_secs(30)).await {
                    Exchange::Answered(Response::Pull(page)) => page,
                    other => anyhow::bail!("pulling {topic}/{queue_id}@{offset}: {other:?}"),
                };
                for m in &page.messages {
                    while let Some(a) = wanted.next_if(|a| a.queue_offset < m.queue_offset) {
                        missed(&mut delivery, a, "no message at its offset");
                    }
                    if let Some(a) = wanted.next_if(|a| a.queue_offset == m.queue_offset) {
                        if traffic::body_id(&m.body) == Some(a.id) {
                            delivery.delivered += 1;
                        } else {
                            missed(&mut delivery, a, "another message at its offset");
                        }
                    }
                }
                let done = matches!(page.status, PullStatus::NoNewMessage | PullStatus::OffsetIllegal);
                if done || (page.messages.is_empty() && page.next_offset <= offset) {
                    break;
                }
                offset = page.next_offset;
            }
            for a in wanted {
                missed(&mut delivery, a, "past the queue's end");
            }
        }
    }
    Ok(delivery)
}

/// Prints a progress line on stderr every 10 s until aborted.
fn report_progress(shared: Arc<Shared>, pid: Option<u32>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tick.tick().await;
            let tally = &shared.tally;
            let memory = pid.and_then(|pid| Memory::of(pid).ok());
            let memory = memory.map_or_else(String::new, |m| format!(", broker {:.0} MiB anonymous", mib(m.anon)));
            eprintln!(
                "{:>6.0} s  {} requests, {} acked, {} connections{memory}",
                started.elapsed().as_secs_f64(),
                Tally::get(&tally.requests),
                Tally::get(&tally.acked),
                Tally::get(&tally.connections),
            );
        }
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A run's outcome, for printing.
struct Report<'a> {
    seed: u64,
    args: &'a SoakArgs,
    seconds: f64,
    tally: &'a Tally,
    probes: &'a Probes,
    memory: Option<MemoryFigures>,
    alive: bool,
    delivery: &'a Delivery,
}

impl Report<'_> {
    fn print(&self, json: bool, failures: &[String]) {
        let t = self.tally;
        let [answered, refused, dropped] = t.outcomes();
        if json {
            let mut out = serde_json::json!({
                "seed": self.seed, "connections": self.args.connections, "seconds": self.seconds,
                "requests": Tally::get(&t.requests), "answered": answered, "refused": refused, "dropped": dropped,
                "sent": Tally::get(&t.sent), "acked": Tally::get(&t.acked),
                "delivered": self.delivery.delivered, "missing": self.delivery.missing,
                "connections_opened": Tally::get(&t.connections), "closed": Tally::get(&t.closed),
                "closed_abruptly": Tally::get(&t.closed_abruptly), "vanished": Tally::get(&t.vanished),
                "idle_connections": Tally::get(&t.idle),
                "status_probes": self.probes.count, "status_failures": self.probes.failures,
                "status_p50_ms": ms(self.probes.median()), "status_worst_ms": ms(self.probes.worst()),
                "broker_alive": self.alive, "ok": failures.is_empty(), "failures": failures,
                "problem_details": t.details(), "by_kind": t.by_label_json(), "refusals": t.codes_json(),
            });
            for problem in Problem::ALL {
                out[problem.name()] = t.problems(problem).into();
            }
            if let Some(m) = self.memory {
                for (name, memory) in [("start", m.start), ("mid", m.mid), ("end", m.end), ("peak", m.peak)] {
                    out[format!("rss_{name}_mib")] = mib(memory.rss).into();
                    out[format!("anon_{name}_mib")] = mib(memory.anon).into();
                }
            }
            println!("{out}");
        } else {
            println!(
                "soak: {} connections for {:.1} s (seed {}): {} requests ({answered} answered, {refused} refused, {dropped} dropped)",
                self.args.connections,
                self.seconds,
                self.seed,
                Tally::get(&t.requests)
            );
            println!(
                "  messages   {} sent, {} acked, {} delivered, {} missing",
                Tally::get(&t.sent),
                Tally::get(&t.acked),
                self.delivery.delivered,
                self.delivery.missing
            );
            println!(
                "  connections {} opened: {} closed, {} closed abruptly, {} vanished, {} idle",
                Tally::get(&t.connections),
                Tally::get(&t.closed),
                Tally::get(&t.closed_abruptly),
                Tally::get(&t.vanished),
                Tally::get(&t.idle)
            );
            println!(
                "  status     {} probes, {} failed, median {:.1} ms, worst {:.1} ms",
                self.probes.count,
                self.probes.failures,
                ms(self.probes.median()),
                ms(self.probes.worst())
            );
            if let Some(m) = self.memory {
                println!(
                    "  memory     anonymous {:.1} MiB at start, {:.1} mid-run, {:.1} at the end, {:.1} peak; resident {:.1} → {:.1} MiB",
                    mib(m.start.anon),
                    mib(m.mid.anon),
                    mib(m.end.anon),
                    mib(m.peak.anon),
                    mib(m.start.rss),
                    mib(m.end.rss)
                );
            }
            println!("  broker     {}", if self.alive { "alive" } else { "DIED" });
            println!("  {}", if failures.is_empty() { "ok" } else { "FAILED" });
        }
    }
}
