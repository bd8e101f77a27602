//! `weir broker`: run a broker until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use weir_broker::{Broker, BrokerConfig, FlushKind};

use crate::cmd::bench::FlushArg;

/// Arguments of `weir broker`. Flags override the config file.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Data directory [default: ./weir-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// UDP address to listen on [default: 127.0.0.1:7420].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Flush policy [default: async].
    #[arg(long, value_enum)]
    flush: Option<FlushArg>,
    /// TOML configuration file (keys as documented in the README).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs the broker in the foreground.
pub fn run(args: BrokerArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::load(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(flush) = args.flush {
        config.flush = match flush {
            FlushArg::Async => FlushKind::Async,
            FlushArg::Sync => FlushKind::Sync,
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.async_workers())
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let broker = Broker::start(config.clone()).await?;
        eprintln!(
            "weir broker listening on {} (data dir {}, {:?} flush); trust {} as the CA; Ctrl-C to stop",
            broker.local_addr(),
            config.data_dir.display(),
            config.flush,
            broker.cert_path().display()
        );
        wait_for_signal().await?;
        eprintln!("shutting down: finishing in-flight requests and flushing");
        broker.shutdown().await?;
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = term.recv() => {}
    }
    Ok(())
}
