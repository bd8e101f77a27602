//! A producer to copy: sends messages with a tag, keys and properties, an ordered run
//! per customer, and a batch.
//!
//! ```text
//! weir broker                                  # in another terminal
//! cargo run --example producer -- [TOPIC] [COUNT]
//! ```
//!
//! The broker address comes from `WEIR_BROKER` (default `127.0.0.1:7420`), the
//! certificate to trust from `WEIR_CA` (default `./weir-data/tls/cert.pem`, which a
//! broker started in the same directory generates).

use weir_client::{Client, ClientConfig, ErrorCode, Message, Producer, TopicConfig, TopicPermissions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "example-orders".to_owned());
    let count: usize = args.next().map(|count| count.parse()).transpose()?.unwrap_or(10);

    let client = Client::connect(ClientConfig::from_env()).await?;
    create_topic_if_missing(&client, &topic).await?;
    let producer = Producer::new(client.clone());

    // One message at a time, waiting for the broker's result.
    for i in 0..count {
        let mut message = Message::new(topic.as_str(), format!("order {i} created"));
        message.tag = Some("created".to_owned());
        message.keys.push(format!("order-{i}"));
        message.properties.push(("region".to_owned(), if i % 2 == 0 { "eu" } else { "us" }.to_owned()));
        let sent = producer.send(message).await?;
        println!(
            "sent order {i}: id {} queue {} offset {} {}",
            sent.msg_id,
            sent.queue_id,
            sent.queue_offset,
            sent.status.name()
        );
    }

    // Ordered: every event of one customer goes to the same queue, so consumers see
    // them in this order.
    for step in ["cart", "paid", "shipped"] {
        let message = Message::new(topic.as_str(), format!("customer-7 {step}"));
        let sent = producer.send_ordered(message, "customer-7").await?;
        println!("sent customer-7 {step} to queue {}", sent.queue_id);
    }

    // A batch: one request (split only if it exceeds the frame limit).
    let batch = (0..count).map(|i| Message::new(topic.as_str(), format!("audit line {i}"))).collect();
    let results = producer.send_batch(batch).await?;
    println!("sent a batch of {} messages", results.len());

    producer.close().await;
    client.close().await;
    Ok(())
}

/// Creates `topic` with 4 queues unless it exists.
async fn create_topic_if_missing(client: &Client, topic: &str) -> Result<(), weir_client::Error> {
    let config = TopicConfig {
        name: topic.to_owned(),
        read_queues: 4,
        write_queues: 4,
        permissions: TopicPermissions::READ_WRITE,
    };
    match client.create_topic(config).await {
        Err(error) if error.code() != Some(ErrorCode::TopicExists) => Err(error),
        _ => Ok(()),
    }
}
