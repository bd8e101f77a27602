//! A pull consumer to copy: reads every queue of a topic from the group's committed
//! offset, commits after each page, and stops when no message arrives for 3 seconds.
//!
//! ```text
//! cargo run --example pull_consumer -- [TOPIC] [GROUP]
//! ```
//!
//! `WEIR_BROKER` and `WEIR_CA` as for the producer example.

use std::time::Duration;

use weir_client::{Client, ClientConfig, PullConsumer, PullStatus};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "example-orders".to_owned());
    let group = args.next().unwrap_or_else(|| "example-pull-group".to_owned());

    let client = Client::connect(ClientConfig::from_env()).await?;
    let consumer = PullConsumer::new(client.clone(), group.as_str());
    let queues = client.topic(&topic).await?.read_queues;

    let mut total = 0;
    for queue_id in 0..queues {
        let mut offset = match consumer.fetch_offset(&topic, queue_id).await? {
            Some(committed) => committed,
            None => client.queue_offsets(&topic, queue_id).await?.start,
        };
        loop {
            // Long polling: the broker holds the pull up to 3 s when the queue is empty.
            let page = consumer.pull(&topic, queue_id, offset, 32, Duration::from_secs(3)).await?;
            for message in &page.messages {
                println!(
                    "queue {queue_id} offset {}: {}",
                    message.queue_offset,
                    String::from_utf8_lossy(&message.body)
                );
            }
            total += page.messages.len();
            offset = page.next_offset;
            consumer.commit_offset(&topic, queue_id, offset).await?;
            if page.status == PullStatus::NoNewMessage {
                break;
            }
        }
    }
    println!("read {total} messages from {queues} queues of {topic}");
    client.close().await;
    Ok(())
}
