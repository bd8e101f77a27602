//! The Weir client library: producers and consumers over QUIC.
//!
//! A [`Client`] holds one QUIC connection (TLS 1.3, ALPN `weir/1`) to a broker; every
//! request travels on its own stream, so a long poll never delays a send. Build a
//! [`Producer`], a [`PullConsumer`] or a [`PushConsumer`] on a shared client.
//!
//! ```no_run
//! use weir_client::{Client, ClientConfig, ConsumeStatus, Message, Producer, PushConsumer, StoredMessage};
//!
//! # async fn run() -> Result<(), weir_client::Error> {
//! // WEIR_BROKER / WEIR_CA, or 127.0.0.1:7420 and ./weir-data/tls/cert.pem.
//! let client = Client::connect(ClientConfig::from_env()).await?;
//!
//! let producer = Producer::new(client.clone());
//! let mut message = Message::new("orders", "order #1 created");
//! message.tag = Some("created".to_owned());
//! message.keys.push("order-1".to_owned());
//! let sent = producer.send(message).await?;
//! println!("stored as {} at queue {} offset {}", sent.msg_id, sent.queue_id, sent.queue_offset);
//!
//! let consumer = PushConsumer::builder(client, "billing", "orders")
//!     .start(|message: StoredMessage| async move {
//!         println!("{:?}", message.body);
//!         ConsumeStatus::Success
//!     })
//!     .await?;
//! tokio::signal::ctrl_c().await.ok();
//! consumer.shutdown().await?; // commits what was consumed
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`ClientConfig`], [`CaSource`], defaults and environment variables.
//! - `connection`: TLS, dialing and redialing, one request per stream.
//! - `client`: [`Client`] and the admin calls (topics, offsets, lookups, consumer groups,
//!   retries and dead letters, status).
//! - `producer`: [`Producer`], [`ProducerConfig`], retries; `batch` splits batches to the
//!   frame limit; `route` caches each topic's write queue count.
//! - `selector`: [`QueueSelector`] for ordered sends, [`HashSelector`].
//! - `delay`: [`DelayedDelivery`] (`with_delay`, `with_deliver_at`, `with_delay_level`).
//! - `subscription`: [`Subscription`] (tag, SQL92, shadow), registered at the broker.
//! - `pull`: [`PullConsumer`].
//! - `push`: [`PushConsumer`] with flow control and offset commits.
//! - `error`: [`Error`], with the broker's [`ErrorCode`]s and retry classification.
//!
//! Message and result types are the protocol's ([`weir_protocol`]), re-exported here.

mod batch;
mod client;
mod coalesce;
pub mod config;
mod connection;
mod delay;
mod error;
mod member;
mod producer;
mod pull;
mod push;
mod route;
mod selector;
mod subscription;

pub use weir_protocol::bytes::Bytes;
pub use weir_protocol::retry::{LAST_REASON, ORIGIN_MSG_ID, ORIGIN_QUEUE, ORIGIN_TOPIC, RECONSUME_TIMES};
pub use weir_protocol::{
    AssignedQueue, BrokerStatus, CancelMessageResponse, Change, ConsumeMode, DeadLetter, Delivery, DlqListResponse,
    DlqResendResponse, ErrorCode, FilterCounters, FilterExpression, FlushMode, GroupConfig, GroupDescription,
    GroupSubscription, GroupSummary, MemberInfo, Message, NackDecision, NackResponse, OffsetTarget, PluginInfo,
    PluginState, PolicyPlugin, PullResponse, PullStatus, QueueLag, QueueOffset, ResendOutcome, ResendResult,
    ResetOffsetResponse, RetryPolicyInfo, RetryStats, SendResult, SendStatus, StoreState, StoreStatus, StoredMessage,
    SubscriptionConflict, SubscriptionStats, TimerStatus, TopicAssignment, TopicConfig, TopicPermissions,
};

pub use crate::client::Client;
pub use crate::config::{CaSource, ClientConfig};
pub use crate::connection::{
    bind as bind_udp, endpoint_config as quic_endpoint_config, quic_config as quic_client_config,
};
pub use crate::delay::DelayedDelivery;
pub use crate::error::Error;
pub use crate::producer::{Producer, ProducerConfig};
pub use crate::pull::PullConsumer;
pub use crate::push::{ConsumeStatus, MessageListener, PushConsumer, PushConsumerBuilder, StartPosition};
pub use crate::selector::{HashSelector, QueueSelector};
pub use crate::subscription::{SHADOW_PROPERTY, Subscription, mark_shadow};
