//! A push consumer to copy: consumes every queue of a topic until Ctrl-C, then commits
//! what it consumed.
//!
//! ```text
//! cargo run --example push_consumer -- [TOPIC] [GROUP]
//! ```
//!
//! `WEIR_BROKER` and `WEIR_CA` as for the producer example. Delivery is at-least-once:
//! after a crash, messages consumed since the last commit (every 5 s) come again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_client::{Client, ClientConfig, ConsumeStatus, PushConsumer, StartPosition, StoredMessage};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "example-orders".to_owned());
    let group = args.next().unwrap_or_else(|| "example-group".to_owned());

    let client = Client::connect(ClientConfig::from_env()).await?;
    let consumed = Arc::new(AtomicU64::new(0));
    let listener = {
        let consumed = consumed.clone();
        move |message: StoredMessage| {
            let consumed = consumed.clone();
            async move {
                println!(
                    "queue {} offset {} tag {:?} keys {:?}: {}",
                    message.queue_id,
                    message.queue_offset,
                    message.tag,
                    message.keys,
                    String::from_utf8_lossy(&message.body)
                );
                consumed.fetch_add(1, Ordering::Relaxed);
                // Return ConsumeStatus::Failure to have the message delivered again later.
                ConsumeStatus::Success
            }
        }
    };
    let consumer = PushConsumer::builder(client.clone(), group.as_str(), topic.as_str())
        .start_position(StartPosition::CommittedOrEarliest)
        .concurrency(8)
        .start(listener)
        .await?;
    println!("consuming {topic} as {group}; Ctrl-C to stop");

    tokio::signal::ctrl_c().await?;
    consumer.shutdown().await?;
    println!("consumed {} messages; offsets committed", consumed.load(Ordering::Relaxed));
    client.close().await;
    Ok(())
}
