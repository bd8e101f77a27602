//! `weir message get`: look a message up by id or by business key.
//! `weir message cancel`: cancel a pending delayed message.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::cmd::BrokerAddr;
use crate::render::{message_json, message_line};

/// Message lookups.
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Print a message found by id, or the messages of a topic carrying a key.
    Get(GetArgs),
    /// Cancel a pending delayed message by the id its send printed: it is never delivered.
    Cancel(CancelArgs),
}

/// Arguments of `weir message cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Message id of the delayed message (as printed by `weir send --delay`).
    #[arg(long)]
    id: String,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir message get`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "lookup")]
pub struct GetArgs {
    /// Message id (as printed by send and consume).
    #[arg(long, group = "lookup")]
    id: Option<String>,
    /// Business key (with --topic).
    #[arg(long, group = "lookup", requires = "topic")]
    key: Option<String>,
    /// Topic to search by key.
    #[arg(long)]
    topic: Option<String>,
    /// Most messages to print for a key.
    #[arg(long, default_value_t = 32)]
    max: u32,
    /// Print one JSON object per message.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Runs a message command.
pub async fn run(command: MessageCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        MessageCommand::Get(args) => args,
        MessageCommand::Cancel(args) => return cancel(args).await,
    };
    let client = args.broker.connect().await?;
    let messages = match (&args.id, &args.key, &args.topic) {
        (Some(id), _, _) => vec![client.message_by_id(id).await?],
        (None, Some(key), Some(topic)) => client.messages_by_key(topic, key, args.max).await?,
        _ => anyhow::bail!("give --id ID, or --key KEY with --topic TOPIC"),
    };
    for m in &messages {
        println!("{}", if args.json { message_json(m).to_string() } else { message_line(m) });
    }
    client.close().await;
    if messages.is_empty() {
        eprintln!("no message found");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `weir message cancel`.
async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let cancelled = client.cancel_message(&args.id).await;
    client.close().await;
    let cancelled = cancelled?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "msg_id": args.id, "topic": cancelled.topic, "deliver_at_ms": cancelled.deliver_at_ms,
            })
        );
    } else {
        println!(
            "cancelled {} (for {}, due {})",
            args.id,
            cancelled.topic,
            crate::cmd::time::format_utc_ms(cancelled.deliver_at_ms)
        );
    }
    Ok(ExitCode::SUCCESS)
}
