//! Delayed delivery end to end: an in-process broker with a 100 ms timer tick and a
//! short `delay_levels` schedule, so every case runs in seconds.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod support;

use support::{client_config, create_topic, start_broker_with};
use weir_broker::{Broker, BrokerConfig, FlushKind};
use weir_client::{
    Client, DelayedDelivery, Error, ErrorCode, Message, Producer, PullConsumer, PullStatus, StoredMessage, Subscription,
};

/// Test brokers: 100 ms ticks, levels of 1 s, 2 s and 3 s, delays up to a minute.
fn tune(config: &mut BrokerConfig) {
    config.timer_precision_ms = 100;
    config.delay_levels = "1s 2s 3s".into();
    config.max_delay_ms = 60_000;
    config.flush = FlushKind::Sync;
}

async fn open(dir: &std::path::Path, listen: &str) -> (Broker, Client) {
    let broker = start_broker_with(dir, listen.parse().unwrap(), tune).await;
    let client = Client::connect(client_config(&broker)).await.expect("connect");
    (broker, client)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// Messages of `topic`'s queue `queue_id` from `offset` arriving before `until_ms`
/// (long polling), each with the time it was received.
async fn receive_until(
    consumer: &PullConsumer,
    topic: &str,
    queue_id: u32,
    offset: &mut u64,
    until_ms: u64,
) -> Vec<(StoredMessage, u64)> {
    let mut got = Vec::new();
    loop {
        let left = until_ms.saturating_sub(now_ms());
        if left == 0 {
            return got;
        }
        let page = consumer.pull(topic, queue_id, *offset, 64, Duration::from_millis(left)).await.expect("pull");
        *offset = page.next_offset;
        let at = now_ms();
        if page.status == PullStatus::Found {
            got.extend(page.messages.into_iter().map(|m| (m, at)));
        }
    }
}

/// Waits until the broker reports `pending` timers.
async fn wait_pending(client: &Client, pending: u64) {
    let deadline = now_ms() + 5000;
    loop {
        let timers = client.status().await.expect("status").timers;
        if timers.pending == pending {
            return;
        }
        assert!(now_ms() < deadline, "{} timers pending, expected {pending}: {timers:?}", timers.pending);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn bodies(messages: &[(StoredMessage, u64)]) -> Vec<String> {
    messages.iter().map(|(m, _)| String::from_utf8_lossy(&m.body).into_owned()).collect()
}

fn code(result: Result<impl std::fmt::Debug, Error>) -> (ErrorCode, String) {
    match result.expect_err("refused") {
        Error::Broker { code, message } => (code, message),
        other => panic!("not a broker refusal: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_arrives_at_its_time_intact_and_filtered_by_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, client) = open(dir.path(), "127.0.0.1:0").await;
    create_topic(&client, "orders", 1).await;
    let producer = Producer::new(client.clone());
    let mut tagged = PullConsumer::new(client.clone(), "tag-a");
    tagged.subscribe("orders", &Subscription::tag("TagA")).await.expect("subscribe");
    let everything = PullConsumer::new(client.clone(), "all");

    let mut delayed = Message::new("orders", "later").with_delay(Duration::from_millis(2000));
    delayed.tag = Some("TagA".into());
    delayed.keys = vec!["order-7".into()];
    delayed.properties = vec![("region".into(), "SH".into()), ("amount".into(), "12.5".into())];
    delayed.born_timestamp_ms = 1_700_000_000_123;
    let weir_client::Delivery::DeliverAtMs(due) = delayed.delivery else { unreachable!() };
    let mut other_tag = Message::new("orders", "other tag").with_delay(Duration::from_millis(2000));
    other_tag.tag = Some("TagB".into());
    let mut level = Message::new("orders", "level 1").with_delay_level(1);
    level.tag = Some("TagA".into());
    let mut now = Message::new("orders", "now");
    now.tag = Some("TagA".into());
    let sent = producer.send(delayed.clone()).await.expect("send delayed");
    let level_sent_at = now_ms();
    producer.send(level).await.expect("send by level");
    producer.send(other_tag).await.expect("send other tag");
    producer.send(now).await.expect("send immediate");
    assert_eq!(sent.queue_id, 0, "the real queue");
    wait_pending(&client, 3).await;

    // Before the due time, only the immediate message is there.
    let mut offset = 0;
    let early = receive_until(&tagged, "orders", 0, &mut offset, due - 300).await;
    assert_eq!(bodies(&early), ["now", "level 1"], "nothing before its time");
    let (level_message, level_at) = &early[1];
    assert!(*level_at >= level_sent_at + 1000, "level 1 (1 s) arrived after {} ms", level_at - level_sent_at);
    assert!(level_message.store_timestamp_ms >= level_sent_at + 1000);

    let late = receive_until(&tagged, "orders", 0, &mut offset, due + 1500).await;
    assert_eq!(bodies(&late), ["later"], "delivered once, TagB filtered out");
    let (message, arrived) = &late[0];
    assert!(*arrived >= due && message.store_timestamp_ms >= due, "never early");
    assert!(
        message.store_timestamp_ms <= due + 600,
        "within a few ticks: {} ms late",
        message.store_timestamp_ms - due
    );
    assert_eq!(message.tag.as_deref(), Some("TagA"));
    assert_eq!(message.keys, ["order-7"]);
    assert_eq!(message.properties, delayed.properties, "user properties only, in order");
    assert_eq!(message.born_timestamp_ms, 1_700_000_000_123);
    assert_eq!((message.topic.as_str(), message.queue_id), ("orders", 0));

    let mut all_offset = 0;
    let all = receive_until(&everything, "orders", 0, &mut all_offset, now_ms() + 100).await;
    assert_eq!(bodies(&all), ["now", "level 1", "later", "other tag"]);
    let by_key = client.messages_by_key("orders", "order-7", 10).await.expect("by key");
    assert_eq!(by_key.len(), 1, "the delivered copy is found by its key");
    let status = client.status().await.expect("status");
    assert_eq!((status.timers.pending, status.timers.delivered), (0, 3), "{:?}", status.timers);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_time_in_the_past_or_now_is_immediate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, client) = open(dir.path(), "127.0.0.1:0").await;
    create_topic(&client, "orders", 1).await;
    let producer = Producer::new(client.clone());
    let past = producer.send(Message::new("orders", "past").with_deliver_at(now_ms() - 10_000)).await.expect("send");
    let zero = producer.send(Message::new("orders", "zero").with_delay(Duration::ZERO)).await.expect("send");
    let epoch = producer.send(Message::new("orders", "epoch").with_deliver_at(0)).await.expect("send");
    assert_eq!((past.queue_offset, zero.queue_offset, epoch.queue_offset), (0, 1, 2), "stored in the topic itself");
    let stored = client.message_by_id(&past.msg_id).await.expect("by id");
    assert_eq!(stored.topic, "orders");
    assert!(client.cancel_message(&past.msg_id).await.is_err(), "nothing to cancel");
    let consumer = PullConsumer::new(client.clone(), "g");
    let mut offset = 0;
    let got = receive_until(&consumer, "orders", 0, &mut offset, now_ms() + 300).await;
    assert_eq!(bodies(&got), ["past", "zero", "epoch"]);
    assert_eq!(client.status().await.expect("status").timers.pending, 0);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maximum_delay_and_the_timer_topic_are_guarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = start_broker_with(dir.path(), "127.0.0.1:0".parse().unwrap(), |config| {
        tune(config);
        config.delay_levels = "1s 60s 60001ms".into();
    })
    .await;
    let client = Client::connect(client_config(&broker)).await.expect("connect");
    create_topic(&client, "orders", 1).await;
    let producer = Producer::new(client.clone());

    producer.send(Message::new("orders", "max").with_delay_level(2)).await.expect("exactly max_delay_ms");
    let (code_, message) = code(producer.send(Message::new("orders", "max + 1").with_delay_level(3)).await);
    assert_eq!(code_, ErrorCode::BadRequest);
    assert!(message.contains("max_delay_ms") && message.contains("60000"), "{message}");
    producer.send(Message::new("orders", "59 s").with_deliver_at(now_ms() + 59_000)).await.expect("within");
    let (code_, message) = code(producer.send(Message::new("orders", "65 s").with_deliver_at(now_ms() + 65_000)).await);
    assert_eq!(code_, ErrorCode::BadRequest);
    assert!(message.contains("max_delay_ms"), "{message}");
    let (code_, _) = code(producer.send(Message::new("orders", "u64").with_deliver_at(u64::MAX)).await);
    assert_eq!(code_, ErrorCode::BadRequest);

    let mut reserved = Message::new("orders", "sneaky");
    reserved.properties.push(("__weir_real_topic".into(), "elsewhere".into()));
    let (code_, message) = code(producer.send(reserved).await);
    assert_eq!(code_, ErrorCode::BadRequest);
    assert!(message.contains("reserved"), "{message}");

    // The timer topic: not sendable, not consumable, not listed.
    let (code_, _) = code(producer.send(Message::new("%TIMER%", "direct")).await);
    assert_eq!(code_, ErrorCode::UnknownTopic);
    let consumer = PullConsumer::new(client.clone(), "g");
    let (code_, _) = code(consumer.pull("%TIMER%", 0, 0, 10, Duration::ZERO).await);
    assert_eq!(code_, ErrorCode::UnknownTopic);
    for include_system in [false, true] {
        let topics = client.list_topics(include_system).await.expect("list");
        assert_eq!(topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["orders"]);
    }
    wait_pending(&client, 2).await;
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_message_never_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, client) = open(dir.path(), "127.0.0.1:0").await;
    create_topic(&client, "orders", 1).await;
    let producer = Producer::new(client.clone());
    let due = now_ms() + 1000;
    let kept = producer.send(Message::new("orders", "kept").with_deliver_at(due)).await.expect("send");
    let gone = producer.send(Message::new("orders", "gone").with_deliver_at(due)).await.expect("send");
    let later = producer.send(Message::new("orders", "later").with_delay_level(3)).await.expect("send");
    let plain = producer.send(Message::new("orders", "plain")).await.expect("send");

    let cancelled = client.cancel_message(&gone.msg_id).await.expect("cancel");
    assert_eq!((cancelled.topic.as_str(), cancelled.deliver_at_ms), ("orders", due));
    client.cancel_message(&later.msg_id).await.expect("cancel a later one");
    let (code_, message) = code(client.cancel_message(&gone.msg_id).await);
    assert_eq!(code_, ErrorCode::NotFound, "cancelled twice");
    assert!(message.contains("already cancelled"), "{message}");
    let (code_, message) = code(client.cancel_message(&plain.msg_id).await);
    assert_eq!(code_, ErrorCode::NotFound);
    assert!(message.contains("not a pending delayed message"), "{message}");
    let unknown = format!("{}{:016X}", &plain.msg_id[..8], 1u64 << 40);
    assert_eq!(code(client.cancel_message(&unknown).await).0, ErrorCode::NotFound);
    assert_eq!(code(client.cancel_message("not-an-id").await).0, ErrorCode::BadRequest);

    let consumer = PullConsumer::new(client.clone(), "g");
    let mut offset = 0;
    let got = receive_until(&consumer, "orders", 0, &mut offset, now_ms() + 4000).await;
    assert_eq!(bodies(&got), ["plain", "kept"], "the cancelled ones never arrive");
    let (code_, message) = code(client.cancel_message(&kept.msg_id).await);
    assert_eq!(code_, ErrorCode::NotFound, "already delivered");
    assert!(message.contains("no longer pending"), "{message}");
    let status = client.status().await.expect("status");
    assert_eq!((status.timers.cancelled, status.timers.delivered), (2, 1), "{:?}", status.timers);
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_pending_at_shutdown_are_all_delivered_after_a_restart_late_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, client) = open(dir.path(), "127.0.0.1:0").await;
    let addr = broker.local_addr().to_string();
    create_topic(&client, "orders", 2).await;
    let producer = Producer::new(client.clone());
    let start = now_ms();
    // Half fall due while the broker is down, half after it is back.
    let mut due = BTreeMap::new();
    for n in 0..40u64 {
        let at = start + 1000 + (n % 20) * 50 + if n % 2 == 0 { 0 } else { 4000 };
        let mut message = Message::new("orders", format!("m{n}")).with_deliver_at(at);
        message.queue_id = Some((n % 2) as u32);
        producer.send(message).await.expect("send");
        due.insert(format!("m{n}"), at);
    }
    // A cancel survives the restart too.
    let cancelled =
        producer.send(Message::new("orders", "cancelled").with_deliver_at(start + 4500)).await.expect("send");
    client.cancel_message(&cancelled.msg_id).await.expect("cancel");
    producer.close().await;
    client.close().await;
    broker.shutdown().await.expect("shutdown");

    tokio::time::sleep(Duration::from_millis(2500)).await; // the first half falls due meanwhile
    let (broker, client) = open(dir.path(), &addr).await;
    let consumer = PullConsumer::new(client.clone(), "g");
    let mut seen = BTreeMap::new();
    let mut offsets = [0, 0];
    // Queue 0 holds the first half (all due at the restart), queue 1 the second.
    while now_ms() < start + 8000 {
        for queue_id in 0..2u32 {
            let until = now_ms() + 100;
            for (message, _) in
                receive_until(&consumer, "orders", queue_id, &mut offsets[queue_id as usize], until).await
            {
                let body = String::from_utf8_lossy(&message.body).into_owned();
                let at = *due.get(&body).unwrap_or_else(|| panic!("{body} was not expected"));
                assert!(message.store_timestamp_ms >= at, "{body} delivered before its time");
                *seen.entry(body).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(seen.len(), 40, "none lost: {seen:?}");
    assert!(seen.values().all(|&n| n == 1), "none twice after a clean shutdown: {seen:?}");
    let status = client.status().await.expect("status");
    assert_eq!((status.timers.pending, status.timers.delivered), (0, 40), "{:?}", status.timers);
    broker.shutdown().await.expect("shutdown");
}
