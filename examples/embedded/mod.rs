//! What the filtering examples share: a broker embedded in a temporary
//! directory, and draining a topic as a consumer group.

use std::time::Duration;

use weir_broker::{Broker, BrokerConfig};
use weir_client::{
    Client, ClientConfig, Message, Producer, PullConsumer, StoredMessage, TopicConfig, TopicPermissions,
};

/// A broker on a loopback port with its data in a temporary directory, and a client of it.
pub struct Embedded {
    broker: Broker,
    /// A client connected to the broker.
    pub client: Client,
    dir: tempfile::TempDir,
}

impl Embedded {
    /// Closes the client, stops the broker, then removes its directory.
    pub async fn shutdown(self) -> Result<(), Box<dyn std::error::Error>> {
        self.client.close().await;
        self.broker.shutdown().await?;
        drop(self.dir);
        Ok(())
    }
}

/// Starts the broker and connects; creates `topic` with `queues` queues.
pub async fn start(topic: &str, queues: u32) -> Result<Embedded, Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("weir-example-").tempdir()?;
    let mut config = BrokerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse()?;
    config.segment_size = 64 << 20;
    let broker = Broker::start(config).await?;
    let client = Client::connect(
        ClientConfig::default().with_broker(broker.local_addr().to_string()).with_ca_file(broker.cert_path()),
    )
    .await?;
    let topic = TopicConfig {
        name: topic.to_owned(),
        read_queues: queues,
        write_queues: queues,
        permissions: TopicPermissions::READ_WRITE,
    };
    client.create_topic(topic).await?;
    Ok(Embedded { broker, client, dir })
}

/// Sends `messages` to `topic` (the producer splits the batch to the frame limit), then
/// waits until consumers can see them all.
pub async fn send_all(
    client: &Client,
    producer: &Producer,
    topic: &str,
    messages: Vec<Message>,
) -> Result<(), Box<dyn std::error::Error>> {
    let count = messages.len() as u64;
    producer.send_batch(messages).await?;
    wait_dispatched(client, topic, count).await
}

/// Waits until `count` messages of `topic` are in its ConsumeQueues (a send is
/// acknowledged once stored; queues are built right after, asynchronously).
async fn wait_dispatched(client: &Client, topic: &str, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut dispatched = 0;
        for queue_id in 0..client.topic(topic).await?.read_queues {
            dispatched += client.queue_offsets(topic, queue_id).await?.end;
        }
        if dispatched >= count {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("only {dispatched} of {count} messages were dispatched").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads every queue of `topic` from its start to its current end with `consumer`'s
/// subscription; returns what the broker delivered.
pub async fn drain(
    client: &Client,
    consumer: &PullConsumer,
    topic: &str,
) -> Result<Vec<StoredMessage>, Box<dyn std::error::Error>> {
    let mut delivered = Vec::new();
    for queue_id in 0..client.topic(topic).await?.read_queues {
        let range = client.queue_offsets(topic, queue_id).await?;
        let mut offset = range.start;
        while offset < range.end {
            let page = consumer.pull(topic, queue_id, offset, 256, Duration::ZERO).await?;
            delivered.extend(page.messages);
            offset = page.next_offset;
        }
    }
    Ok(delivered)
}
