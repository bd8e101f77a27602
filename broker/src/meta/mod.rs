//! The broker's metadata, each kind in the store that suits how often it changes:
//!
//! - `topics`: topic metadata in an append-only `journal` (`topics.log`).
//! - `groups`: group roles and subscriptions, compiled once, in two JSON files
//!   replaced atomically (`json`).
//! - `offsets`: consumer offsets in redb (`consumer_offsets.redb`), written by one
//!   thread in group commits, through `redb_file` (its syncs go through the
//!   storage's fault seam).
//! - `policies`: groups' retry policies (`retry_policies.json`), attached dlq-policy
//!   plugins and retry counters.
//! - `resent`: dead letters resent, in a journal (`dlq_resent.log`).
//!
//! Every write is atomic and durable before memory changes, so a failed write leaves
//! memory and disk agreeing; every write blocks (fsync), so the core calls them off
//! the async workers.

pub mod groups;
pub mod journal;
pub mod json;
pub mod offsets;
pub mod policies;
pub mod redb_file;
pub mod resent;
pub mod topics;
