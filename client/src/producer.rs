//! [`Producer`]: sends messages, choosing queues and retrying transient failures.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;
use weir_protocol::{Message, Request, SendRequest, SendResult, SendStatus};

use crate::batch;
use crate::client::Client;
use crate::coalesce::{Coalescer, Outcome, Waiter};
use crate::connection::EncodedRequest;
use crate::error::Error;
use crate::route::TopicRoutes;
use crate::selector::{HashSelector, QueueSelector, RoundRobin, RoundRobins};

/// How a [`Producer`] chooses queues and retries.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// How many times a send is tried again after a transient failure (see
    /// [`Error::is_transient`]): lost connection, timeout, `TOO_MANY_STREAMS`.
    pub retries: u32,
    /// Pause before each retry.
    pub retry_backoff: Duration,
    /// Also retry when the broker stored the message but could not confirm the promised
    /// durability in time (status `FLUSH_DISK_TIMEOUT` and the like). Off by default:
    /// the message is stored, so a retry stores it twice.
    pub retry_on_flush_timeout: bool,
    /// Picks the queue for [`Producer::send_ordered`].
    pub selector: Arc<dyn QueueSelector>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            retry_on_flush_timeout: false,
            selector: Arc::new(HashSelector),
        }
    }
}

/// Sends messages to the broker.
///
/// Messages without a `queue_id` go to the topic's write queues in turn, each topic's
/// turn starting at a random queue (the queue count comes from ListTopics and is cached
/// for 30 s); [`send_ordered`](Self::send_ordered) sends all messages of one sharding
/// key to one queue. A message whose `born_timestamp_ms` is 0 is stamped with the
/// current time.
///
/// Transient failures are retried up to [`ProducerConfig::retries`] times. A send whose
/// answer was lost may have been stored, so a retried send can store a message twice
/// (at-least-once). Cloning is cheap; clones share the queue choice and the one-way sends
/// in flight.
#[derive(Debug, Clone)]
pub struct Producer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    config: ProducerConfig,
    routes: TopicRoutes,
    /// Per topic, the write queue its next round-robin message goes to.
    round_robins: RoundRobins,
    /// One-way sends still in flight, joined by [`Producer::close`].
    oneway: Mutex<JoinSet<()>>,
    /// Single round-robin sends waiting to share a request.
    coalescer: Coalescer,
}

/// Where the messages of a send go when they name no queue.
#[derive(Debug, Clone, Copy)]
enum Placement<'a> {
    /// The topic's write queues in turn, one queue per request; a retry moves on to the next queue.
    RoundRobin,
    /// The topic's write queues in turn, message by message (coalesced single sends, so
    /// that sharing a request does not change how messages spread over queues).
    EachRoundRobin,
    /// The selector's queue for this sharding key; a retry keeps it.
    ShardingKey(&'a str),
}

impl Producer {
    /// A producer with the default configuration.
    pub fn new(client: Client) -> Self {
        Self::with_config(client, ProducerConfig::default())
    }

    /// A producer with `config`.
    pub fn with_config(client: Client, config: ProducerConfig) -> Self {
        let shared = Shared {
            client,
            config,
            routes: TopicRoutes::default(),
            round_robins: RoundRobins::default(),
            oneway: Mutex::new(JoinSet::new()),
            coalescer: Coalescer::default(),
        };
        Producer { shared: Arc::new(shared) }
    }

    /// Sends one message and waits for the broker's result.
    ///
    /// Concurrent sends of messages that name no queue share requests (see the
    /// `coalesce` module): while two coalesced requests are in flight, messages
    /// sent meanwhile go together in the next one.
    pub async fn send(&self, message: Message) -> Result<SendResult, Error> {
        if message.queue_id.is_some() {
            return self.send_alone(message).await;
        }
        let (outcome, lead) = self.shared.coalescer.enqueue(message);
        if lead {
            self.lead().await;
        }
        match outcome.await {
            Ok(Outcome::Sent(result)) => Ok(result),
            Ok(Outcome::SendAlone(message)) => self.send_alone(message).await,
            Err(_) => Err(Error::Stream { reason: "the request carrying this message was abandoned".to_owned() }),
        }
    }

    async fn send_alone(&self, message: Message) -> Result<SendResult, Error> {
        let mut results = self.send_run(&mut vec![message], Placement::RoundRobin).await?;
        Ok(results.remove(0))
    }

    /// Takes a request slot's first batch in this task; if more messages wait
    /// afterwards, a background task keeps the slot and drains them, so the caller's
    /// own send is not held up.
    async fn lead(&self) {
        let Some(batch) = self.next_batch().await else { return };
        self.send_coalesced(batch).await;
        if let Some(mut batch) = self.next_batch().await {
            let producer = self.clone();
            tokio::spawn(async move {
                loop {
                    producer.send_coalesced(batch).await;
                    match producer.next_batch().await {
                        Some(next) => batch = next,
                        None => return,
                    }
                }
            });
        }
    }

    /// The next batch for a request slot, taken after yielding once to the runtime:
    /// senders woken by the response that just arrived (their messages were acked)
    /// then queue their next messages first, and they go in this request rather than
    /// one request each. No timer is involved, so a lone sender is not delayed.
    async fn next_batch(&self) -> Option<Vec<Waiter>> {
        tokio::task::yield_now().await;
        self.shared.coalescer.take_batch(self.shared.client.config().max_frame_payload as usize)
    }

    /// Sends coalesced messages in one request and tells each waiter its outcome.
    async fn send_coalesced(&self, batch: Vec<Waiter>) {
        let (mut messages, waiters): (Vec<Message>, Vec<_>) = batch.into_iter().unzip();
        match self.send_run(&mut messages, Placement::EachRoundRobin).await {
            Ok(results) => {
                for (waiter, result) in waiters.into_iter().zip(results) {
                    let _ = waiter.send(Outcome::Sent(result));
                }
            }
            Err(error) => {
                tracing::debug!(%error, count = messages.len(), "coalesced send failed; sending its messages alone");
                for (waiter, mut message) in waiters.into_iter().zip(messages) {
                    // Coalesced messages named no queue: a lone retry picks its own.
                    message.queue_id = None;
                    let _ = waiter.send(Outcome::SendAlone(message));
                }
            }
        }
    }

    /// Sends one message to the queue the [`QueueSelector`] picks for `sharding_key`, so
    /// messages with the same key are stored, and consumed, in send order. Retries keep
    /// the queue.
    pub async fn send_ordered(&self, message: Message, sharding_key: &str) -> Result<SendResult, Error> {
        let mut results = self.send_run(&mut vec![message], Placement::ShardingKey(sharding_key)).await?;
        Ok(results.remove(0))
    }

    /// Sends messages as batches, one result per message in order.
    ///
    /// The messages go in as few `Send` requests as the frame limit allows, each request
    /// to one queue per topic. When a request fails, the requests before it have been
    /// stored and the ones after it are not sent.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<Vec<SendResult>, Error> {
        let mut results = Vec::with_capacity(messages.len());
        let max_payload = self.shared.client.config().max_frame_payload as usize;
        for mut run in batch::split(messages, max_payload) {
            results.extend(self.send_run(&mut run, Placement::RoundRobin).await?);
        }
        Ok(results)
    }

    /// Sends one message without waiting for the broker's answer: the request is written
    /// by a background task, and failures are only logged (`tracing`, debug level). No
    /// retries.
    ///
    /// Returns once the queue is chosen and the request encoded; errors doing that are
    /// returned. Call [`close`](Self::close) before dropping the last clone: dropping
    /// it aborts one-way sends still in flight.
    pub async fn send_oneway(&self, mut message: Message) -> Result<(), Error> {
        stamp_born_time(std::slice::from_mut(&mut message));
        let mut messages = [message];
        let auto = [messages[0].queue_id.is_none()];
        self.place(&mut messages, &auto, Placement::RoundRobin).await?;
        let request = EncodedRequest::new(&Request::Send(SendRequest { messages: messages.into() }))?;
        let client = self.shared.client.clone();
        let mut oneway = self.shared.oneway.lock().expect("one-way task set lock");
        while oneway.try_join_next().is_some() {}
        oneway.spawn(async move {
            if let Err(error) = client.send(&request).await {
                tracing::debug!(%error, "one-way send failed");
            }
        });
        Ok(())
    }

    /// Waits for the one-way sends still in flight.
    pub async fn close(&self) {
        let mut in_flight = std::mem::take(&mut *self.shared.oneway.lock().expect("one-way task set lock"));
        while in_flight.join_next().await.is_some() {}
    }

    /// Sends `messages` in one request, retrying transient failures. The messages stay
    /// the caller's, with their born time and queue set.
    async fn send_run(&self, messages: &mut Vec<Message>, placement: Placement<'_>) -> Result<Vec<SendResult>, Error> {
        let config = &self.shared.config;
        stamp_born_time(messages);
        let auto: Vec<bool> = messages.iter().map(|message| message.queue_id.is_none()).collect();
        let mut attempt = 0;
        loop {
            let outcome = self.attempt(messages, &auto, placement).await;
            if let Err(error) = &outcome
                && error.code() == Some(weir_protocol::ErrorCode::UnknownTopic)
            {
                messages.iter().for_each(|message| self.shared.routes.invalidate(&message.topic));
            }
            if attempt >= config.retries || !should_retry(&outcome, config.retry_on_flush_timeout) {
                return outcome;
            }
            attempt += 1;
            match &outcome {
                Err(error) => tracing::debug!(%error, attempt, "send failed, retrying"),
                Ok(_) => tracing::debug!(attempt, "send not confirmed durable, retrying"),
            }
            tokio::time::sleep(config.retry_backoff).await;
        }
    }

    async fn attempt(
        &self,
        messages: &mut Vec<Message>,
        auto: &[bool],
        placement: Placement<'_>,
    ) -> Result<Vec<SendResult>, Error> {
        self.place(messages, auto, placement).await?;
        let request = Request::Send(SendRequest { messages: std::mem::take(messages) });
        let encoded = EncodedRequest::new(&request);
        if let Request::Send(send) = request {
            *messages = send.messages;
        }
        let results = self.shared.client.send(&encoded?).await?;
        if results.len() != messages.len() {
            return Err(Error::ResultCount { sent: messages.len(), received: results.len() });
        }
        Ok(results)
    }

    /// Sets the queue of each message marked `auto` (it named none): per topic one
    /// round-robin queue for the whole request, a round-robin queue per message for
    /// coalesced sends, or the selector's queue for the sharding key. A topic's route is
    /// looked up once per run of messages to it. Topics without write queues are left to
    /// the broker to refuse.
    async fn place(&self, messages: &mut [Message], auto: &[bool], placement: Placement<'_>) -> Result<(), Error> {
        let mut route: Option<TopicRun> = None;
        for (message, _) in messages.iter_mut().zip(auto).filter(|(_, auto)| **auto) {
            let run = match &mut route {
                Some(run) if run.topic == message.topic => run,
                route => {
                    let write_queues = self.shared.routes.write_queues(&self.shared.client, &message.topic).await?;
                    let round_robin = self.shared.round_robins.topic(&message.topic);
                    route.insert(TopicRun {
                        topic: message.topic.clone(),
                        write_queues,
                        round_robin,
                        request_queue: None,
                    })
                }
            };
            message.queue_id = match (placement, run.request_queue) {
                (Placement::RoundRobin, Some(queue)) => Some(queue),
                _ => {
                    run.write_queues.map(|write_queues| self.choose(message, write_queues, &run.round_robin, placement))
                }
            };
            run.request_queue = message.queue_id;
        }
        Ok(())
    }

    fn choose(
        &self,
        message: &Message,
        write_queues: NonZeroU32,
        round_robin: &RoundRobin,
        placement: Placement<'_>,
    ) -> u32 {
        match placement {
            Placement::RoundRobin | Placement::EachRoundRobin => round_robin.next(write_queues),
            Placement::ShardingKey(key) => {
                self.shared.config.selector.select(message, key, write_queues) % write_queues.get()
            }
        }
    }
}

/// The topic of the current run of messages being placed.
struct TopicRun {
    topic: String,
    /// Its write queue count.
    write_queues: Option<NonZeroU32>,
    /// Its round-robin.
    round_robin: Arc<RoundRobin>,
    /// The queue this request goes to (`Placement::RoundRobin`).
    request_queue: Option<u32>,
}

/// Whether a send attempt's outcome calls for another attempt, attempts permitting:
/// transient errors, and stored-but-not-confirmed results when so configured.
fn should_retry(outcome: &Result<Vec<SendResult>, Error>, retry_on_flush_timeout: bool) -> bool {
    match outcome {
        Ok(results) => retry_on_flush_timeout && results.iter().any(|result| result.status != SendStatus::SendOk),
        Err(error) => error.is_transient(),
    }
}

/// Stamps messages that carry no born time with the current Unix time in milliseconds.
fn stamp_born_time(messages: &mut [Message]) {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
    for message in messages.iter_mut().filter(|message| message.born_timestamp_ms == 0) {
        message.born_timestamp_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use weir_protocol::{ErrorCode, ErrorResponse};

    use super::*;

    fn result(status: SendStatus) -> SendResult {
        SendResult { msg_id: "id".to_owned(), queue_id: 0, queue_offset: 0, status }
    }

    fn refused(code: ErrorCode) -> Result<Vec<SendResult>, Error> {
        Err(ErrorResponse::new(code, "refused").into())
    }

    #[test]
    fn transient_errors_are_retried() {
        for retry_on_flush_timeout in [false, true] {
            assert!(should_retry(&Err(Error::Timeout { after: Duration::from_secs(3) }), retry_on_flush_timeout));
            assert!(should_retry(&refused(ErrorCode::TooManyStreams), retry_on_flush_timeout));
            assert!(should_retry(&Err(Error::Connection(quinn::ConnectionError::Reset)), retry_on_flush_timeout));
        }
    }

    #[test]
    fn refusals_and_successes_are_not_retried() {
        for code in [ErrorCode::UnknownTopic, ErrorCode::MessageTooLarge, ErrorCode::DiskFull, ErrorCode::BadRequest] {
            assert!(!should_retry(&refused(code), true));
        }
        assert!(!should_retry(&Ok(vec![result(SendStatus::SendOk)]), true));
    }

    #[test]
    fn flush_timeouts_are_retried_only_when_configured() {
        let outcome = Ok(vec![result(SendStatus::SendOk), result(SendStatus::FlushDiskTimeout)]);
        assert!(!should_retry(&outcome, false));
        assert!(should_retry(&outcome, true));
        assert!(!ProducerConfig::default().retry_on_flush_timeout);
        assert_eq!(ProducerConfig::default().retries, 2);
    }

    #[test]
    fn born_time_is_stamped_only_when_missing() {
        let mut messages = [Message::new("t", ""), Message::new("t", "")];
        messages[1].born_timestamp_ms = 42;
        stamp_born_time(&mut messages);
        assert!(messages[0].born_timestamp_ms > 1_600_000_000_000);
        assert_eq!(messages[1].born_timestamp_ms, 42);
    }
}
