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
    let store = &s.store;
    let disk_usage = f64::from(store.disk_usage_ppm) / 1e6;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "broker": client.config().broker, "version": s.version, "uptime_ms": s.uptime_ms, "data_dir": s.data_dir,
                "flush": flush, "topics": s.topic_count, "commitlog_size_bytes": s.commitlog_size_bytes,
                "commitlog_max_offset": s.commitlog_max_offset, "connections": s.connections,
                "state": store.state.as_str(), "reason": store.reason, "disk_usage": disk_usage,
                "disk_free_bytes": store.disk_free_bytes, "dispatch_lag_bytes": store.dispatch_lag_bytes,
                "store_bytes": store.store_bytes, "consume_queue_bytes": store.consume_queue_bytes,
                "index_bytes": store.index_bytes, "queues": store.queues,
                "mapped_queue_files": store.mapped_queue_files,
                "mapped_queue_files_limit": store.mapped_queue_files_limit,
                "queue_file_evictions": store.queue_file_evictions, "flushes": s.flushes,
                "subscriptions": s.subscriptions.iter().map(crate::cmd::group::stats_json).collect::<Vec<_>>(),
                "timers": {
                    "pending": s.timers.pending,
                    "next_due_ms": (s.timers.next_due_ms > 0).then_some(s.timers.next_due_ms),
                    "delivered": s.timers.delivered, "cancelled": s.timers.cancelled,
                    "dropped": s.timers.dropped, "lost": s.timers.lost, "stale": s.timers.stale,
                    "lateness_max_ms": s.timers.lateness_max_ms, "lateness_mean_ms": s.timers.lateness_mean_ms,
                    "log_bytes": s.timers.log_bytes,
                },
            })
        );
    } else {
        let reason = if store.reason.is_empty() { String::new() } else { format!(": {}", store.reason) };
        println!(
            "store {}{reason}; disk {:.1}% used, {} bytes free; {} bytes in {} queue(s) and the CommitLog; dispatch lag {} bytes; {} of at most {} queue files mapped",
            store.state.as_str(),
            disk_usage * 100.0,
            store.disk_free_bytes,
            store.store_bytes,
            store.queues,
            store.dispatch_lag_bytes,
            store.mapped_queue_files,
            store.mapped_queue_files_limit,
        );
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
        let t = &s.timers;
        let next = if t.next_due_ms > 0 {
            format!(", next due {}", crate::cmd::time::format_utc_ms(t.next_due_ms))
        } else {
            String::new()
        };
        println!(
            "timers: {} pending{next}; {} delivered (lateness max {} ms, mean {} ms), {} cancelled, {} dropped (topic deleted), {} lost, {} stale; timer log {} bytes",
            t.pending,
            t.delivered,
            t.lateness_max_ms,
            t.lateness_mean_ms,
            t.cancelled,
            t.dropped,
            t.lost,
            t.stale,
            t.log_bytes,
        );
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}
