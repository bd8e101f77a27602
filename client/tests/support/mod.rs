//! A broker on an ephemeral loopback port with a temporary data directory, and helpers
//! the client's end-to-end tests share.

#![allow(dead_code)] // each test file uses its own part

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weir_broker::{Broker, BrokerConfig};
use weir_client::{Client, ClientConfig, TopicConfig, TopicPermissions};

/// Messages above this size are refused by the test brokers.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// A broker, a client connected to it, and its data directory.
pub struct Harness {
    pub broker: Broker,
    pub client: Client,
    pub dir: tempfile::TempDir,
}

/// A broker on `listen` over `dir`, with test-sized segments and message limit.
pub async fn start_broker(dir: &std::path::Path, listen: SocketAddr) -> Broker {
    start_broker_with(dir, listen, |_| {}).await
}

/// [`start_broker`], with `tune` applied to the configuration.
pub async fn start_broker_with(
    dir: &std::path::Path,
    listen: SocketAddr,
    tune: impl FnOnce(&mut BrokerConfig),
) -> Broker {
    let mut config = BrokerConfig::new(dir);
    config.listen = listen;
    config.segment_size = 64 << 20;
    config.max_message_size = MAX_MESSAGE_SIZE;
    tune(&mut config);
    Broker::start(config).await.expect("start broker")
}

/// A client configuration for `broker`.
pub fn client_config(broker: &Broker) -> ClientConfig {
    ClientConfig::default().with_broker(broker.local_addr().to_string()).with_ca_file(broker.cert_path())
}

/// A fresh broker and a client.
pub async fn start() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start_broker(dir.path(), "127.0.0.1:0".parse().unwrap()).await;
    let client = Client::connect(client_config(&broker)).await.expect("connect");
    Harness { broker, client, dir }
}

/// Creates `name` with `queues` read and write queues.
pub async fn create_topic(client: &Client, name: &str, queues: u32) {
    let topic = TopicConfig {
        name: name.to_owned(),
        read_queues: queues,
        write_queues: queues,
        permissions: TopicPermissions::READ_WRITE,
    };
    client.create_topic(topic).await.expect("create topic");
}

/// Waits until `done` holds, failing the test after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
