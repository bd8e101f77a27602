//! `weir`: the single binary operators run.
//!
//! Every command prints a short human summary by default and one JSON object
//! per line with `--json`. Usage errors exit with status 2, failed checks and
//! runtime errors with 1.

mod ack_log;
mod cmd;
mod latency;
mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: per-thread free lists and retained pages. glibc's malloc returned each
/// pull page (a few hundred KiB) to the kernel and faulted it in again for the next.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Weir: a persistent message broker with filtering at the broker.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker in the foreground until SIGINT/SIGTERM.
    Broker(cmd::broker::BrokerArgs),
    /// Run a short, visible demonstration in a temporary directory.
    Demo(cmd::demo::DemoArgs),
    /// Load generators.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Offline tools for a store's data directory.
    #[command(subcommand)]
    Store(cmd::store::StoreCommand),
    /// Create, update, delete and list topics.
    Topic(cmd::topic::TopicArgs),
    /// Send one message.
    Send(cmd::send::SendArgs),
    /// Print a topic's messages as a consumer group.
    Consume(cmd::consume::ConsumeArgs),
    /// Look messages up by id or key.
    #[command(subcommand)]
    Message(cmd::message::MessageCommand),
    /// Consumer groups: declare, list, describe, lag, reset offsets, set the subscription, filter statistics,
    /// retry policy.
    #[command(subcommand)]
    Group(cmd::group::GroupCommand),
    /// A group's dead letters: list, get, export, resend.
    #[command(subcommand)]
    Dlq(cmd::dlq::DlqCommand),
    /// WebAssembly plugins: upload, list, remove, enable; scaffold and test offline.
    #[command(subcommand)]
    Plugin(cmd::plugin::PluginCommand),
    /// Show the broker's status (exits non-zero when no broker answers).
    Status(cmd::status::StatusArgs),
    /// Try SQL92 subscriptions against messages.
    #[command(subcommand)]
    Filter(cmd::filter::FilterCommand),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Broker(args) => cmd::broker::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Bench(command) => cmd::bench::run(command),
        Command::Store(command) => cmd::store::run(command),
        Command::Filter(command) => cmd::filter::run(command),
        Command::Topic(args) => cmd::block_on(cmd::topic::run(args)),
        Command::Send(args) => cmd::block_on(cmd::send::run(args)),
        Command::Consume(args) => cmd::block_on(cmd::consume::run(args)),
        Command::Message(command) => cmd::block_on(cmd::message::run(command)),
        Command::Status(args) => cmd::block_on(cmd::status::run(args)),
        Command::Group(command) => cmd::block_on(cmd::group::run(command)),
        Command::Dlq(command) => cmd::block_on(cmd::dlq::run(command)),
        Command::Plugin(command) => cmd::block_on(cmd::plugin::run(command)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
