//! `weir send`: send one message.

use std::process::ExitCode;

use clap::Args;
use weir_client::Producer;
use weir_protocol::Message;

use crate::cmd::{BrokerAddr, parse_property};

/// Arguments of `weir send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Topic to send to.
    #[arg(long)]
    topic: String,
    /// Tag.
    #[arg(long)]
    tag: Option<String>,
    /// Business key (repeatable), indexed for `weir message get --key`.
    #[arg(long = "key")]
    keys: Vec<String>,
    /// User property NAME=VALUE (repeatable).
    #[arg(long = "prop", value_parser = parse_property)]
    props: Vec<(String, String)>,
    /// Mark the message as shadow (stress-test) traffic: only shadow groups receive it.
    #[arg(long)]
    shadow: bool,
    /// Send to this queue instead of letting the producer choose.
    #[arg(long)]
    queue: Option<u32>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
    /// Message body (UTF-8 text).
    body: String,
}

/// Runs `weir send`.
pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let producer = Producer::new(client.clone());
    let mut message = Message::new(args.topic.clone(), args.body.into_bytes());
    message.tag = args.tag;
    message.keys = args.keys;
    message.properties = args.props;
    message.queue_id = args.queue;
    if args.shadow {
        weir_client::mark_shadow(&mut message);
    }
    let result = producer.send(message).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "msg_id": result.msg_id, "topic": args.topic, "queue_id": result.queue_id,
                "queue_offset": result.queue_offset, "status": result.status.to_string(),
            })
        );
    } else {
        println!(
            "sent {} to {}/{} at offset {} ({})",
            result.msg_id, args.topic, result.queue_id, result.queue_offset, result.status
        );
    }
    producer.close().await;
    client.close().await;
    Ok(ExitCode::SUCCESS)
}
