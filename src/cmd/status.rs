//! `weir status`: what the broker says about itself. Exits non-zero when no
//! broker answers, so scripts can wait on it.

use std::process::ExitCode;

use clap::Args;

use crate::cmd::BrokerAddr;

/// Arguments of `weir status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Runs `weir status`.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let s = client.status().await?;
    let flush = format!("{:?}", s.flush_mode).to_lowercase();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "broker": client.config().broker, "version": s.version, "uptime_ms": s.uptime_ms, "data_dir": s.data_dir,
                "flush": flush, "topics": s.topic_count, "commitlog_size_bytes": s.commitlog_size_bytes,
                "commitlog_max_offset": s.commitlog_max_offset, "connections": s.connections,
                "subscriptions": s.subscriptions.iter().map(crate::cmd::group::stats_json).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "weir {} at {}: up {:.0} s, data dir {}, {flush} flush, {} topic(s), CommitLog {} bytes (max offset {}), {} connection(s), {} subscription(s)",
            s.version,
            client.config().broker,
            s.uptime_ms as f64 / 1000.0,
            s.data_dir,
            s.topic_count,
            s.commitlog_size_bytes,
            s.commitlog_max_offset,
            s.connections,
            s.subscriptions.len()
        );
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}
