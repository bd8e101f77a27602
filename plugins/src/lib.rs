//! Weir's extension points for per-message policy.
//!
//! Layout:
//! - [`dlq`]: what happens to a message whose consumption failed: the
//!   [`DlqPolicy`] trait and RocketMQ's default retry schedule. A WebAssembly
//!   `dlq-policy` plugin (SPEC §5) will implement the same trait.

pub mod dlq;

pub use dlq::{DELAY_LEVELS, DefaultRetryPolicy, DlqPolicy, FailedDelivery, RetryDecision, dlq_topic, retry_topic};
