//! Stage 5 of the read path: a user-supplied filter (a WebAssembly plugin)
//! that decides per message, after every cheaper stage let it through.
//!
//! This crate only defines the contract; `weir-plugins` implements it. A call
//! may be slow (microseconds to its CPU budget), so the broker makes it off its
//! async worker threads.

use std::fmt::Debug;

use weir_sql92::Term;

/// One message as a [`MessageFilter`] sees it, borrowed from the stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterInput<'a> {
    /// The message's topic.
    pub topic: &'a str,
    /// The queue it is stored in.
    pub queue_id: u32,
    /// Its position in that queue.
    pub queue_offset: u64,
    /// Its tag, empty for none.
    pub tag: &'a str,
    /// Its business keys.
    pub keys: &'a [&'a str],
    /// Its properties, in stored order.
    pub properties: &'a [(&'a str, &'a str)],
    /// Its body.
    pub body: &'a [u8],
    /// When the producer created it, ms since the Unix epoch.
    pub born_timestamp_ms: i64,
    /// How many times it was redelivered to this group.
    pub reconsume_times: u32,
}

/// Why a [`MessageFilter`] call gave no decision. The message is then not
/// delivered to that subscription and the failure is counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterCallError {
    /// This call failed (trap, budget exhausted, memory limit, bad return value).
    #[error("filter call failed: {0}")]
    Failed(String),
    /// The filter is disabled after repeated failures until re-enabled.
    #[error("filter is disabled: {0}")]
    Disabled(String),
}

/// A per-message delivery decision made by user code.
pub trait MessageFilter: Send + Sync + Debug {
    /// Whether `message` is delivered (`true`) or skipped (`false`).
    fn decide(&self, message: &FilterInput<'_>) -> Result<bool, FilterCallError>;

    /// Decides a batch in order, one result per message. Implementations that
    /// can amortise a call's fixed cost override this.
    fn decide_batch(&self, messages: &[FilterInput<'_>]) -> Vec<Result<bool, FilterCallError>> {
        messages.iter().map(|message| self.decide(message)).collect()
    }

    /// Index hints: terms every message this filter delivers carries (all of
    /// them), so the bloom stage skips messages without calling the filter.
    /// Empty means no hint.
    fn index_hints(&self) -> &[Term] {
        &[]
    }
}
