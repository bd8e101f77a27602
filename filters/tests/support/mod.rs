//! Helpers the filters crate's integration tests share: a small index shape and
//! store geometry that roll files often.

#![allow(dead_code)] // each test file uses its own part

use weir_filters::{BloomShape, IndexShape};
use weir_storage::StoreConfig;

/// The topic the tests write.
pub const TOPIC: &str = "orders";
/// The property that marks shadow (stress-test) traffic.
pub const SHADOW: &str = "shadow";

/// Tiny blooms and files, so tests cross block and file boundaries.
pub fn shape() -> IndexShape {
    IndexShape {
        message: BloomShape { bytes: 8, hashes: 2 },
        block_entries: 4,
        block: BloomShape { bytes: 16, hashes: 2 },
        shadow_property: SHADOW.to_owned(),
        entries_per_file: 16,
    }
}

/// Small segments and queue files.
pub fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        segment_size: 64 * 1024,
        max_message_size: 8 * 1024,
        consume_queue_entries_per_file: 16,
        index_slots: 64,
        index_entries: 256,
        ..StoreConfig::new(dir)
    }
}
