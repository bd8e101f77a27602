//! A real broker over QUIC when its disk fails, the faults injected through the
//! storage seam (`weir_storage::fault`): a failed fsync stops the store (fail-stop),
//! a full disk refuses metadata changes. Clients get typed errors, `status` says
//! why, nothing unacknowledged is served, and a restart recovers.

use std::collections::BTreeSet;
use std::time::Duration;

mod support;

use support::{client_config, create_topic, start_broker_with};
use weir_broker::FlushKind;
use weir_client::{Client, ErrorCode, Message, Producer, PullConsumer, PullStatus, SendStatus, StoreState};
use weir_storage::fault::{Fault, Op};
use weir_storage::{RecoveryMode, Store, StoreConfig};

async fn sync_broker(dir: &std::path::Path) -> (weir_broker::Broker, Client) {
    let broker = start_broker_with(dir, "127.0.0.1:0".parse().unwrap(), |c| c.flush = FlushKind::Sync).await;
    let client = Client::connect(client_config(&broker)).await.expect("connect");
    (broker, client)
}

/// Every body of queue 0 of `topic`, pulled without waiting.
async fn bodies(client: &Client, topic: &str) -> Vec<String> {
    let consumer = PullConsumer::new(client.clone(), "check");
    let (mut out, mut offset) = (Vec::new(), 0);
    loop {
        let page = consumer.pull(topic, 0, offset, 100, Duration::ZERO).await.expect("pull");
        if page.status != PullStatus::Found {
            return out;
        }
        offset = page.next_offset;
        out.extend(page.messages.iter().map(|m| String::from_utf8_lossy(&m.body).into_owned()));
    }
}

/// What `weir store check` does: a full-verification open; no record may be corrupt.
fn store_check(dir: &std::path::Path) {
    let store = Store::open(StoreConfig { recovery: RecoveryMode::Full, ..StoreConfig::new(dir) }).expect("open");
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    let report = store.verify();
    assert_eq!(report.corrupt, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_stops_the_store_and_a_restart_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked = Vec::new();
    {
        let (broker, client) = sync_broker(dir.path()).await;
        create_topic(&client, "payments", 1).await;
        let producer = Producer::new(client.clone());
        for n in 0..20 {
            let sent = producer.send(Message::new("payments", format!("p{n}"))).await.expect("send");
            assert_eq!(sent.status, SendStatus::SendOk);
            acked.push(format!("p{n}"));
        }
        let fault = Fault::inject(&dir.path().join("commitlog"), Op::Sync, libc::EIO);
        let refused = producer.send(Message::new("payments", "lost")).await.expect_err("its fsync failed");
        assert_eq!(refused.code(), Some(ErrorCode::StoreUnavailable), "{refused}");
        let refused = producer.send(Message::new("payments", "later")).await.expect_err("stopped");
        assert_eq!(refused.code(), Some(ErrorCode::StoreUnavailable), "{refused}");
        assert!(refused.to_string().contains("reopen"), "{refused}");
        let status = client.status().await.expect("status answers");
        assert_eq!(status.store.state, StoreState::Failed);
        assert!(status.store.reason.contains("flush failed"), "{}", status.store.reason);
        assert_eq!(bodies(&client, "payments").await, acked, "only durable messages are served");
        drop(fault);
        client.close().await;
        broker.shutdown().await.expect("shutdown");
    }
    store_check(dir.path());
    let (broker, client) = sync_broker(dir.path()).await;
    assert_eq!(client.status().await.expect("status").store.state, StoreState::Ok);
    let served = bodies(&client, "payments").await;
    assert!(served.starts_with(&acked), "every acknowledged message survives: {served:?}");
    assert!(!served.iter().any(|b| b == "later"), "a refused send was never written");
    let sent = Producer::new(client.clone()).send(Message::new("payments", "after")).await.expect("send");
    assert_eq!(sent.status, SendStatus::SendOk);
    client.close().await;
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_metadata_changes_and_loses_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (broker, client) = sync_broker(dir.path()).await;
        create_topic(&client, "orders", 1).await;
        client.create_group("billing", false).await.expect("group");
        let fault = Fault::inject(dir.path(), Op::Metadata, libc::ENOSPC);
        let topic = weir_client::TopicConfig { name: "refunds".into(), ..client.topic("orders").await.expect("topic") };
        let refused = client.create_topic(topic.clone()).await.expect_err("no space for the topics journal");
        assert_eq!(refused.code(), Some(ErrorCode::DiskFull), "{refused}");
        let refused = client.create_group("audit", true).await.expect_err("no space for the group file");
        assert_eq!(refused.code(), Some(ErrorCode::DiskFull), "{refused}");
        assert!(fault.hits() >= 2);
        // Messages still flow: the CommitLog has its own, pre-allocated space.
        let sent = Producer::new(client.clone()).send(Message::new("orders", "o1")).await.expect("send");
        assert_eq!(sent.status, SendStatus::SendOk);
        drop(fault);
        client.create_topic(topic).await.expect("space returned");
        client.create_group("audit", true).await.expect("space returned");
        client.close().await;
        broker.shutdown().await.expect("shutdown");
    }
    store_check(dir.path());
    let (broker, client) = sync_broker(dir.path()).await;
    let topics: BTreeSet<String> =
        client.list_topics(false).await.expect("topics").into_iter().map(|t| t.name).collect();
    assert!(topics.contains("orders") && topics.contains("refunds"), "{topics:?}");
    let groups: BTreeSet<String> = client.list_groups().await.expect("groups").into_iter().map(|g| g.name).collect();
    assert!(groups.contains("billing") && groups.contains("audit"), "{groups:?}");
    assert_eq!(bodies(&client, "orders").await, ["o1"]);
    client.close().await;
    broker.shutdown().await.expect("shutdown");
}
