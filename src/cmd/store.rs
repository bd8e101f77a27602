//! `weir store`: offline tools for a data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use weir_storage::{RecoveryMode, Store, StoreConfig};

/// Offline store tools.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Open the store (running full recovery), verify every record and queue
    /// entry, and optionally check that every acknowledged message is intact.
    Check(CheckArgs),
}

/// Arguments of `weir store check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Store directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// An ack log written by `weir bench`: every line must be found intact.
    #[arg(long, value_name = "FILE")]
    ack_log: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs a store tool.
pub fn run(command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.data_dir.join("store.meta").exists(),
        "{} is not a Weir store (no store.meta)",
        args.data_dir.display()
    );
    let acks = args.ack_log.as_deref().map(crate::ack_log::read).transpose()?;
    let config = StoreConfig { recovery: RecoveryMode::Full, ..StoreConfig::new(&args.data_dir) };
    let store = Store::open(config).with_context(|| format!("cannot open store {}", args.data_dir.display()))?;
    let recovery = *store.recovery();
    // A long replay finishes on the dispatcher thread: check the queues once it has.
    if !store.wait_dispatched(std::time::Duration::from_secs(600)) {
        anyhow::bail!("the store's queues did not catch up with its CommitLog within 10 minutes");
    }
    let report = store.verify();
    let missing = acks.as_ref().map(|acks| {
        acks.iter()
            .filter(|ack| {
                let found = store.message_by_id(&ack.msg_id);
                let intact = found.as_ref().is_ok_and(|r| {
                    let v = r.view();
                    (v.topic(), v.queue_id(), v.queue_offset()) == (ack.topic.as_str(), ack.queue_id, ack.queue_offset)
                });
                if !intact {
                    tracing::error!(msg_id = %ack.msg_id, topic = %ack.topic, queue_id = ack.queue_id, queue_offset = ack.queue_offset, "acknowledged message missing or damaged");
                }
                !intact
            })
            .count() as u64
    });
    store.close().context("closing the store")?;
    let ok = report.corrupt == 0 && missing.unwrap_or(0) == 0;
    if args.json {
        let mut out = serde_json::json!({
            "records": report.records, "corrupt": report.corrupt, "truncated_bytes": recovery.truncated_bytes,
            "queue_entries": report.queue_entries, "clean_shutdown": recovery.clean_shutdown, "ok": ok,
        });
        if let (Some(acks), Some(missing)) = (&acks, missing) {
            out["acked"] = acks.len().into();
            out["missing"] = missing.into();
        }
        println!("{out}");
    } else {
        let verdict = if ok { "OK" } else { "FAILED" };
        println!("store check {verdict}: {}", args.data_dir.display());
        println!("  {:<24}{:>12}", "records", report.records);
        println!("  {:<24}{:>12}", "queue entries", report.queue_entries);
        println!("  {:<24}{:>12}", "corrupt", report.corrupt);
        println!("  {:<24}{:>12}", "truncated bytes", recovery.truncated_bytes);
        println!("  {:<24}{:>12}", "previous shutdown", if recovery.clean_shutdown { "clean" } else { "crash" });
        if let (Some(acks), Some(missing)) = (&acks, missing) {
            println!("  {:<24}{:>12}", "acked", acks.len());
            println!("  {:<24}{:>12}", "missing", missing);
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
