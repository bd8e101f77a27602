//! The two small files of a timer store, each replaced durably and whole
//! (`weir_storage::durable::replace_file`: a crash leaves the old or the new one).
//!
//! - `timer.meta`, written once: format `magic u32 ("WTM1"), crc32c u32 of bytes 8..32,
//!   precision_ms u64, slots u64, segment_records u64` (little-endian, 32 bytes).
//! - `checkpoint`: format `magic u32 ("WTC1"), crc32c u32 of bytes 8..32,
//!   committed_tick u64, log_end u64, payload_end u64` (little-endian, 32 bytes).
//!   Every timer filed under a tick before `committed_tick` was delivered and the
//!   delivery committed; the wheel file reflects exactly the log's records before
//!   `log_end`, all of them durable; `payload_end` is the furthest end
//!   (`commitlog_offset + size`) of a payload filed in those records (0: none, or a
//!   checkpoint written before the field existed, when it was reserved and 0).

use std::path::Path;

use crate::config::Geometry;

const META_MAGIC: u32 = 0x5754_4d31; // "WTM1"
const CHECKPOINT_MAGIC: u32 = 0x5754_4331; // "WTC1"
const LEN: usize = 32;

/// What the last checkpoint made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Timers filed under earlier ticks are delivered and committed.
    pub committed_tick: u64,
    /// The wheel file reflects the records before this log position.
    pub log_end: u64,
    /// The furthest payload end filed in the records before `log_end` (see
    /// [`TimerStore::payload_end`](crate::TimerStore::payload_end)).
    pub payload_end: u64,
}

/// The geometry a store was created with (what its files' layout depends on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Tick length in ms.
    pub precision_ms: u64,
    /// Wheel slots.
    pub slots: u64,
    /// Records per log segment.
    pub segment_records: u64,
}

impl Meta {
    /// The layout a geometry gives.
    pub(crate) fn of(geometry: &Geometry) -> Self {
        Self { precision_ms: geometry.precision_ms, slots: geometry.slots, segment_records: geometry.segment_records }
    }
}

fn encode(magic: u32, fields: [u64; 3]) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    out[0..4].copy_from_slice(&magic.to_le_bytes());
    for (i, field) in fields.iter().enumerate() {
        out[8 + i * 8..16 + i * 8].copy_from_slice(&field.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(magic: u32, bytes: &[u8]) -> Option<[u64; 3]> {
    let bytes: &[u8; LEN] = bytes.try_into().ok()?;
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i..i + 8]);
        u64::from_le_bytes(b)
    };
    (u32_at(0) == magic && u32_at(4) == crc32c::crc32c(&bytes[8..])).then(|| [u64_at(8), u64_at(16), u64_at(24)])
}

/// A small file's contents: `Ok(None)` when missing, `Ok(Some(None))` when damaged.
fn read(path: &Path, magic: u32) -> std::io::Result<Option<Option<[u64; 3]>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(decode(magic, &bytes))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

impl Checkpoint {
    /// Reads the checkpoint: `Ok(None)` when missing, `Ok(Some(None))` when damaged.
    pub(crate) fn load(path: &Path) -> std::io::Result<Option<Option<Self>>> {
        Ok(read(path, CHECKPOINT_MAGIC)?.map(|fields| {
            fields.map(|[committed_tick, log_end, payload_end]| Self { committed_tick, log_end, payload_end })
        }))
    }

    /// Durably replaces the checkpoint.
    pub(crate) fn store(&self, path: &Path) -> std::io::Result<()> {
        weir_storage::durable::replace_file(
            path,
            &encode(CHECKPOINT_MAGIC, [self.committed_tick, self.log_end, self.payload_end]),
        )
    }
}

impl Meta {
    /// Reads the meta file: `Ok(None)` when missing, `Ok(Some(None))` when damaged.
    pub(crate) fn load(path: &Path) -> std::io::Result<Option<Option<Self>>> {
        Ok(read(path, META_MAGIC)?.map(|fields| {
            fields.map(|[precision_ms, slots, segment_records]| Self { precision_ms, slots, segment_records })
        }))
    }

    /// Durably writes the meta file.
    pub(crate) fn store(&self, path: &Path) -> std::io::Result<()> {
        weir_storage::durable::replace_file(
            path,
            &encode(META_MAGIC, [self.precision_ms, self.slots, self.segment_records]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint");
        assert_eq!(Checkpoint::load(&path).expect("read"), None);
        let checkpoint = Checkpoint { committed_tick: 1_700_000_000, log_end: 12, payload_end: 4096 };
        checkpoint.store(&path).expect("store");
        assert_eq!(Checkpoint::load(&path).expect("read"), Some(Some(checkpoint)));
        assert_eq!(Meta::load(&path).expect("read"), Some(None), "another file's magic");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[9] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(Checkpoint::load(&path).expect("read"), Some(None));
        std::fs::write(&path, &bytes[..31]).expect("write");
        assert_eq!(Checkpoint::load(&path).expect("read"), Some(None), "short");

        let meta = Meta { precision_ms: 1000, slots: 518_400, segment_records: 1 << 20 };
        let path = dir.path().join("timer.meta");
        meta.store(&path).expect("store");
        assert_eq!(Meta::load(&path).expect("read"), Some(Some(meta)));
    }
}
