//! Broker-side filtering: what a subscription lets through, and the index
//! that lets the broker skip messages without reading them (SPEC §4).
//!
//! The read path filters in stages, cheapest first: block summaries, the
//! shadow flag and tag hash, the per-message bloom index, the exact tag,
//! SQL92, then a WebAssembly filter. A pre-filter may only skip messages
//! that cannot match.
//!
//! Layout:
//! - [`tag`]: tag subscriptions (`*`, `TagA || TagB`), matched on ConsumeQueue
//!   tag hashes first and re-checked on the exact tag.
//! - [`bloom`]: term hashing, bloom filters as bit arrays, conditions compiled to probes.
//! - [`index`]: the [`BloomIndex`] dispatch hook: per-queue extension files of
//!   per-message blooms and block summaries.
//! - [`subscription`]: a compiled [`Subscription`] (expression, traffic role, plugin).
//! - [`pipeline`]: the [`ReadPath`] pass that turns ConsumeQueue entries into a page.
//! - [`stats`]: per-(group, topic) [`FilterStats`].
//! - [`message_filter`]: the stage-5 contract ([`MessageFilter`]) that
//!   WebAssembly filter plugins implement.
//!
//! **Boundary**: no networking here; storage is used through its public API only.

pub mod bloom;
pub mod index;
pub mod message_filter;
pub mod pipeline;
pub mod stats;
pub mod subscription;
pub mod tag;

pub use bloom::BloomShape;
pub use index::{BloomIndex, IndexShape, IndexShapeError, QueueBlooms};
pub use message_filter::{FilterCallError, FilterInput, MessageFilter};
pub use pipeline::{Page, PageLimits, ReadPath};
pub use stats::{FilterCounts, FilterStats};
pub use subscription::{Expression, Subscription, SubscriptionError, TrafficRole};
pub use tag::{TagFilter, TagFilterError};
