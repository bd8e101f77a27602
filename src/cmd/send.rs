//! `weir send`: send one message.

use std::process::ExitCode;

use clap::Args;
use weir_client::{DelayedDelivery, Producer};
use weir_protocol::{Delivery, Message};

use crate::cmd::time::{format_utc_ms, parse_time};
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
    /// Deliver after this delay (e.g. 500ms, 30s, 2m, 1h, 1d); invisible to consumers
    /// until then. The printed id cancels it (`weir message cancel --id`).
    #[arg(long, value_parser = parse_delay, group = "delayed")]
    delay: Option<std::time::Duration>,
    /// Deliver at this time: RFC 3339 (2026-12-02T10:00:00Z) or Unix milliseconds.
    #[arg(long, value_parser = parse_time, group = "delayed")]
    deliver_at: Option<u64>,
    /// Deliver after the broker's delay level N (its `delay_levels`, 1-based).
    #[arg(long, group = "delayed")]
    delay_level: Option<u8>,
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
    if let Some(delay) = args.delay {
        message = message.with_delay(delay);
    } else if let Some(at) = args.deliver_at {
        message = message.with_deliver_at(at);
    } else if let Some(level) = args.delay_level {
        message = message.with_delay_level(level);
    }
    let deliver_at = match message.delivery {
        Delivery::DeliverAtMs(at) => Some(at),
        _ => None,
    };
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
                "deliver_at_ms": deliver_at, "delay_level": args.delay_level,
            })
        );
    } else if let Some(at) = deliver_at {
        println!(
            "sent {} to {}/{}, delivered at {} ({})",
            result.msg_id,
            args.topic,
            result.queue_id,
            format_utc_ms(at),
            result.status
        );
    } else if let Some(level) = args.delay_level {
        println!(
            "sent {} to {}/{}, delivered after delay level {level} ({})",
            result.msg_id, args.topic, result.queue_id, result.status
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

/// A delay such as `500ms`, `30s`, `2m`, `1h` or `1d`.
pub fn parse_delay(text: &str) -> Result<std::time::Duration, String> {
    weir_broker::delay::parse_duration(text.trim()).map_err(|err| err.to_string())
}
