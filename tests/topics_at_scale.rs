//! Topics at scale and topic deletion, end to end: a broker on loopback (in this
//! process) and the client library.
//!
//! - 10 000 topics × 4 queues with one message each: every message consumable, the
//!   queue files sized to use, and the same after a restart.
//! - Delete then re-create a topic: nothing of the old one is delivered, its groups'
//!   offsets are gone, held pulls learn of the deletion, across a restart too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_broker::{Broker, BrokerConfig};
use weir_client::{
    Client, ClientConfig, Error, ErrorCode, Message, Producer, PullConsumer, PullStatus, TopicConfig, TopicPermissions,
};

async fn start_broker(dir: &std::path::Path) -> Broker {
    let mut config = BrokerConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.segment_size = 64 << 20;
    Broker::start(config).await.expect("start broker")
}

async fn connect(broker: &Broker) -> Client {
    let config = ClientConfig::default().with_broker(broker.local_addr().to_string()).with_ca_file(broker.cert_path());
    Client::connect(config).await.expect("connect")
}

fn topic(name: &str, queues: u32) -> TopicConfig {
    TopicConfig {
        name: name.to_owned(),
        read_queues: queues,
        write_queues: queues,
        permissions: TopicPermissions::READ_WRITE,
    }
}

fn message(topic: &str, queue_id: u32, body: String) -> Message {
    let mut message = Message::new(topic, body.into_bytes());
    message.queue_id = Some(queue_id);
    message
}

/// Runs `work(i)` for every `i` in `0..count`, `tasks` at a time.
async fn for_each<F, Fut>(count: usize, tasks: usize, work: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let work = Arc::new(work);
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let work = work.clone();
        set.spawn(async move {
            for i in (task..count).step_by(tasks) {
                work(i).await;
            }
        });
    }
    while let Some(joined) = set.join_next().await {
        joined.expect("task");
    }
}

/// Waits until every acknowledged message is in the ConsumeQueues.
async fn wait_dispatched(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.status().await.expect("status").store.dispatch_lag_bytes > 0 {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const TOPICS: usize = 10_000;
const QUEUES: u32 = 4;

/// Pulls every queue of every topic and checks it holds exactly its one message.
async fn check_one_message_per_queue(client: &Client) {
    let consumer = Arc::new(PullConsumer::new(client.clone(), "checker"));
    for_each(TOPICS, 32, move |i| {
        let consumer = consumer.clone();
        async move {
            let name = format!("scale-{i}");
            for queue_id in 0..QUEUES {
                let page = consumer.pull(&name, queue_id, 0, 8, Duration::ZERO).await.expect("pull");
                let bodies: Vec<_> = page.messages.iter().map(|m| m.body.clone()).collect();
                assert_eq!(bodies, [format!("{name}/{queue_id}").into_bytes()], "{name} queue {queue_id}");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_topics_with_a_message_per_queue_are_all_consumable_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start_broker(dir.path()).await;
    let client = connect(&broker).await;

    let started = Instant::now();
    let creator = client.clone();
    for_each(TOPICS, 16, move |i| {
        let client = creator.clone();
        async move {
            client.create_topic(topic(&format!("scale-{i}"), QUEUES)).await.expect("create topic");
        }
    })
    .await;
    let created = started.elapsed();

    let started = Instant::now();
    let producer = Producer::new(client.clone());
    for_each(TOPICS, 16, move |i| {
        let producer = producer.clone();
        async move {
            let name = format!("scale-{i}");
            let batch = (0..QUEUES).map(|q| message(&name, q, format!("{name}/{q}"))).collect();
            producer.send_batch(batch).await.expect("send");
        }
    })
    .await;
    let sent = started.elapsed();
    wait_dispatched(&client).await;
    check_one_message_per_queue(&client).await;

    let store = client.status().await.expect("status").store;
    assert_eq!(store.state, weir_client::StoreState::Ok, "{}", store.reason);
    assert_eq!(store.queues, TOPICS as u64 * u64::from(QUEUES));
    let per_queue = (store.consume_queue_bytes + store.index_bytes) / store.queues;
    assert!(per_queue <= 3 * 4096, "{per_queue} bytes of queue and index files per queue");
    assert!(store.mapped_queue_files <= store.mapped_queue_files_limit);
    eprintln!(
        "{TOPICS} topics × {QUEUES} queues: created in {created:?}, sent in {sent:?}; {per_queue} bytes of queue and index files per queue; {} of at most {} queue files mapped",
        store.mapped_queue_files, store.mapped_queue_files_limit
    );

    client.close().await;
    broker.shutdown().await.expect("shutdown");
    let started = Instant::now();
    let broker = start_broker(dir.path()).await;
    let restarted = started.elapsed();
    let client = connect(&broker).await;
    assert_eq!(client.status().await.expect("status").store.queues, TOPICS as u64 * u64::from(QUEUES));
    check_one_message_per_queue(&client).await;
    eprintln!("restart after a clean stop took {restarted:?}");
    client.close().await;
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_re_created_starts_empty_and_its_offsets_are_gone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start_broker(dir.path()).await;
    let client = connect(&broker).await;
    client.create_topic(topic("orders", 2)).await.expect("create");
    client.create_topic(topic("held", 1)).await.expect("create");
    let producer = Producer::new(client.clone());
    for n in 0..5 {
        producer.send(message("orders", n % 2, format!("old-{n}"))).await.expect("send");
    }
    wait_dispatched(&client).await;
    let old = PullConsumer::new(client.clone(), "old-group");
    for queue_id in 0..2 {
        let page = old.pull("orders", queue_id, 0, 16, Duration::ZERO).await.expect("pull");
        assert_eq!(page.status, PullStatus::Found);
        old.commit_offset("orders", queue_id, page.next_offset).await.expect("commit");
    }

    // A pull held on a topic that is deleted meanwhile learns of it.
    let held = {
        let consumer = PullConsumer::new(client.clone(), "held-group");
        tokio::spawn(async move { consumer.pull("held", 0, 0, 16, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deleted_at = Instant::now();
    client.delete_topic("held").await.expect("delete");
    client.delete_topic("orders").await.expect("delete");
    let answer = held.await.expect("held pull task");
    assert!(matches!(&answer, Err(e) if e.code() == Some(ErrorCode::UnknownTopic)), "{answer:?}");
    assert!(deleted_at.elapsed() < Duration::from_secs(5), "the held pull answered at once");
    let gone = producer.send(message("orders", 0, "after delete".into())).await;
    assert!(matches!(&gone, Err(e) if e.code() == Some(ErrorCode::UnknownTopic)), "{gone:?}");

    client.create_topic(topic("orders", 2)).await.expect("re-create");
    let check = |client: Client| async move {
        let old = PullConsumer::new(client.clone(), "old-group");
        let fresh = PullConsumer::new(client.clone(), "new-group");
        let mut bodies = Vec::new();
        for queue_id in 0..2 {
            assert_eq!(old.fetch_offset("orders", queue_id).await.expect("fetch"), None, "old offsets are gone");
            let page = fresh.pull("orders", queue_id, 0, 16, Duration::ZERO).await.expect("pull");
            assert_eq!(page.min_offset, 0);
            bodies.extend(page.messages.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()));
        }
        bodies.sort();
        bodies
    };
    assert!(check(client.clone()).await.is_empty(), "nothing of the old topic is delivered");
    for n in 0..2 {
        let sent = producer.send(message("orders", n, format!("new-{n}"))).await.expect("send");
        assert_eq!(sent.queue_offset, 0, "the re-created topic starts at queue offset 0");
    }
    wait_dispatched(&client).await;
    assert_eq!(check(client.clone()).await, ["new-0", "new-1"]);
    assert!(client.messages_by_key("orders", "none", 8).await.expect("query").is_empty());

    client.close().await;
    broker.shutdown().await.expect("shutdown");
    let broker = start_broker(dir.path()).await;
    let client = connect(&broker).await;
    assert_eq!(check(client.clone()).await, ["new-0", "new-1"], "the same after a restart");
    let error: Result<_, Error> = client.queue_offsets("held", 0).await;
    assert!(matches!(&error, Err(e) if e.code() == Some(ErrorCode::UnknownTopic)), "{error:?}");
    client.close().await;
    broker.shutdown().await.expect("shutdown");
}
