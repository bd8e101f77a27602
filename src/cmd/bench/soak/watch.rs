//! Watching the broker while the soak runs: `weir status` on a fresh connection at a
//! steady pace (on a thread of its own, so the load generator's backlog never delays a
//! probe), and the broker process's resident memory once a second.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use weir_client::{Client, ClientConfig};

use crate::cmd::bench::memory::Memory;

/// Longest a status probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the status probes saw.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    /// Probes made.
    pub count: u64,
    /// Probes that got no status (no connection, an error, or not within 10 s).
    pub failures: u64,
    /// Latencies of the answered probes: a new connection's handshake plus the request.
    pub latencies: Vec<Duration>,
    /// The first failure.
    pub first_failure: Option<String>,
}

impl Probes {
    /// The slowest answered probe.
    pub fn worst(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }

    /// The median answered probe.
    pub fn median(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

/// Probes the broker's status on a fresh connection every `every`, as `weir status` does.
#[derive(Debug)]
pub struct StatusProbe {
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<(Probes, Option<Instant>)>>,
    thread: std::thread::JoinHandle<()>,
}

impl StatusProbe {
    /// Starts probing the broker `config` names.
    pub fn start(config: ClientConfig, every: Duration) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        // The probes so far, and when the one in flight started.
        let state: Arc<Mutex<(Probes, Option<Instant>)>> = Arc::default();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stopped, shared) = (stop.clone(), state.clone());
        let thread = std::thread::Builder::new().name("weir-status-probe".into()).spawn(move || {
            runtime.block_on(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                while !stopped.load(Ordering::Relaxed) {
                    tick.tick().await;
                    shared.lock().1 = Some(Instant::now());
                    let outcome = probe(config.clone()).await;
                    let mut state = shared.lock();
                    let (probes, in_flight) = &mut *state;
                    *in_flight = None;
                    probes.count += 1;
                    match outcome {
                        Ok(latency) => probes.latencies.push(latency),
                        Err(err) => {
                            probes.failures += 1;
                            tracing::warn!(%err, "status probe failed");
                            probes.first_failure.get_or_insert(err);
                        }
                    }
                }
            })
        })?;
        Ok(StatusProbe { stop, state, thread })
    }

    /// Stops probing and returns what was seen. A probe still in flight is waited for
    /// up to `LAST_PROBE_WAIT`; if it has not been answered then, it counts as failed.
    pub fn finish(self) -> Probes {
        const LAST_PROBE_WAIT: Duration = Duration::from_secs(2);
        self.stop.store(true, Ordering::Relaxed);
        let waited = Instant::now();
        while !self.thread.is_finished() && waited.elapsed() < LAST_PROBE_WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (mut probes, in_flight) = self.state.lock().clone();
        if let Some(since) = in_flight {
            probes.count += 1;
            probes.failures += 1;
            probes.first_failure.get_or_insert(format!("no status after {:?}", since.elapsed()));
        }
        probes
    }
}

/// One probe: connect, ask for the status; the latency excludes closing.
async fn probe(config: ClientConfig) -> Result<Duration, String> {
    let started = Instant::now();
    let asked = async {
        let client = Client::connect(config).await.map_err(|err| format!("connect: {err}"))?;
        let status = client.status().await.map_err(|err| format!("status: {err}"));
        let latency = started.elapsed();
        let _ = tokio::time::timeout(Duration::from_secs(1), client.close()).await;
        status.map(|_| latency)
    };
    tokio::time::timeout(PROBE_TIMEOUT, asked)
        .await
        .unwrap_or_else(|_| Err(format!("no status within {PROBE_TIMEOUT:?}")))
}

/// The broker's memory sampled once a second.
#[derive(Debug)]
pub struct MemoryWatch {
    pid: u32,
    started: Instant,
    samples: Arc<Mutex<Vec<(Duration, Memory)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MemoryWatch {
    /// Starts sampling process `pid`, with a first sample now.
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        let first = Memory::of(pid)?;
        let samples = Arc::new(Mutex::new(vec![(Duration::ZERO, first)]));
        let started = Instant::now();
        let task = {
            let samples = samples.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match Memory::of(pid) {
                        Ok(memory) => samples.lock().push((started.elapsed(), memory)),
                        Err(_) => return,
                    }
                }
            })
        };
        Ok(MemoryWatch { pid, started, samples, task })
    }

    /// Stops sampling, with a last sample now (if the process still runs).
    pub fn finish(self) -> Vec<(Duration, Memory)> {
        self.task.abort();
        let mut samples = std::mem::take(&mut *self.samples.lock());
        if let Ok(last) = Memory::of(self.pid) {
            samples.push((self.started.elapsed(), last));
        }
        samples
    }
}
