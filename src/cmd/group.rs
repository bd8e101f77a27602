//! `weir group`: declare consumer groups (production or shadow) and read the
//! broker-side filter statistics of their subscriptions.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use weir_client::SubscriptionStats;

use crate::cmd::BrokerAddr;

/// `weir group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Declare a consumer group; `--shadow` makes it receive only shadow (stress-test) traffic.
    Create(CreateArgs),
    /// Show the filter statistics of a group's subscriptions.
    Stats(StatsArgs),
}

/// Arguments of `weir group create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The group's name.
    name: String,
    /// Receive only shadow traffic (messages with `shadow=true`); without it the group
    /// is a production group, which never receives shadow traffic.
    #[arg(long)]
    shadow: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir group stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// Only this topic.
    #[arg(long)]
    topic: Option<String>,
    /// One JSON object per (group, topic).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Runs a `weir group` subcommand.
pub async fn run(command: GroupCommand) -> anyhow::Result<ExitCode> {
    match command {
        GroupCommand::Create(args) => {
            let client = args.broker.connect().await?;
            let group = client.create_group(&args.name, args.shadow).await?;
            if args.json {
                println!("{}", serde_json::json!({ "group": group.name, "shadow": group.shadow }));
            } else {
                let role = if group.shadow { "shadow" } else { "production" };
                println!("group {} is a {role} group", group.name);
            }
            client.close().await;
        }
        GroupCommand::Stats(args) => {
            let client = args.broker.connect().await?;
            let stats = client.group_stats(&args.group, args.topic.as_deref()).await?;
            client.close().await;
            if stats.is_empty() {
                eprintln!(
                    "group {} has no subscription{}",
                    args.group,
                    args.topic.map_or(String::new(), |t| format!(" to {t}"))
                );
                return Ok(ExitCode::FAILURE);
            }
            for s in &stats {
                if args.json {
                    println!("{}", stats_json(s));
                } else {
                    println!("{}", stats_line(s));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Share of SQL evaluations that did not match (the bloom stage's observed false positives).
fn false_positive_rate(s: &SubscriptionStats) -> f64 {
    let c = &s.counters;
    if c.evaluated_sql == 0 { 0.0 } else { c.sql_false as f64 / c.evaluated_sql as f64 }
}

/// One subscription's statistics as a JSON object.
pub fn stats_json(s: &SubscriptionStats) -> serde_json::Value {
    let c = &s.counters;
    serde_json::json!({
        "group": s.consumer_group, "topic": s.topic, "subscription": s.expression, "version": s.version,
        "shadow": s.shadow, "examined": c.examined, "skipped_by_tag": c.skipped_by_tag,
        "skipped_by_bloom": c.skipped_by_bloom, "skipped_by_block": c.skipped_by_block,
        "skipped_shadow": c.skipped_shadow, "evaluated_sql": c.evaluated_sql, "sql_false": c.sql_false,
        "sql_errors": c.sql_errors, "plugin_rejected": c.plugin_rejected, "plugin_errors": c.plugin_errors,
        "delivered": c.delivered, "body_reads": c.body_reads,
        "bloom_false_positive_rate": false_positive_rate(s),
    })
}

/// One subscription's statistics as a line of text.
pub fn stats_line(s: &SubscriptionStats) -> String {
    let c = &s.counters;
    let pct = |n: u64| if c.examined == 0 { 0.0 } else { 100.0 * n as f64 / c.examined as f64 };
    format!(
        "{}/{} [{}{}] v{}: examined {}, delivered {}, bodies read {} ({:.2} %); skipped: block {}, tag {}, bloom {}, shadow {}; sql {} evaluated, {} false, {} errors ({:.2} % rejected after the bloom)",
        s.consumer_group,
        s.topic,
        s.expression,
        if s.shadow { ", shadow group" } else { "" },
        s.version,
        c.examined,
        c.delivered,
        c.body_reads,
        pct(c.body_reads),
        c.skipped_by_block,
        c.skipped_by_tag,
        c.skipped_by_bloom,
        c.skipped_shadow,
        c.evaluated_sql,
        c.sql_false,
        c.sql_errors,
        100.0 * false_positive_rate(s),
    )
}
