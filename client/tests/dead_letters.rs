//! Failed deliveries end to end, driven by hand through the client's calls (the push
//! consumer's use of them is in `retry.rs`): the retry schedule, the dead-letter topic,
//! resends, and dlq-policy plugins (a live one, a replaced one, failing ones).

use std::time::{Duration, Instant};

mod support;

use support::{client_config, create_topic, start_broker_with};
use weir_broker::{Broker, BrokerConfig, FlushKind};
use weir_client::{
    Change, Client, Error, ErrorCode, Message, NackDecision, NackResponse, ORIGIN_MSG_ID, ORIGIN_TOPIC, PolicyPlugin,
    Producer, PullConsumer, PullStatus, ResendOutcome, StoredMessage,
};

const GROUP: &str = "billing";
const RETRY: &str = "%RETRY%billing";

/// Test brokers: 100 ms ticks; retries after 400 ms, then 500 ms (levels 3 and 4 of a
/// short schedule); two redeliveries before the dead-letter topic.
fn tune(config: &mut BrokerConfig) {
    config.timer_precision_ms = 100;
    config.delay_levels = "100ms 200ms 400ms 500ms".into();
    config.max_reconsume_times = 2;
    config.flush = FlushKind::Sync;
}

async fn open(dir: &std::path::Path) -> (Broker, Client) {
    let broker = start_broker_with(dir, "127.0.0.1:0".parse().unwrap(), tune).await;
    let client = Client::connect(client_config(&broker)).await.expect("connect");
    create_topic(&client, "orders", 1).await;
    (broker, client)
}

fn order(body: &str) -> Message {
    let mut message = Message::new("orders", body.as_bytes().to_vec());
    message.tag = Some("created".into());
    message.keys = vec!["order-1".into()];
    message.properties = vec![("region".into(), "SH".into())];
    message.queue_id = Some(0);
    message
}

/// The next message of `topic`'s queue 0 at `offset`, waiting up to 5 s.
async fn next(client: &Client, topic: &str, offset: u64) -> StoredMessage {
    let consumer = PullConsumer::new(client.clone(), GROUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no message at {topic}@{offset} within 5 s");
        let page = consumer.pull(topic, 0, offset, 1, left).await.expect("pull");
        if page.status == PullStatus::Found
            && let Some(message) = page.messages.into_iter().next()
        {
            return message;
        }
    }
}

async fn nack(client: &Client, message: &StoredMessage, reason: &str) -> NackResponse {
    client.nack(GROUP, &message.msg_id, reason, None).await.expect("nack")
}

fn property<'a>(message: &'a StoredMessage, name: &str) -> Option<&'a str> {
    message.properties.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn user_properties(message: &StoredMessage) -> Vec<(String, String)> {
    message.properties.iter().filter(|(n, _)| !n.starts_with("__weir_")).cloned().collect()
}

/// The original's tag, keys, body and user properties are intact in `copy`.
fn assert_same_content(copy: &StoredMessage, original: &StoredMessage) {
    assert_eq!((&copy.tag, &copy.keys, &copy.body), (&original.tag, &original.keys, &original.body));
    assert_eq!(user_properties(copy), user_properties(original));
}

#[tokio::test]
async fn an_always_failing_message_follows_the_schedule_into_the_dlq_and_is_resent_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, client) = open(dir.path()).await;
    let producer = Producer::new(client.clone());
    producer.send(order("pay 10")).await.expect("send");
    let original = next(&client, "orders", 0).await;

    // Two retries, 400 ms then 500 ms later, each carrying where it came from.
    let mut failed = original.clone();
    for (attempt, delay_ms) in [(1u32, 400u64), (2, 500)] {
        let nacked_at = Instant::now();
        let answer = nack(&client, &failed, "timeout").await;
        assert_eq!(answer.decision, NackDecision::Retry { delay_ms });
        assert_eq!((answer.reconsume_times, answer.decided_by.as_str()), (attempt, ""));
        let retry = next(&client, RETRY, u64::from(attempt - 1)).await;
        let waited = nacked_at.elapsed();
        assert!(waited >= Duration::from_millis(delay_ms - 100), "retry {attempt} after {waited:?}");
        assert_eq!(retry.reconsume_times, attempt);
        assert_eq!(property(&retry, ORIGIN_TOPIC), Some("orders"));
        assert_eq!(property(&retry, ORIGIN_MSG_ID), Some(original.msg_id.as_str()));
        assert_same_content(&retry, &original);
        failed = retry;
    }

    // The third failure is past max_reconsume_times = 2: a dead letter.
    let answer = nack(&client, &failed, "still failing").await;
    assert_eq!((answer.decision, answer.reconsume_times), (NackDecision::DeadLetter, 2));
    let listed = client.dlq_list(GROUP, None, 0, 10).await.expect("list").entries;
    assert_eq!(listed.len(), 1);
    let dead = &listed[0];
    assert_eq!(dead.message.msg_id, answer.stored_msg_id);
    assert_eq!((dead.original_topic.as_str(), dead.original_msg_id.as_str()), ("orders", original.msg_id.as_str()));
    assert_eq!((dead.message.reconsume_times, dead.last_reason.as_str(), dead.resent), (2, "still failing", false));
    assert_same_content(&dead.message, &original);

    // Resent once: back on its topic as the producer sent it; a second resend is a no-op.
    let first = client.dlq_resend(GROUP, vec![dead.message.msg_id.clone()]).await.expect("resend").results;
    assert!(matches!(first[0].outcome, ResendOutcome::Resent { .. }), "{first:?}");
    let again = client.dlq_resend(GROUP, vec![dead.message.msg_id.clone()]).await.expect("resend").results;
    assert_eq!(again[0].outcome, ResendOutcome::AlreadyResent);
    let resent = next(&client, "orders", 1).await;
    assert_eq!(resent.reconsume_times, 0);
    assert_eq!(resent.properties, original.properties, "no reserved properties are left");
    assert_same_content(&resent, &original);
    assert!(client.dlq_list(GROUP, Some(&dead.message.msg_id), 0, 1).await.expect("get").entries[0].resent);

    let retry = client.describe_group(GROUP).await.expect("describe").retry;
    let s = retry.stats;
    assert_eq!((s.failures, s.retries, s.dead_letters, s.discards, s.resent), (3, 2, 1, 0, 1));
    assert_eq!((retry.max_reconsume_times, retry.group_limit), (2, false));
}

#[tokio::test]
async fn a_policy_plugin_decides_live_and_a_group_limit_overrides_the_brokers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, client) = open(dir.path()).await;
    let wasm = wat::parse_str(include_str!("../../examples/wat/validation_policy.wat")).expect("WAT");
    let uploaded = client.upload_plugin(wasm, None, None, None).await.expect("upload");
    assert_eq!((uploaded.name.as_str(), uploaded.kind.as_str()), ("validation_policy", "dlq-policy"));
    let attach = Change::Set(PolicyPlugin { plugin: "validation_policy".into(), params: String::new() });
    client.set_group_policy(GROUP, attach, Change::Keep).await.expect("attach");

    let producer = Producer::new(client.clone());
    producer.send(order("bad")).await.expect("send");
    producer.send(order("flaky")).await.expect("send");
    let bad = next(&client, "orders", 0).await;
    let answer = nack(&client, &bad, "validation: amount missing").await;
    assert_eq!((answer.decision, answer.decided_by.as_str()), (NackDecision::DeadLetter, "validation_policy"));

    // Other failures: three retries after 200 ms, then the dead-letter topic.
    let mut failed = next(&client, "orders", 1).await;
    for attempt in 1..=3u64 {
        let answer = nack(&client, &failed, "timeout").await;
        assert_eq!(answer.decision, NackDecision::Retry { delay_ms: 200 }, "attempt {attempt}");
        failed = next(&client, RETRY, attempt - 1).await;
    }
    assert_eq!(nack(&client, &failed, "timeout").await.decision, NackDecision::DeadLetter);
    assert_eq!(client.dlq_list(GROUP, None, 0, 10).await.expect("list").entries.len(), 2);

    let info = client.describe_group(GROUP).await.expect("describe").retry;
    assert_eq!(info.plugin.as_ref().map(|p| p.plugin.as_str()), Some("validation_policy"));
    assert_eq!((info.stats.policy_calls, info.stats.policy_errors, info.stats.fallbacks), (5, 0, 0));
    let listed = client.list_plugins().await.expect("plugins");
    let plugin = listed.iter().find(|p| p.name == "validation_policy").expect("listed");
    assert_eq!((plugin.groups, plugin.retries, plugin.dead_letters, plugin.discards), (1, 3, 2, 0));

    // Replaced live: a policy discarding everything decides the next failure.
    let discard = policy_wat("i64.const -2");
    client.upload_plugin(discard, Some("validation_policy"), None, None).await.expect("replace");
    producer.send(order("obsolete")).await.expect("send");
    let obsolete = next(&client, "orders", 2).await;
    let answer = nack(&client, &obsolete, "obsolete").await;
    assert_eq!((answer.decision, answer.stored_msg_id.as_str()), (NackDecision::Discard, ""));
    assert_eq!(client.describe_group(GROUP).await.expect("describe").retry.stats.discards, 1);

    // Detached, with the group's own limit of zero: the next failure is a dead letter.
    let info = client.set_group_policy(GROUP, Change::Clear, Change::Set(0)).await.expect("detach");
    assert_eq!((info.plugin, info.max_reconsume_times, info.group_limit), (None, 0, true));
    assert_eq!(nack(&client, &obsolete, "again").await.decision, NackDecision::DeadLetter);
}

#[tokio::test]
async fn a_trapping_or_endless_policy_falls_back_to_the_schedule_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, client) = open(dir.path()).await;
    let producer = Producer::new(client.clone());
    for (name, body) in [("trap", "unreachable"), ("spin", "(loop (br 0)) i64.const 0")] {
        client.upload_plugin(policy_wat(body), Some(name), Some("dlq-policy"), None).await.expect("upload");
    }
    for (i, name) in ["trap", "spin"].into_iter().enumerate() {
        let attach = Change::Set(PolicyPlugin { plugin: name.into(), params: String::new() });
        client.set_group_policy(GROUP, attach, Change::Keep).await.expect("attach");
        producer.send(order(name)).await.expect("send");
        let message = next(&client, "orders", i as u64).await;
        let answer = nack(&client, &message, "timeout").await;
        assert_eq!((answer.decision, answer.decided_by.as_str()), (NackDecision::Retry { delay_ms: 400 }, ""));
        let retry = next(&client, RETRY, i as u64).await;
        assert_eq!(property(&retry, ORIGIN_MSG_ID), Some(message.msg_id.as_str()));
        assert_eq!(retry.body, message.body, "{name}: the retry copy is stored");
    }
    let stats = client.describe_group(GROUP).await.expect("describe").retry.stats;
    assert_eq!((stats.fallbacks, stats.retries), (2, 2));
}

#[tokio::test]
async fn nacks_of_unknown_or_system_messages_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, client) = open(dir.path()).await;
    let refused = client.nack(GROUP, "0000000000000000000000FF", "", None).await;
    assert!(matches!(refused, Err(Error::Broker { code: ErrorCode::NotFound, .. })), "{refused:?}");
    let producer = Producer::new(client.clone());
    producer.send(order("x")).await.expect("send");
    let message = next(&client, "orders", 0).await;
    client.set_group_policy(GROUP, Change::Keep, Change::Set(0)).await.expect("limit");
    let dead = nack(&client, &message, "x").await;
    let refused = client.nack(GROUP, &dead.stored_msg_id, "", None).await;
    assert!(matches!(refused, Err(Error::Broker { code: ErrorCode::BadRequest, .. })), "{refused:?}");
    assert!(client.dlq_list("other", None, 0, 10).await.expect("list").entries.is_empty());
}

/// A dlq-policy module whose `weir_dlq_policy` body is `body` (an `i64` result).
fn policy_wat(body: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "weir_abi_version") (result i32) i32.const 1)
            (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "weir_dealloc") (param i32 i32))
            (func (export "weir_dlq_policy") (param i32 i32) (result i64) {body}))"#
    ))
    .expect("valid WAT")
}
