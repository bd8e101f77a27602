//! Failed messages survive SIGKILL: a `weir broker --flush sync` child takes sends while a
//! consumer of group `g` fails every message it pulls (from the topic and from
//! `%RETRY%g`), committing its offsets after each nack is answered; the broker is killed
//! at a random moment, twice, with retry copies waiting in the timer, in `%RETRY%g` and
//! dead letters in `%DLQ%g`. After the last restart the consumer goes on failing until
//! every acknowledged send is a dead letter: none may be missing. Delivery is at least
//! once: the extra copies (a nack answered but its offset not yet committed at the kill)
//! are counted and reported.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::BrokerProcess;
use weir_client::{
    Client, ClientConfig, Message, Producer, ProducerConfig, PullConsumer, PullStatus, SendStatus, TopicConfig,
    TopicPermissions,
};

const GROUP: &str = "g";
const TOPICS: [&str; 2] = ["orders", "%RETRY%g"];

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// A client that gives up quickly on a killed broker.
fn client(broker: &BrokerProcess, runtime: &tokio::runtime::Runtime) -> Client {
    let mut config = ClientConfig::default()
        .with_broker(broker.addr.clone())
        .with_ca_file(broker.ca.clone())
        .with_request_timeout(Duration::from_secs(1));
    config.connect_timeout = Duration::from_secs(1);
    runtime.block_on(Client::connect(config)).expect("connect")
}

/// Sends numbered messages until the broker dies; returns the ids acknowledged.
async fn produce(client: Client, round: usize) -> Vec<String> {
    let mut config = ProducerConfig::default();
    config.retries = 0;
    let producer = Producer::with_config(client, config);
    let mut acked = Vec::new();
    for n in 0.. {
        match producer.send(Message::new("orders", format!("order {round}-{n}"))).await {
            Ok(result) if result.status == SendStatus::SendOk => acked.push(result.msg_id),
            _ => return acked,
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    acked
}

/// Fails every message of `orders` and `%RETRY%g` from the group's committed offsets,
/// committing after each answered nack, until `until_ms` or an error (the kill).
async fn fail_everything(client: Client, until_ms: u64) {
    let consumer = PullConsumer::new(client.clone(), GROUP);
    while now_ms() < until_ms {
        for topic in TOPICS {
            let Ok(offset) = client.fetch_offset(GROUP, topic, 0).await else { return };
            let Ok(page) = consumer.pull(topic, 0, offset.unwrap_or(0), 64, Duration::from_millis(50)).await else {
                if topic.starts_with('%') {
                    continue; // the retry topic does not exist before the first nack
                }
                return;
            };
            if page.status != PullStatus::Found {
                continue;
            }
            for message in &page.messages {
                if client.nack(GROUP, &message.msg_id, "always failing", None).await.is_err() {
                    return;
                }
                if client.commit_offset(GROUP, topic, 0, message.queue_offset + 1).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Every dead letter's original message id, with how many copies each has.
fn dead_letters(client: &Client, runtime: &tokio::runtime::Runtime) -> BTreeMap<String, u32> {
    let mut letters = BTreeMap::new();
    let mut offset = 0;
    loop {
        let page = runtime.block_on(client.dlq_list(GROUP, None, offset, 512)).expect("list dead letters");
        if page.entries.is_empty() {
            return letters;
        }
        offset = page.next_offset;
        for letter in page.entries {
            *letters.entry(letter.original_msg_id).or_default() += 1;
        }
    }
}

#[test]
fn sigkill_with_retries_pending_loses_no_failed_message() {
    let seed = std::env::var("WEIR_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(now_ms);
    eprintln!("retry crash test seed: {seed} (set WEIR_CRASH_SEED to replay)");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "timer_precision_ms = 100\ndelay_levels = \"100ms 200ms 300ms\"\nmax_reconsume_times = 2\nsegment_size = 16777216\n",
    )
    .expect("config");
    let config = config.to_str().expect("utf-8 path");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let mut broker = BrokerProcess::start_with(&data_dir, "sync", &["--config", config]);
    let addr = broker.addr.clone();
    let mut client = client(&broker, &runtime);
    let topic = TopicConfig {
        name: "orders".into(),
        read_queues: 1,
        write_queues: 1,
        permissions: TopicPermissions::READ_WRITE,
    };
    runtime.block_on(client.create_topic(topic)).expect("create topic");
    let mut acked = BTreeSet::new();
    for round in 0..2u64 {
        let producing = runtime.spawn(produce(client.clone(), round as usize));
        let failing = runtime.spawn(fail_everything(client.clone(), u64::MAX));
        let kill_after = Duration::from_millis(700 + (seed.wrapping_mul(round + 7)) % 1300);
        std::thread::sleep(kill_after);
        broker.signal("KILL");
        let _ = broker.child.wait();
        let sent = runtime.block_on(producing).expect("producer");
        runtime.block_on(failing).expect("consumer");
        eprintln!("round {round}: killed after {kill_after:?}, {} sends acknowledged", sent.len());
        assert!(!sent.is_empty(), "nothing was acknowledged before the kill");
        acked.extend(sent);
        drop(broker);
        broker = BrokerProcess::start_on(&data_dir, "sync", addr.clone(), &["--config", config]);
        client = self::client(&broker, &runtime);
    }

    // Fail on until every acknowledged send is a dead letter (or 30 s pass).
    let deadline = now_ms() + 30_000;
    let mut letters = dead_letters(&client, &runtime);
    while now_ms() < deadline && !acked.iter().all(|id| letters.contains_key(id)) {
        runtime.block_on(fail_everything(client.clone(), now_ms() + 500));
        letters = dead_letters(&client, &runtime);
    }
    let missing: Vec<&String> = acked.iter().filter(|id| !letters.contains_key(*id)).collect();
    let duplicates: u32 = letters.values().map(|n| n - 1).sum();
    let unacked = letters.keys().filter(|id| !acked.contains(*id)).count();
    eprintln!(
        "acknowledged {}, dead letters of {} messages, {duplicates} duplicate dead letters, {unacked} of sends not \
         acknowledged (in flight at a kill), {} missing",
        acked.len(),
        letters.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged messages lost: {:?}", &missing[..missing.len().min(20)]);
}
