//! `weir-nats-bench`: the NATS JetStream side of Weir's peer comparison.
//!
//! Two commands mirror `weir bench produce` and `weir bench consume`:
//!
//! * `publish` sends N messages of a fixed size to a file-backed stream, keeping
//!   C publishes in flight, and waits for every PubAck (publish→ack latency is
//!   recorded per message);
//! * `consume` drains a backlog of N messages through a durable pull consumer.
//!
//! Both print a progress line per second on stderr and a summary on stdout;
//! with `--json` the summary is a single JSON object whose field names match
//! `weir bench` so the two can be put side by side by a script.

mod consume;
mod progress;
mod publish;
mod stats;

use clap::{Parser, Subcommand};

/// The allocator `weir` uses, so both load generators run on the same one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Default server address: a local `nats-server -js`.
const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

#[derive(Parser)]
#[command(version, about = "NATS JetStream publish/consume benchmark (peer for `weir bench`)")]
struct Cli {
    /// Worker threads of the async runtime, as `weir bench --threads` (default 1 in
    /// both): the client drives one connection, and on a machine shared with the
    /// server more threads take its cores.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish N messages with acks and report throughput and publish→ack latency.
    Publish(publish::Args),
    /// Drain N messages from a stream with a durable pull consumer.
    Consume(consume::Args),
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.into()).enable_all().build();
    let runtime = runtime.unwrap_or_else(|err| {
        eprintln!("error: starting the async runtime: {err}");
        std::process::exit(1);
    });
    let result = runtime.block_on(async {
        match cli.command {
            Command::Publish(args) => publish::run(args).await,
            Command::Consume(args) => consume::run(args).await,
        }
    });
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}
