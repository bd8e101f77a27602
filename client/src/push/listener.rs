//! What a push consumer calls for each message.

use std::future::Future;

use weir_protocol::StoredMessage;

/// The outcome of consuming one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumeStatus {
    /// The message was processed; its offset may be committed.
    Success,
    /// The message could not be processed now; it is handed to the listener again after
    /// the consumer's retry delay. Its offset, and so every later offset of its queue,
    /// stays uncommitted until it succeeds.
    Failure,
}

/// Consumes the messages a [`PushConsumer`](crate::PushConsumer) delivers.
///
/// Called concurrently, up to the consumer's concurrency, in no particular order; a
/// panic counts as [`ConsumeStatus::Failure`]. Any async closure
/// `Fn(StoredMessage) -> impl Future<Output = ConsumeStatus>` is a listener:
///
/// ```
/// use weir_client::{ConsumeStatus, StoredMessage};
///
/// let listener = |message: StoredMessage| async move {
///     println!("{} bytes", message.body.len());
///     ConsumeStatus::Success
/// };
/// # fn is_listener(_: impl weir_client::MessageListener) {}
/// # is_listener(listener);
/// ```
pub trait MessageListener: Send + Sync + 'static {
    /// Processes one message.
    fn consume(&self, message: StoredMessage) -> impl Future<Output = ConsumeStatus> + Send;
}

impl<F, Fut> MessageListener for F
where
    F: Fn(StoredMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeStatus> + Send,
{
    fn consume(&self, message: StoredMessage) -> impl Future<Output = ConsumeStatus> + Send {
        self(message)
    }
}
