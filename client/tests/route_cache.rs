//! The producer's route cache against a real broker: one topic list routes many topics,
//! and topics created, deleted or missing are still seen as the broker has them.

use std::time::Duration;

use weir_broker::{Broker, BrokerConfig};
use weir_client::{Client, ClientConfig, ErrorCode, Message, Producer, SendStatus, TopicConfig, TopicPermissions};

const TOPICS: u32 = 200;

async fn start(dir: &std::path::Path) -> (Broker, Client) {
    let mut config = BrokerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.segment_size = 16 << 20;
    let broker = Broker::start(config).await.expect("start broker");
    let client_config =
        ClientConfig::default().with_broker(broker.local_addr().to_string()).with_ca_file(broker.cert_path());
    let client = Client::connect(client_config).await.expect("connect");
    (broker, client)
}

async fn create_topic(client: &Client, name: &str, queues: u32) {
    let topic = TopicConfig {
        name: name.to_owned(),
        read_queues: queues,
        write_queues: queues,
        permissions: TopicPermissions::READ_WRITE,
    };
    client.create_topic(topic).await.expect("create topic");
}

fn queues_of(i: u32) -> u32 {
    i % 3 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_producer_routes_many_topics_and_sees_topic_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_broker, client) = start(dir.path()).await;
    for i in 0..TOPICS {
        create_topic(&client, &format!("t{i:03}"), queues_of(i)).await;
    }
    let producer = Producer::new(client.clone());

    // Every topic at once: the lookups that miss share the topic list.
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..TOPICS {
        let producer = producer.clone();
        sends.spawn(async move { (i, producer.send(Message::new(format!("t{i:03}"), "x")).await) });
    }
    let sent = tokio::time::timeout(Duration::from_secs(30), sends.join_all()).await.expect("sends finish");
    assert_eq!(sent.len(), TOPICS as usize);
    for (i, result) in sent {
        let result = result.unwrap_or_else(|error| panic!("send to t{i:03}: {error}"));
        assert_eq!(result.status, SendStatus::SendOk);
        assert!(result.queue_id < queues_of(i), "t{i:03}: queue {}", result.queue_id);
    }

    // A topic that is not on the broker is refused as before.
    let error = producer.send(Message::new("nope", "x")).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownTopic), "{error}");

    // A topic created after the list was cached is routed at once.
    create_topic(&client, "late", 2).await;
    let result = producer.send(Message::new("late", "x")).await.expect("send to a new topic");
    assert!(result.queue_id < 2);

    // A deleted topic: the broker refuses the cached route, and the producer forgets it.
    client.delete_topic("t000").await.expect("delete");
    for _ in 0..2 {
        let error = producer.send(Message::new("t000", "x")).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::UnknownTopic), "{error}");
    }
    // Created again with more queues: the next send fetches its new queue count.
    create_topic(&client, "t000", 4).await;
    let mut queues_used = std::collections::HashSet::new();
    for _ in 0..8 {
        let result = producer.send(Message::new("t000", "x")).await.expect("send to the recreated topic");
        queues_used.insert(result.queue_id);
    }
    assert_eq!(queues_used.len(), 4, "round robin over the new queue count: {queues_used:?}");
}
