//! `weir bench`: load generators for the storage engine, the broker and the transport.

pub mod connections;
pub mod consume;
pub mod delay;
mod memory;
pub mod produce;
mod raw;
pub mod rebalance;
pub mod retry;
pub mod soak;
pub mod store;
pub mod transport;
mod vary;

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use weir_storage::FlushMode;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append straight into the storage engine and measure throughput and latency.
    Store(store::StoreBenchArgs),
    /// Send messages to a broker with acknowledgements and measure throughput and latency.
    Produce(produce::ProduceArgs),
    /// Drain messages from a broker and measure throughput.
    Consume(consume::ConsumeArgs),
    /// How late delayed messages arrive: N due over one window (lateness percentiles).
    Delay(delay::DelayArgs),
    /// The retry path: failures per second the broker turns into retry copies, next to
    /// plain sends in the same run.
    Retry(retry::RetryArgs),
    /// Time a consumer group's rebalances (join, leave, kill) on an embedded broker.
    Rebalance(rebalance::RebalanceArgs),
    /// Measure the QUIC transport's own bulk-transfer limit on loopback.
    Transport(transport::TransportArgs),
    /// Many connections send random valid and invalid requests for a while; the broker must
    /// stay up, answer status within 1 s and deliver every acknowledged message.
    Soak(soak::SoakArgs),
    /// What an idle connection and a held long poll cost the broker in memory.
    Connections(connections::ConnectionsArgs),
}

/// Flush policy named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushArg {
    /// Acknowledge after the page cache; flush in the background.
    Async,
    /// Acknowledge after fsync, with group commit.
    Sync,
}

impl FlushArg {
    /// The storage flush mode with default interval/timeout.
    pub fn mode(self) -> FlushMode {
        match self {
            FlushArg::Async => FlushMode::ASYNC,
            FlushArg::Sync => FlushMode::SYNC,
        }
    }
}

/// The load generator's async runtime, shared by the broker benchmarks.
#[derive(Debug, Clone, Copy, Args)]
pub struct LoadThreads {
    /// Worker threads of the load generator's async runtime. The benchmark drives one
    /// QUIC connection, whose state a single task advances at a time, so more threads
    /// mostly add cross-thread wake-ups; on a machine shared with the broker they also
    /// take its cores (2 cores, 16 in flight: 56-57k acked sends/s with 2 threads,
    /// 77-81k with 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
}

impl LoadThreads {
    /// Runs `future` to completion on a runtime with this many worker threads.
    pub fn block_on(self, future: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
        use anyhow::Context as _;
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads.into())
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(future)
    }
}

/// Prints a progress line per second on stderr (elapsed, `done()`/`count`, rate)
/// until the returned task is aborted.
pub fn report_progress(count: u64, done: impl Fn() -> u64 + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.tick().await;
        let mut last = 0;
        loop {
            tick.tick().await;
            let now = done();
            eprintln!("{:>6.1} s  {now}/{count}  {} msgs/s", started.elapsed().as_secs_f64(), now - last);
            last = now;
        }
    })
}

/// Runs a benchmark.
pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Store(args) => store::run(args),
        BenchCommand::Produce(args) => args.threads.block_on(produce::run(args)),
        BenchCommand::Consume(args) => args.threads.block_on(consume::run(args)),
        BenchCommand::Delay(args) => args.threads.block_on(delay::run(args)),
        BenchCommand::Retry(args) => args.threads.block_on(retry::run(args)),
        BenchCommand::Rebalance(args) => LoadThreads { threads: 2 }.block_on(rebalance::run(args)),
        BenchCommand::Transport(args) => crate::cmd::block_on(transport::run(args)),
        BenchCommand::Soak(args) => args.threads.block_on(soak::run(args)),
        BenchCommand::Connections(args) => args.threads.block_on(connections::run(args)),
    }
}
