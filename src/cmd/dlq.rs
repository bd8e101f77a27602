//! `weir dlq`: a consumer group's dead letters (`%DLQ%<group>`): list them, print one,
//! export them all, and send them back to their original topics.

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{Value, json};
use weir_client::{Client, DeadLetter, ResendOutcome, ResendResult};

use crate::cmd::BrokerAddr;
use crate::cmd::time::format_utc_ms;
use crate::render::message_json;

/// Dead letters fetched per request.
const PAGE: u32 = 256;
/// Dead letters resent per request (the broker's limit is higher).
const RESEND_BATCH: usize = 256;

/// `weir dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List a group's dead letters, oldest first.
    ///
    /// With --json, one object per dead letter: {"msg_id", "original_topic",
    /// "original_msg_id", "reconsume_times", "last_reason", "store_timestamp_ms",
    /// "resent"}.
    List(ListArgs),
    /// Print one dead letter with its body.
    ///
    /// With --json, one object: the message as `weir message get --json` prints it, plus
    /// "original_topic", "original_msg_id", "reconsume_times", "last_reason", "resent".
    Get(GetArgs),
    /// Print every dead letter of a group as JSON lines (as `get --json`), to stdout:
    /// `body` when it is UTF-8, else `body_base64`.
    Export(ExportArgs),
    /// Send dead letters back to their original topics, redelivery count reset.
    ///
    /// Idempotent: a dead letter resent before is not sent again and is shown as
    /// `already_resent`. With --json, one object per dead letter: {"msg_id",
    /// "original_topic", "status", "new_msg_id", "detail"}, `status` being "resent",
    /// "already_resent" or "not_found". Exits 1 when one was not found.
    Resend(ResendArgs),
}

/// The group whose dead letters a command reads.
#[derive(Debug, Args)]
pub struct GroupArg {
    /// The consumer group.
    #[arg(long)]
    group: String,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir dlq list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    group: GroupArg,
    /// One JSON object per dead letter.
    #[arg(long)]
    json: bool,
}

/// Arguments of `weir dlq get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    group: GroupArg,
    /// The dead letter's id (as `weir dlq list` prints it).
    #[arg(long)]
    id: String,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

/// Arguments of `weir dlq export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    group: GroupArg,
}

/// Arguments of `weir dlq resend`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
pub struct ResendArgs {
    #[command(flatten)]
    group: GroupArg,
    /// One dead letter, by id.
    #[arg(long)]
    id: Option<String>,
    /// Every dead letter of the group.
    #[arg(long)]
    all: bool,
    /// One JSON object per dead letter.
    #[arg(long)]
    json: bool,
}

/// Runs a `weir dlq` subcommand.
pub async fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::List(args) => list(args).await,
        DlqCommand::Get(args) => get(args).await,
        DlqCommand::Export(args) => export(args).await,
        DlqCommand::Resend(args) => resend(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let client = args.group.broker.connect().await?;
    let letters = all_dead_letters(&client, &args.group.group).await;
    client.close().await;
    let letters = letters?;
    if args.json {
        letters.iter().for_each(|d| println!("{}", summary_json(d)));
    } else if letters.is_empty() {
        println!("no dead letters in group {}", args.group.group);
    } else {
        for d in &letters {
            println!(
                "{} {} from {} (was {}) after {} redeliveries, stored {}{}: {}",
                d.message.msg_id,
                if d.resent { "[resent]" } else { "" },
                d.original_topic,
                d.original_msg_id,
                d.message.reconsume_times,
                format_utc_ms(d.message.store_timestamp_ms),
                if d.last_reason.is_empty() { "" } else { ", last reason" },
                d.last_reason,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let client = args.group.broker.connect().await?;
    let page = client.dlq_list(&args.group.group, Some(&args.id), 0, 1).await;
    client.close().await;
    let Some(letter) = page?.entries.into_iter().next() else {
        anyhow::bail!("no dead letter {} in group {}", args.id, args.group.group);
    };
    if args.json {
        println!("{}", full_json(&letter));
    } else {
        println!("{}", summary_json(&letter));
        println!("{}", crate::render::message_line(&letter.message));
    }
    Ok(ExitCode::SUCCESS)
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let client = args.group.broker.connect().await?;
    let letters = all_dead_letters(&client, &args.group.group).await;
    client.close().await;
    letters?.iter().for_each(|d| println!("{}", full_json(d)));
    Ok(ExitCode::SUCCESS)
}

async fn resend(args: ResendArgs) -> anyhow::Result<ExitCode> {
    let group = &args.group.group;
    let client = args.group.broker.connect().await?;
    let outcome = async {
        let ids = match &args.id {
            Some(id) => vec![id.clone()],
            None => all_dead_letters(&client, group).await?.into_iter().map(|d| d.message.msg_id).collect(),
        };
        let mut results = Vec::with_capacity(ids.len());
        for batch in ids.chunks(RESEND_BATCH) {
            results.extend(client.dlq_resend(group, batch.to_vec()).await?.results);
        }
        anyhow::Ok(results)
    }
    .await;
    client.close().await;
    let results = outcome?;
    let mut missing = false;
    for r in &results {
        missing |= matches!(r.outcome, ResendOutcome::NotFound { .. });
        if args.json {
            println!("{}", resend_json(r));
        } else {
            match &r.outcome {
                ResendOutcome::Resent { new_msg_id } => {
                    println!("{} resent to {} as {new_msg_id}", r.msg_id, r.original_topic)
                }
                ResendOutcome::AlreadyResent => println!("{} already resent (to {})", r.msg_id, r.original_topic),
                ResendOutcome::NotFound { detail } => println!("{} not resent: {detail}", r.msg_id),
            }
        }
    }
    if !args.json && results.is_empty() {
        println!("no dead letters in group {group}");
    }
    Ok(if missing { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Every dead letter of `group`, page by page.
async fn all_dead_letters(client: &Client, group: &str) -> anyhow::Result<Vec<DeadLetter>> {
    let mut letters = Vec::new();
    let mut offset = 0;
    loop {
        let page = client.dlq_list(group, None, offset, PAGE).await?;
        if page.entries.is_empty() || page.next_offset <= offset {
            return Ok(letters);
        }
        offset = page.next_offset;
        letters.extend(page.entries);
    }
}

/// A dead letter's listing line.
fn summary_json(d: &DeadLetter) -> Value {
    json!({
        "msg_id": d.message.msg_id, "original_topic": d.original_topic, "original_msg_id": d.original_msg_id,
        "reconsume_times": d.message.reconsume_times, "last_reason": d.last_reason,
        "store_timestamp_ms": d.message.store_timestamp_ms, "resent": d.resent,
    })
}

/// A dead letter with its message.
fn full_json(d: &DeadLetter) -> Value {
    let mut out = message_json(&d.message);
    for (name, value) in [
        ("original_topic", json!(d.original_topic)),
        ("original_msg_id", json!(d.original_msg_id)),
        ("reconsume_times", json!(d.message.reconsume_times)),
        ("last_reason", json!(d.last_reason)),
        ("resent", json!(d.resent)),
    ] {
        out[name] = value;
    }
    out
}

fn resend_json(r: &ResendResult) -> Value {
    let (status, new_msg_id, detail) = match &r.outcome {
        ResendOutcome::Resent { new_msg_id } => ("resent", Some(new_msg_id.as_str()), None),
        ResendOutcome::AlreadyResent => ("already_resent", None, None),
        ResendOutcome::NotFound { detail } => ("not_found", None, Some(detail.as_str())),
    };
    json!({
        "msg_id": r.msg_id, "original_topic": r.original_topic, "status": status, "new_msg_id": new_msg_id,
        "detail": detail,
    })
}
