//! The client against a real broker over QUIC on loopback, each test with its own broker
//! on an ephemeral port and a temporary data directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

use support::{Harness, MAX_MESSAGE_SIZE, client_config, create_topic, eventually, start, start_broker};
use weir_client::{
    Bytes, Client, ConsumeStatus, Error, ErrorCode, Message, PluginState, Producer, PullConsumer, PullStatus,
    PushConsumer, SendResult, SendStatus, StartPosition, StoredMessage, Subscription, TopicConfig, TopicPermissions,
};

/// Waits until the topic's queues `0..queues` hold `expected` messages in all. A send is
/// acknowledged once appended to the CommitLog; its queue entry follows within
/// milliseconds (dispatch), and only then do offsets and pulls show it.
async fn wait_until_stored(client: &Client, topic: &str, queues: u32, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stored = 0;
        for queue_id in 0..queues {
            stored += client.queue_offsets(topic, queue_id).await.expect("queue offsets").end;
        }
        if stored == expected {
            return;
        }
        assert!(stored < expected && Instant::now() < deadline, "{stored} messages stored, expected {expected}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every message of a queue, pulled without waiting (after [`wait_until_stored`]).
async fn pull_all(consumer: &PullConsumer, topic: &str, queue_id: u32) -> Vec<StoredMessage> {
    let mut messages = Vec::new();
    let mut offset = 0;
    loop {
        let page = consumer.pull(topic, queue_id, offset, 100, Duration::ZERO).await.expect("pull");
        if page.status != PullStatus::Found {
            return messages;
        }
        offset = page.next_offset;
        messages.extend(page.messages);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_keeps_every_field() {
    let harness = start().await;
    let client = &harness.client;
    create_topic(client, "orders", 4).await;
    let producer = Producer::new(client.clone());

    let mut message = Message::new("orders", Bytes::from_static(b"\x00binary \xff body"));
    message.tag = Some("TagA".to_owned());
    message.keys = vec!["order-1".to_owned(), "customer-9".to_owned()];
    message.properties = vec![("region".to_owned(), "SH".to_owned()), ("amount".to_owned(), "12.5".to_owned())];
    message.born_timestamp_ms = 1_700_000_000_123;
    let sent = producer.send(message.clone()).await.expect("send");
    assert_eq!(sent.status, SendStatus::SendOk);
    assert!(sent.queue_id < 4);

    let consumer = PullConsumer::new(client.clone(), "billing");
    let page =
        consumer.pull("orders", sent.queue_id, sent.queue_offset, 10, Duration::from_secs(5)).await.expect("pull");
    assert_eq!(page.status, PullStatus::Found);
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.next_offset, sent.queue_offset + 1);
    let stored = &page.messages[0];
    assert_eq!(stored.msg_id, sent.msg_id);
    assert_eq!(stored.topic, "orders");
    assert_eq!((stored.queue_id, stored.queue_offset), (sent.queue_id, sent.queue_offset));
    assert_eq!(stored.born_timestamp_ms, message.born_timestamp_ms);
    assert!(stored.store_timestamp_ms > message.born_timestamp_ms);
    assert!(stored.born_host.starts_with("127.0.0.1:"), "{}", stored.born_host);
    assert_eq!((stored.flags, stored.reconsume_times), (0, 0));
    assert_eq!(stored.tag, message.tag);
    assert_eq!(stored.keys, message.keys);
    assert_eq!(stored.properties, message.properties);
    assert_eq!(stored.body, message.body);

    assert_eq!(&client.message_by_id(&sent.msg_id).await.expect("by id"), stored);
    assert_eq!(client.messages_by_key("orders", "customer-9", 10).await.expect("by key"), vec![stored.clone()]);
    let offsets = client.queue_offsets("orders", sent.queue_id).await.expect("queue offsets");
    assert_eq!(offsets, 0..1);
    assert_eq!(client.offset_by_timestamp("orders", sent.queue_id, 0).await.expect("by time"), 0);
    assert_eq!(client.offset_by_timestamp("orders", sent.queue_id, u64::MAX).await.expect("by time"), 1);

    assert_eq!(consumer.fetch_offset("orders", sent.queue_id).await.expect("fetch"), None);
    consumer.commit_offset("orders", sent.queue_id, 1).await.expect("commit");
    assert_eq!(client.fetch_offset("billing", "orders", sent.queue_id).await.expect("fetch"), Some(1));

    let status = client.status().await.expect("status");
    assert!(!status.version.is_empty());
    assert!(status.topic_count >= 1);
    assert!(status.connections >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_administration() {
    let harness = start().await;
    let client = &harness.client;
    create_topic(client, "audit", 2).await;
    let names: Vec<String> = client.list_topics(false).await.expect("list").into_iter().map(|t| t.name).collect();
    assert!(names.contains(&"audit".to_owned()), "{names:?}");

    let updated = TopicConfig {
        name: "audit".to_owned(),
        read_queues: 8,
        write_queues: 8,
        permissions: TopicPermissions::READ_WRITE,
    };
    assert_eq!(client.update_topic(updated.clone()).await.expect("update"), updated);
    assert_eq!(client.topic("audit").await.expect("topic"), updated);

    client.delete_topic("audit").await.expect("delete");
    assert_eq!(client.topic("audit").await.unwrap_err().code(), Some(ErrorCode::UnknownTopic));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_refusals_are_typed_errors() {
    let harness = start().await;
    let client = &harness.client;
    create_topic(client, "orders", 1).await;
    let producer = Producer::new(client.clone());

    let topic = TopicConfig {
        name: "orders".to_owned(),
        read_queues: 1,
        write_queues: 1,
        permissions: TopicPermissions::READ_WRITE,
    };
    assert_eq!(client.create_topic(topic).await.unwrap_err().code(), Some(ErrorCode::TopicExists));

    // Without a queue the producer looks the topic up; with one the broker refuses it.
    assert_eq!(producer.send(Message::new("nope", "x")).await.unwrap_err().code(), Some(ErrorCode::UnknownTopic));
    let mut addressed = Message::new("nope", "x");
    addressed.queue_id = Some(0);
    let error = producer.send(addressed).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownTopic), "{error}");

    let error = producer.send(Message::new("orders", vec![7u8; MAX_MESSAGE_SIZE + 1])).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::MessageTooLarge), "{error}");
    assert!(!error.is_transient());

    assert_eq!(client.message_by_id("not-an-id").await.unwrap_err().code(), Some(ErrorCode::BadRequest));

    // The connection still serves after the refusals.
    assert_eq!(producer.send(Message::new("orders", "fine")).await.expect("send").status, SendStatus::SendOk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_is_answered_on_arrival() {
    let harness = start().await;
    create_topic(&harness.client, "events", 1).await;
    let consumer = PullConsumer::new(harness.client.clone(), "watchers");
    let held = tokio::spawn(async move { consumer.pull("events", 0, 0, 10, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "the pull is held while the queue is empty");

    let sent_at = Instant::now();
    Producer::new(harness.client.clone()).send(Message::new("events", "arrived")).await.expect("send");
    let page = held.await.expect("pull task").expect("pull");
    let latency = sent_at.elapsed();
    assert_eq!(page.status, PullStatus::Found);
    assert_eq!(page.messages[0].body, "arrived");
    assert!(latency < Duration::from_secs(2), "answered {latency:?} after the send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_times_out_empty() {
    let harness = start().await;
    create_topic(&harness.client, "quiet", 1).await;
    let consumer = PullConsumer::new(harness.client.clone(), "watchers");
    let started = Instant::now();
    let page = consumer.pull("quiet", 0, 0, 10, Duration::from_millis(400)).await.expect("pull");
    let waited = started.elapsed();
    assert_eq!(page.status, PullStatus::NoNewMessage);
    assert!(page.messages.is_empty());
    assert!(waited >= Duration::from_millis(350) && waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_send_keeps_per_key_order() {
    const KEYS: usize = 8;
    const PER_KEY: usize = 25;
    let harness = start().await;
    create_topic(&harness.client, "ledger", 4).await;
    let producer = Producer::new(harness.client.clone());
    let mut senders = Vec::new();
    for key in 0..KEYS {
        let producer = producer.clone();
        senders.push(tokio::spawn(async move {
            for seq in 0..PER_KEY {
                let message = Message::new("ledger", format!("account-{key}:{seq}"));
                producer.send_ordered(message, &format!("account-{key}")).await.expect("send ordered");
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }

    wait_until_stored(&harness.client, "ledger", 4, (KEYS * PER_KEY) as u64).await;
    let consumer = PullConsumer::new(harness.client.clone(), "auditors");
    let mut by_key: BTreeMap<String, (HashSet<u32>, Vec<usize>)> = BTreeMap::new();
    for queue_id in 0..4 {
        for message in pull_all(&consumer, "ledger", queue_id).await {
            let body = std::str::from_utf8(&message.body).expect("utf-8").to_owned();
            let (key, seq) = body.split_once(':').expect("key:seq");
            let entry = by_key.entry(key.to_owned()).or_default();
            entry.0.insert(queue_id);
            entry.1.push(seq.parse().expect("seq"));
        }
    }
    assert_eq!(by_key.len(), KEYS);
    let queues_used: HashSet<u32> = by_key.values().flat_map(|(queues, _)| queues.iter().copied()).collect();
    assert!(queues_used.len() > 1, "keys spread over queues");
    for (key, (queues, seqs)) in by_key {
        assert_eq!(queues.len(), 1, "{key} went to one queue");
        assert_eq!(seqs, (0..PER_KEY).collect::<Vec<_>>(), "{key} in send order");
    }
}

/// Sends each message from its own task, all at once; the results in message order.
async fn send_concurrently(producer: &Producer, messages: Vec<Message>) -> Vec<Result<SendResult, Error>> {
    let sends: Vec<_> = messages
        .into_iter()
        .map(|message| {
            let producer = producer.clone();
            tokio::spawn(async move { producer.send(message).await })
        })
        .collect();
    let mut results = Vec::with_capacity(sends.len());
    for send in sends {
        results.push(send.await.expect("send task"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_sends() {
    let harness = start().await;
    create_topic(&harness.client, "load", 4).await;
    let producer = Producer::new(harness.client.clone());
    let messages = (0..1000).map(|i| Message::new("load", format!("message {i}"))).collect();
    let mut per_queue: HashMap<u32, HashSet<u64>> = HashMap::new();
    let mut ids = HashSet::new();
    for result in send_concurrently(&producer, messages).await {
        let result = result.expect("send");
        assert_eq!(result.status, SendStatus::SendOk);
        assert!(ids.insert(result.msg_id), "message ids are unique");
        assert!(per_queue.entry(result.queue_id).or_default().insert(result.queue_offset), "offsets are unique");
    }
    assert_eq!(per_queue.len(), 4, "round-robin uses every queue");
    wait_until_stored(&harness.client, "load", 4, 1000).await;
    for (queue_id, offsets) in per_queue {
        let stored = harness.client.queue_offsets("load", queue_id).await.expect("offsets");
        assert_eq!(stored, 0..offsets.len() as u64, "queue {queue_id} holds exactly its acknowledged sends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_fails_alone_not_the_sends_coalesced_with_it() {
    let harness = start().await;
    create_topic(&harness.client, "mixed", 4).await;
    let producer = Producer::new(harness.client.clone());
    let messages = (0..64)
        .map(|i| {
            let body = if i == 32 { vec![0u8; MAX_MESSAGE_SIZE + 1] } else { format!("message {i}").into_bytes() };
            Message::new("mixed", body)
        })
        .collect();
    let mut queues = HashSet::new();
    for (i, outcome) in send_concurrently(&producer, messages).await.into_iter().enumerate() {
        match outcome {
            Ok(result) if i != 32 => {
                assert_eq!(result.status, SendStatus::SendOk);
                queues.insert(result.queue_id);
            }
            Err(error) if i == 32 => assert_eq!(error.code(), Some(ErrorCode::MessageTooLarge), "{error}"),
            outcome => panic!("send {i}: unexpected {outcome:?}"),
        }
    }
    assert_eq!(queues.len(), 4, "resent messages still go round-robin");
    wait_until_stored(&harness.client, "mixed", 4, 63).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_split_to_the_frame_limit() {
    let harness = start().await;
    create_topic(&harness.client, "bulk", 2).await;
    let mut config = client_config(&harness.broker);
    config.max_frame_payload = 16 * 1024;
    let client = Client::connect(config).await.expect("connect");
    let producer = Producer::new(client.clone());
    let messages: Vec<Message> = (0..40).map(|i| Message::new("bulk", format!("{i:01000}"))).collect();
    let results = producer.send_batch(messages).await.expect("send batch");
    assert_eq!(results.len(), 40);
    // 40 KB in 16 KiB requests: several requests, each to one queue at consecutive offsets.
    let runs: Vec<Vec<_>> = results.chunk_by(|a, b| a.queue_id == b.queue_id).map(<[_]>::to_vec).collect();
    assert!(runs.len() >= 3, "split into {} runs", runs.len());
    for run in runs {
        for pair in run.windows(2) {
            assert_eq!(pair[1].queue_offset, pair[0].queue_offset + 1);
        }
    }
    wait_until_stored(&client, "bulk", 2, 40).await;
    // Pages of 100 messages need the default response limit.
    let consumer = PullConsumer::new(harness.client.clone(), "readers");
    let mut bodies = Vec::new();
    for queue_id in 0..2 {
        bodies.extend(pull_all(&consumer, "bulk", queue_id).await.into_iter().map(|m| m.body));
    }
    assert_eq!(bodies.len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_over_the_limit_is_an_error() {
    let harness = start().await;
    create_topic(&harness.client, "big", 1).await;
    Producer::new(harness.client.clone()).send(Message::new("big", vec![1u8; 4096])).await.expect("send");
    let mut config = client_config(&harness.broker);
    config.max_frame_payload = 1024;
    let small = Client::connect(config).await.expect("connect");
    let error = PullConsumer::new(small.clone(), "g").pull("big", 0, 0, 1, Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(error, Error::ResponseTooLarge { .. }), "{error:?}");
    assert_eq!(small.queue_offsets("big", 0).await.expect("small responses still work"), 0..1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_sends_arrive_after_close() {
    let harness = start().await;
    create_topic(&harness.client, "fire", 2).await;
    let producer = Producer::new(harness.client.clone());
    for i in 0..20 {
        producer.send_oneway(Message::new("fire", format!("{i}"))).await.expect("send one-way");
    }
    producer.close().await;
    wait_until_stored(&harness.client, "fire", 2, 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_consumes_everything_and_commits() {
    const COUNT: usize = 400;
    let harness = start().await;
    let client = &harness.client;
    create_topic(client, "orders", 4).await;
    let producer = Producer::new(client.clone());
    let batch: Vec<Message> = (0..COUNT).map(|i| Message::new("orders", format!("{i}"))).collect();
    producer.send_batch(batch).await.expect("send batch");

    let received = Arc::new(Mutex::new(HashSet::new()));
    let failed_once = Arc::new(Mutex::new(HashSet::new()));
    let listener = {
        let (received, failed_once) = (received.clone(), failed_once.clone());
        move |message: StoredMessage| {
            let (received, failed_once) = (received.clone(), failed_once.clone());
            async move {
                let body = String::from_utf8(message.body.to_vec()).expect("utf-8");
                // Every tenth message fails once: it must come back.
                if body.ends_with('0') && failed_once.lock().unwrap().insert(body.clone()) {
                    return ConsumeStatus::Failure;
                }
                received.lock().unwrap().insert(body);
                ConsumeStatus::Success
            }
        }
    };
    let consumer = PushConsumer::builder(client.clone(), "billing", "orders")
        .start_position(StartPosition::CommittedOrEarliest)
        .concurrency(8)
        .commit_interval(Duration::from_millis(100))
        .retry_delay(Duration::from_millis(10))
        .start(listener)
        .await
        .expect("start push consumer");
    eventually(Duration::from_secs(30), "every message", || received.lock().unwrap().len() == COUNT).await;
    assert_eq!(failed_once.lock().unwrap().len(), COUNT / 10);
    consumer.shutdown().await.expect("shutdown commits");

    for queue_id in 0..4 {
        let end = client.queue_offsets("orders", queue_id).await.expect("offsets").end;
        assert_eq!(client.fetch_offset("billing", "orders", queue_id).await.expect("fetch"), Some(end));
    }

    // The group resumes after its commits: only a new message is delivered.
    let again = Arc::new(Mutex::new(Vec::new()));
    let listener = {
        let again = again.clone();
        move |message: StoredMessage| {
            let again = again.clone();
            async move {
                again.lock().unwrap().push(message.body);
                ConsumeStatus::Success
            }
        }
    };
    let consumer = PushConsumer::builder(client.clone(), "billing", "orders")
        .start_position(StartPosition::CommittedOrEarliest)
        .start(listener)
        .await
        .expect("restart push consumer");
    producer.send(Message::new("orders", "after restart")).await.expect("send");
    eventually(Duration::from_secs(10), "the new message", || !again.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*again.lock().unwrap(), vec![Bytes::from_static(b"after restart")]);
    consumer.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consumer_flow_control_caps_the_cache() {
    const COUNT: usize = 200;
    const MAX_CACHED: usize = 10;
    const PULL_BATCH: u32 = 5;
    let harness = start().await;
    create_topic(&harness.client, "slow", 1).await;
    let batch: Vec<Message> = (0..COUNT).map(|i| Message::new("slow", format!("{i}"))).collect();
    Producer::new(harness.client.clone()).send_batch(batch).await.expect("send batch");

    // The listener waits for a permit per message, so the test decides when it consumes.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let consumed = Arc::new(Mutex::new(0usize));
    let listener = {
        let (gate, consumed) = (gate.clone(), consumed.clone());
        move |_: StoredMessage| {
            let (gate, consumed) = (gate.clone(), consumed.clone());
            async move {
                gate.acquire().await.expect("gate").forget();
                *consumed.lock().unwrap() += 1;
                ConsumeStatus::Success
            }
        }
    };
    let consumer = PushConsumer::builder(harness.client.clone(), "slow-readers", "slow")
        .start_position(StartPosition::CommittedOrEarliest)
        .concurrency(2)
        .max_cached_messages(MAX_CACHED)
        .pull_batch_size(PULL_BATCH)
        .start(listener)
        .await
        .expect("start");
    eventually(Duration::from_secs(10), "the cache to fill", || consumer.cached_messages() > MAX_CACHED).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cached = consumer.cached_messages();
    assert!(cached > MAX_CACHED && cached <= MAX_CACHED + PULL_BATCH as usize, "cached {cached}");

    gate.add_permits(COUNT);
    eventually(Duration::from_secs(20), "every message", || *consumed.lock().unwrap() == COUNT).await;
    assert_eq!(consumer.cached_messages(), 0);
    assert_eq!(consumer.cached_bytes(), 0);
    consumer.shutdown().await.expect("shutdown");
    assert_eq!(harness.client.fetch_offset("slow-readers", "slow", 0).await.expect("fetch"), Some(COUNT as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_redials_after_broker_restart() {
    let Harness { broker, client, dir } = start().await;
    create_topic(&client, "durable", 1).await;
    let producer = Producer::new(client.clone());
    producer.send(Message::new("durable", "before")).await.expect("send before restart");

    let addr = broker.local_addr();
    broker.shutdown().await.expect("shutdown");
    let broker = start_broker(dir.path(), addr).await;

    let sent = producer.send(Message::new("durable", "after")).await.expect("send after restart");
    assert_eq!(sent.queue_offset, 1);
    wait_until_stored(&client, "durable", 1, 2).await;
    let bodies: Vec<Bytes> =
        pull_all(&PullConsumer::new(client, "g"), "durable", 0).await.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["before", "after"]);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_is_refused() {
    let harness = start().await;
    let other = tempfile::tempdir().expect("temp dir");
    let stranger = start_broker(other.path(), "127.0.0.1:0".parse().unwrap()).await;
    let config = client_config(&harness.broker).with_ca_file(stranger.cert_path());
    let error = Client::connect(config).await.unwrap_err();
    assert!(matches!(error, Error::Connection(_)), "{error:?}");
    assert!(!error.is_transient(), "a TLS failure is not retried: {error:?}");
    stranger.shutdown().await.expect("shutdown");
}

/// A filter plugin in WAT (ABI v1) whose `weir_filter` has body `body`.
fn wat_filter(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "weir_abi_version") (result i32) i32.const 1)
            (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "weir_dealloc") (param i32 i32))
            (func (export "weir_filter") (param i32 i32) (result i32) {body}))"#
    ))
    .expect("valid WAT")
}

/// Sends `n` orders to queue 0 of `topic`, `region = r<i % 10>`.
async fn send_regions(client: &Client, topic: &str, n: usize) {
    let producer = Producer::new(client.clone());
    let batch = (0..n)
        .map(|i| {
            let mut m = Message::new(topic, i.to_string());
            m.queue_id = Some(0);
            m.properties = vec![("region".into(), format!("r{}", i % 10))];
            m
        })
        .collect();
    producer.send_batch(batch).await.expect("send");
    wait_until_stored(client, topic, 1, n as u64).await;
}

/// Pulls queue 0 from offset 0 to `end` with the consumer's subscription.
async fn drain(consumer: &PullConsumer, topic: &str, end: u64) -> Vec<String> {
    let mut bodies = Vec::new();
    let mut offset = 0;
    while offset < end {
        let page = consumer.pull(topic, 0, offset, 100, Duration::ZERO).await.expect("pull");
        bodies.extend(page.messages.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()));
        assert!(page.next_offset > offset, "pulls make progress");
        offset = page.next_offset;
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_plugins_run_after_sql_are_replaced_live_and_survive_a_restart() {
    let Harness { broker, client, dir } = start().await;
    create_topic(&client, "orders", 1).await;
    send_regions(&client, "orders", 100).await;
    let skip_all = client.upload_plugin(wat_filter("i32.const 0"), Some("gate"), Some("filter"), None).await;
    assert_eq!(skip_all.expect("upload").revision, 1);
    let mut consumer = PullConsumer::new(client.clone(), "g");
    consumer.subscribe("orders", &Subscription::sql("region = 'r7'").plugin("gate", "")).await.expect("subscribe");
    assert!(drain(&consumer, "orders", 100).await.is_empty(), "the plugin skips everything");
    let stats = client.group_stats("g", Some("orders")).await.expect("stats")[0].counters;
    assert_eq!((stats.body_reads, stats.evaluated_sql, stats.plugin_rejected), (10, 10, 10), "{stats:?}");

    // Replaced live: the same subscription calls the new version from its next message.
    client.upload_plugin(wat_filter("i32.const 1"), Some("gate"), None, None).await.expect("replace");
    let expected: Vec<String> = (7..100).step_by(10).map(|i: usize| i.to_string()).collect();
    assert_eq!(drain(&consumer, "orders", 100).await, expected);
    let listed = client.list_plugins().await.expect("list");
    assert_eq!((listed[0].name.as_str(), listed[0].revision, listed[0].calls), ("gate", 2, 20));
    assert_eq!(listed[0].subscriptions, 1);

    let addr = broker.local_addr();
    broker.shutdown().await.expect("shutdown");
    let broker = start_broker(dir.path(), addr).await;
    assert_eq!(drain(&consumer, "orders", 100).await, expected, "plugin and subscription are reloaded");
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_plugin_is_stopped_disabled_and_never_stalls_others() {
    let Harness { broker, client, dir: _dir } = start().await;
    create_topic(&client, "orders", 1).await;
    send_regions(&client, "orders", 20).await;
    client
        .upload_plugin(wat_filter("(loop (br 0)) i32.const 1"), Some("spin"), Some("filter"), None)
        .await
        .expect("upload");
    let mut spinning = PullConsumer::new(client.clone(), "spin-group");
    spinning.subscribe("orders", &Subscription::all().plugin("spin", "")).await.expect("subscribe");
    let plain = PullConsumer::new(client.clone(), "plain");

    let started = Instant::now();
    let (spun, others) = tokio::join!(drain(&spinning, "orders", 20), drain(&plain, "orders", 20));
    assert!(spun.is_empty());
    assert_eq!(others.len(), 20, "a group without the plugin is served meanwhile");
    assert!(started.elapsed() < Duration::from_secs(10), "calls are cut at their budget");
    let stats = client.group_stats("spin-group", None).await.expect("stats")[0].counters;
    assert_eq!(stats.plugin_errors, 20, "{stats:?}");
    let listed = client.list_plugins().await.expect("list");
    assert_eq!(listed[0].state, PluginState::Disabled, "{:?}", listed[0]);
    assert_eq!(listed[0].calls, 5, "disabled after 5 consecutive failures");
    assert_eq!(client.enable_plugin("spin").await.expect("enable"), 1);
    assert_eq!(client.list_plugins().await.expect("list")[0].state, PluginState::Active);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_plugins_and_removals_in_use_are_refused() {
    let Harness { broker, client, dir: _dir } = start().await;
    create_topic(&client, "orders", 1).await;
    let wasi = wat::parse_str(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))))"#,
    )
    .expect("valid WAT");
    let refused = client.upload_plugin(wasi, Some("wasi"), Some("filter"), None).await.expect_err("refused");
    assert_eq!(refused.code(), Some(ErrorCode::InvalidPlugin), "{refused}");
    let missing = Subscription::all().plugin("nowhere", "");
    let err = client.subscribe("g", "orders", &missing).await.expect_err("no such plugin");
    assert_eq!(err.code(), Some(ErrorCode::NotFound));

    client.upload_plugin(wat_filter("i32.const 1"), Some("keep"), Some("filter"), None).await.expect("upload");
    client.subscribe("g", "orders", &Subscription::all().plugin("keep", "")).await.expect("subscribe");
    let in_use = client.remove_plugin("keep", false).await.expect_err("in use");
    assert_eq!(in_use.code(), Some(ErrorCode::PluginInUse));
    client.remove_plugin("keep", true).await.expect("forced");
    assert!(client.list_plugins().await.expect("list").is_empty());
    broker.shutdown().await.expect("shutdown");
}

/// Topics routed through one producer by the route-cache test.
const ROUTED_TOPICS: u32 = 200;

fn queues_of(i: u32) -> u32 {
    i % 3 + 1
}

/// The producer's route cache: one topic list routes many topics, and topics created,
/// deleted or missing are still seen as the broker has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_producer_routes_many_topics_and_sees_topic_changes() {
    let harness = start().await;
    let client = &harness.client;
    for i in 0..ROUTED_TOPICS {
        create_topic(client, &format!("t{i:03}"), queues_of(i)).await;
    }
    let producer = Producer::new(client.clone());

    // Every topic at once: the lookups that miss share the topic list.
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..ROUTED_TOPICS {
        let producer = producer.clone();
        sends.spawn(async move { (i, producer.send(Message::new(format!("t{i:03}"), "x")).await) });
    }
    let sent = tokio::time::timeout(Duration::from_secs(30), sends.join_all()).await.expect("sends finish");
    assert_eq!(sent.len(), ROUTED_TOPICS as usize);
    for (i, result) in sent {
        let result = result.unwrap_or_else(|error| panic!("send to t{i:03}: {error}"));
        assert_eq!(result.status, SendStatus::SendOk);
        assert!(result.queue_id < queues_of(i), "t{i:03}: queue {}", result.queue_id);
    }

    // A topic that is not on the broker is refused as before.
    let error = producer.send(Message::new("nope", "x")).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownTopic), "{error}");

    // A topic created after the list was cached is routed at once.
    create_topic(client, "late", 2).await;
    let result = producer.send(Message::new("late", "x")).await.expect("send to a new topic");
    assert!(result.queue_id < 2);

    // A deleted topic: the broker refuses the cached route, and the producer forgets it.
    client.delete_topic("t000").await.expect("delete");
    for _ in 0..2 {
        let error = producer.send(Message::new("t000", "x")).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::UnknownTopic), "{error}");
    }
    // Created again with more queues: the next send fetches its new queue count.
    create_topic(client, "t000", 4).await;
    let mut queues_used = std::collections::HashSet::new();
    for _ in 0..8 {
        let result = producer.send(Message::new("t000", "x")).await.expect("send to the recreated topic");
        queues_used.insert(result.queue_id);
    }
    assert_eq!(queues_used.len(), 4, "round robin over the new queue count: {queues_used:?}");
}
