//! [`PullConsumer`]: the application pulls pages of messages and commits offsets itself.

use std::time::Duration;

use weir_protocol::{FilterExpression, PullRequest, PullResponse};

use crate::client::Client;
use crate::error::Error;
use crate::subscription::Subscription;

/// Pulls messages from queues chosen by the application, for one consumer group.
///
/// The application tracks offsets: pull from an offset, process, continue from the
/// response's `next_offset`, and [`commit_offset`](Self::commit_offset) what it has
/// processed so a restart resumes there. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct PullConsumer {
    client: Client,
    group: String,
    filter: FilterExpression,
}

impl PullConsumer {
    /// A consumer for `group` receiving every message (filter `*`).
    pub fn new(client: Client, group: impl Into<String>) -> Self {
        PullConsumer { client, group: group.into(), filter: FilterExpression::All }
    }

    /// Registers `subscription` as the group's subscription to `topic` at the broker;
    /// this consumer's pulls then use the registered subscription of the topic they read
    /// (pulling a topic the group never subscribed to fails with
    /// [`ErrorCode::SubscriptionNotFound`](crate::ErrorCode::SubscriptionNotFound)).
    /// Returns the subscription's version.
    pub async fn subscribe(&mut self, topic: &str, subscription: &Subscription) -> Result<u64, Error> {
        let version = self.client.subscribe(&self.group, topic, subscription).await?;
        self.filter = FilterExpression::Subscribed;
        Ok(version)
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Pulls up to `max_messages` messages of `topic`'s queue `queue_id` from `offset`.
    ///
    /// Long polling: when nothing matches yet, the broker holds the request up to
    /// `max_wait` (whole milliseconds) and answers as soon as a matching message arrives,
    /// or with status `NoNewMessage` when the wait ends. `Duration::ZERO` answers at
    /// once. Continue from the response's `next_offset` whatever its status.
    pub async fn pull(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_messages: u32,
        max_wait: Duration,
    ) -> Result<PullResponse, Error> {
        let request = PullRequest {
            member: None,
            consumer_group: self.group.clone(),
            topic: topic.to_owned(),
            queue_id,
            offset,
            max_messages,
            max_wait_ms: u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX),
            filter: self.filter.clone(),
        };
        self.client.pull(request).await
    }

    /// Records that this group has processed the queue up to, not including, `offset`.
    pub async fn commit_offset(&self, topic: &str, queue_id: u32, offset: u64) -> Result<(), Error> {
        self.client.commit_offset(&self.group, topic, queue_id, offset).await
    }

    /// The offset this group last committed for the queue, `None` if it never did.
    pub async fn fetch_offset(&self, topic: &str, queue_id: u32) -> Result<Option<u64>, Error> {
        self.client.fetch_offset(&self.group, topic, queue_id).await
    }
}
