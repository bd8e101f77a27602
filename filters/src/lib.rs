//! Broker-side filtering: what a subscription lets through.
//!
//! The read path filters in stages, cheapest first (SPEC §4): the tag hash in
//! the ConsumeQueue entry, then the per-message bloom index, SQL92 and
//! WebAssembly filters. A pre-filter may only skip messages that cannot match.
//!
//! Layout:
//! - [`tag`]: tag subscriptions (`*`, `TagA || TagB`), matched on ConsumeQueue
//!   tag hashes first and re-checked on the exact tag.
//! - [`message_filter`]: the stage-5 contract ([`MessageFilter`]) that
//!   WebAssembly filter plugins implement.

pub mod message_filter;
pub mod tag;

pub use message_filter::{FilterCallError, FilterInput, MessageFilter};
pub use tag::{TagFilter, TagFilterError};
