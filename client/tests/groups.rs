//! Consumer groups end to end: several push consumers of one group, each on its own
//! connection as separate processes would be, against a real broker with short
//! heartbeat settings (200 ms heartbeats, a member silent for 1 s is removed).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Harness, client_config, create_topic, eventually, start_broker_with};
use weir_client::{
    Client, ConsumeStatus, ErrorCode, Message, Producer, PushConsumer, StartPosition, StoredMessage, Subscription,
};

/// Who received which message: body → (queue id, member) of each delivery, in order.
type Received = Arc<Mutex<BTreeMap<String, Vec<(u32, String)>>>>;

async fn start() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start_broker_with(dir.path(), "127.0.0.1:0".parse().unwrap(), |config| {
        config.heartbeat_interval_ms = 200;
        config.member_timeout_ms = 1_000;
    })
    .await;
    let client = Client::connect(client_config(&broker)).await.expect("connect");
    Harness { broker, client, dir }
}

/// A member of `group` on its own connection, recording what it consumes.
async fn member(harness: &Harness, group: &str, name: &str, received: &Received) -> PushConsumer {
    let client = Client::connect(client_config(&harness.broker)).await.expect("connect");
    let (received, name) = (received.clone(), name.to_owned());
    PushConsumer::builder(client, group, "orders")
        .member_id(name.clone())
        .commit_interval(Duration::from_millis(100))
        .start_position(StartPosition::CommittedOrEarliest)
        .start(move |message: StoredMessage| {
            let (received, name) = (received.clone(), name.clone());
            async move {
                // A little work per message, so queues move while messages are in flight.
                tokio::time::sleep(Duration::from_micros(200)).await;
                let body = String::from_utf8(message.body.to_vec()).expect("utf-8");
                received.lock().unwrap().entry(body).or_default().push((message.queue_id, name));
                ConsumeStatus::Success
            }
        })
        .await
        .expect("start member")
}

async fn send(producer: &Producer, range: std::ops::Range<usize>) {
    let batch: Vec<Message> = range.map(|i| Message::new("orders", format!("m{i}"))).collect();
    producer.send_batch(batch).await.expect("send");
}

/// Waits until `members` own every queue of the 8, each exactly once, spread evenly
/// (the group's `average` strategy). Each member's view follows its own held
/// heartbeat, so until every member has heard of the last join the queues can still be
/// split among fewer of them.
async fn settled(members: &[&PushConsumer]) {
    let (low, high) = (8 / members.len(), 8_usize.div_ceil(members.len()));
    eventually(Duration::from_secs(10), "the queues to settle", || {
        let mut owned: Vec<u32> = members.iter().flat_map(|m| m.queue_ids()).collect();
        owned.sort_unstable();
        owned == (0..8).collect::<Vec<_>>() && members.iter().all(|m| (low..=high).contains(&m.queue_ids().len()))
    })
    .await;
}

/// Every message received at least once; returns how many were received twice or more.
fn duplicates(received: &Received, count: usize) -> usize {
    let received = received.lock().unwrap();
    assert_eq!(received.len(), count, "every message is received");
    received.values().filter(|by| by.len() > 1).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_the_queues_and_rebalance_on_join_leave_and_crash() {
    const COUNT: usize = 4000;
    let harness = start().await;
    create_topic(&harness.client, "orders", 8).await;
    let producer = Producer::new(harness.client.clone());
    let received: Received = Arc::default();
    let a = member(&harness, "g", "a", &received).await;
    let b = member(&harness, "g", "b", &received).await;
    let c = member(&harness, "g", "c", &received).await;
    settled(&[&a, &b, &c]).await;
    for m in [&a, &b, &c] {
        assert!((2..=3).contains(&m.queue_ids().len()), "{} owns {:?}", m.member_id(), m.queue_ids());
    }
    send(&producer, 0..400).await;
    eventually(Duration::from_secs(10), "the first batch", || received.lock().unwrap().len() == 400).await;
    assert_eq!(duplicates(&received, 400), 0, "nothing failed: each message once");

    // Messages keep flowing while a member joins, one leaves and one crashes.
    let sending = tokio::spawn(async move {
        for start in (400..COUNT).step_by(100) {
            send(&producer, start..start + 100).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let d = member(&harness, "g", "d", &received).await;
    settled(&[&a, &b, &c, &d]).await;
    d.shutdown().await.expect("leave");
    settled(&[&a, &b, &c]).await;
    drop(c); // a crash: no commit, no leave; the broker removes it after 1 s of silence
    settled(&[&a, &b]).await;
    sending.await.expect("sender");
    eventually(Duration::from_secs(20), "every message", || received.lock().unwrap().len() == COUNT).await;
    let dups = duplicates(&received, COUNT);
    println!("{COUNT} messages, {dups} received more than once (join, leave, crash under load)");

    // Once settled, each queue is consumed by one member only.
    let mark = received.lock().unwrap().len();
    send(&Producer::new(harness.client.clone()), COUNT..COUNT + 400).await;
    eventually(Duration::from_secs(10), "the last batch", || received.lock().unwrap().len() == mark + 400).await;
    let mut consumers: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for i in COUNT..COUNT + 400 {
        for (queue_id, name) in &received.lock().unwrap()[&format!("m{i}")] {
            consumers.entry(*queue_id).or_default().insert(name.clone());
        }
    }
    assert!(consumers.values().all(|members| members.len() == 1), "{consumers:?}");
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_members_each_receive_everything_and_resume_their_own_offsets() {
    let harness = start().await;
    create_topic(&harness.client, "orders", 4).await;
    let producer = Producer::new(harness.client.clone());
    let received: BTreeMap<&str, Received> = [("a", Received::default()), ("b", Received::default())].into();
    let broadcast = |name: &'static str| {
        let received = received[name].clone();
        let broker = client_config(&harness.broker);
        async move {
            let client = Client::connect(broker).await.expect("connect");
            PushConsumer::builder(client, "everyone", "orders")
                .broadcasting(true)
                .member_id(name)
                .commit_interval(Duration::from_millis(100))
                .start(move |message: StoredMessage| {
                    let received = received.clone();
                    async move {
                        let body = String::from_utf8(message.body.to_vec()).expect("utf-8");
                        received.lock().unwrap().entry(body).or_default().push((message.queue_id, name.to_owned()));
                        ConsumeStatus::Success
                    }
                })
                .await
                .expect("start")
        }
    };
    let a = broadcast("a").await;
    let b = broadcast("b").await;
    assert_eq!((a.queue_ids().len(), b.queue_ids().len()), (4, 4));
    send(&producer, 0..100).await;
    for name in ["a", "b"] {
        eventually(Duration::from_secs(10), "everything", || received[name].lock().unwrap().len() == 100).await;
    }
    // b restarts with the same id and resumes from its own offsets: only new messages.
    b.shutdown().await.expect("shutdown");
    send(&producer, 100..150).await;
    let b = broadcast("b").await;
    eventually(Duration::from_secs(10), "the new ones", || received["b"].lock().unwrap().len() == 150).await;
    assert_eq!(duplicates(&received["b"], 150), 0, "b read nothing twice");
    eventually(Duration::from_secs(10), "a gets them too", || received["a"].lock().unwrap().len() == 150).await;
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_subscription_is_refused_then_replaced_deliberately() {
    let harness = start().await;
    create_topic(&harness.client, "orders", 2).await;
    let received = Received::default();
    let first = member(&harness, "billing", "a", &received).await;
    let client = Client::connect(client_config(&harness.broker)).await.expect("connect");
    let conflicting = PushConsumer::builder(client.clone(), "billing", "orders")
        .subscription(Subscription::tag("paid"))
        .start(|_: StoredMessage| async { ConsumeStatus::Success })
        .await
        .expect_err("refused");
    assert_eq!(conflicting.code(), Some(ErrorCode::SubscriptionConflict));
    assert!(conflicting.to_string().contains("paid"), "the error names both expressions: {conflicting}");
    let replacing = PushConsumer::builder(client, "billing", "orders")
        .subscription(Subscription::tag("paid"))
        .replace_subscription(true)
        .start(|_: StoredMessage| async { ConsumeStatus::Success })
        .await
        .expect("a deliberate replacement is accepted");
    let stats = harness.client.group_stats("billing", Some("orders")).await.expect("stats");
    assert_eq!(stats[0].expression, "tag paid");
    // The first member stays, following the group's new subscription.
    let producer = Producer::new(harness.client.clone());
    let mut paid = Message::new("orders", "paid order");
    paid.tag = Some("paid".into());
    producer.send_batch(vec![Message::new("orders", "other"), paid]).await.expect("send");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(first.queue_ids().len() + replacing.queue_ids().len(), 2, "both members stay");
    let received: Vec<String> = received.lock().unwrap().keys().cloned().collect();
    assert!(!received.contains(&"other".to_owned()), "the new subscription applies to every member: {received:?}");
    replacing.shutdown().await.expect("shutdown");
    first.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_members_keep_each_keys_order_across_a_rebalance_and_a_crash() {
    const KEYS: usize = 16;
    const PER_KEY: usize = 60;
    let harness = start().await;
    create_topic(&harness.client, "orders", 8).await;
    // key → sequence numbers in the order they were consumed.
    let seen: Arc<Mutex<BTreeMap<usize, Vec<usize>>>> = Arc::default();
    let orderly = |name: &'static str| {
        let seen = seen.clone();
        let broker = client_config(&harness.broker);
        async move {
            let client = Client::connect(broker).await.expect("connect");
            PushConsumer::builder(client, "ledger", "orders")
                .orderly(true)
                .member_id(name)
                .commit_interval(Duration::from_millis(100))
                .start_position(StartPosition::CommittedOrEarliest)
                .start(move |message: StoredMessage| {
                    let seen = seen.clone();
                    async move {
                        let body = String::from_utf8(message.body.to_vec()).expect("utf-8");
                        let (key, seq) = body.split_once(':').expect("key:seq");
                        let (key, seq) = (key.parse().expect("key"), seq.parse().expect("seq"));
                        seen.lock().unwrap().entry(key).or_default().push(seq);
                        ConsumeStatus::Success
                    }
                })
                .await
                .expect("start")
        }
    };
    let producer = Producer::new(harness.client.clone());
    let send_round = |round: std::ops::Range<usize>| {
        let producer = producer.clone();
        async move {
            for seq in round {
                for key in 0..KEYS {
                    let message = Message::new("orders", format!("{key}:{seq}"));
                    producer.send_ordered(message, &key.to_string()).await.expect("send");
                }
            }
        }
    };
    let a = orderly("a").await;
    send_round(0..20).await;
    let b = orderly("b").await; // a rebalance while messages flow
    send_round(20..40).await;
    drop(a); // a crash
    send_round(40..PER_KEY).await;
    let done = || seen.lock().unwrap().values().all(|seqs| seqs.iter().collect::<BTreeSet<_>>().len() == PER_KEY);
    eventually(Duration::from_secs(20), "every key's messages", || seen.lock().unwrap().len() == KEYS && done()).await;
    let mut replays = 0;
    for (key, seqs) in seen.lock().unwrap().iter() {
        // A replay after the crash goes back to the last commit and runs forward again;
        // new messages are only ever consumed in send order.
        let mut first_seen = BTreeSet::new();
        let firsts: Vec<usize> = seqs.iter().copied().filter(|seq| first_seen.insert(*seq)).collect();
        assert_eq!(firsts, (0..PER_KEY).collect::<Vec<_>>(), "key {key}: {seqs:?}");
        replays += seqs.len() - PER_KEY;
    }
    println!("{} messages in order per key; {replays} replayed after the crash", KEYS * PER_KEY);
    b.shutdown().await.expect("shutdown");
}
