//! The timing wheel: one slot per tick of a window, each holding the chain of
//! timer-log records filed under the tick it currently stands for.
//!
//! File format (little-endian): a 64-byte header `magic u32 ("WTW1"), version u32 (1),
//! slots u64, precision_ms u64, reserved [u8; 36] (0), crc32c u32 of bytes 0..60`,
//! then `slots` slots of 32 bytes: `time_ms u64` (start of the tick the slot holds),
//! `first u64`, `last u64` (positions in the timer log; `u64::MAX` when empty),
//! `count u32` (timer records in the chain; cancels are not counted), `crc32c u32`
//! of the slot's first 28 bytes. An all-zero slot is empty (a file grown with zeroes).
//!
//! The wheel lives in memory (O(slots)) and is written to its file only by a
//! checkpoint, after the timer log is synced: the file is always a checkpoint's image,
//! never ahead of the log it points into. Slots are 32 bytes at 64 + 32 i, so no slot
//! straddles a 512-byte sector: a write torn by a power loss leaves each slot whole,
//! either as it was or as written.

use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::config::Geometry;
use crate::record::NONE;

/// Bytes per slot.
pub const SLOT_LEN: usize = 32;
/// Bytes of the header before the first slot.
pub const HEADER_LEN: usize = 64;
/// "WTW1".
const MAGIC: u32 = 0x5754_5731;
const VERSION: u32 = 1;
/// Slots per dirty-tracking page (4 KiB of slots).
const PAGE_SLOTS: usize = 4096 / SLOT_LEN;

/// One slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Start of the tick it holds (meaningless when empty).
    pub time_ms: u64,
    /// First record of the chain ([`NONE`] when empty).
    pub first: u64,
    /// Last record of the chain, where a walk starts ([`NONE`] when empty).
    pub last: u64,
    /// Timer records in the chain.
    pub count: u32,
}

impl Slot {
    const EMPTY: Slot = Slot { time_ms: 0, first: NONE, last: NONE, count: 0 };

    fn is_empty(&self) -> bool {
        self.last == NONE
    }

    fn encode(&self) -> [u8; SLOT_LEN] {
        let mut out = [0u8; SLOT_LEN];
        out[0..8].copy_from_slice(&self.time_ms.to_le_bytes());
        out[8..16].copy_from_slice(&self.first.to_le_bytes());
        out[16..24].copy_from_slice(&self.last.to_le_bytes());
        out[24..28].copy_from_slice(&self.count.to_le_bytes());
        let crc = crc32c::crc32c(&out[..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Slot> {
        if bytes.iter().all(|&b| b == 0) {
            return Some(Slot::EMPTY);
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if u32_at(28) != crc32c::crc32c(&bytes[..28]) {
            return None;
        }
        let slot = Slot { time_ms: u64_at(0), first: u64_at(8), last: u64_at(16), count: u32_at(24) };
        // Either both ends point somewhere, in order, or neither does.
        let consistent =
            if slot.last == NONE { slot.first == NONE && slot.count == 0 } else { slot.first <= slot.last };
        consistent.then_some(slot)
    }
}

/// Two different live ticks want one slot: the wheel or the log is inconsistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The tick being filed.
    pub tick: u64,
    /// The live tick the slot holds.
    pub held: u64,
}

/// The wheel in memory, with the pages changed since it was last written.
#[derive(Debug)]
pub struct Wheel {
    geometry: Geometry,
    slots: Vec<Slot>,
    /// One bit per page of [`PAGE_SLOTS`] slots changed since the last write.
    dirty: Vec<u64>,
}

impl Wheel {
    /// An empty wheel.
    pub fn new(geometry: Geometry) -> Self {
        let slots = vec![Slot::EMPTY; geometry.slots as usize];
        let pages = slots.len().div_ceil(PAGE_SLOTS);
        Self { geometry, slots, dirty: vec![0; pages.div_ceil(64)] }
    }

    /// Bytes of memory it holds (slots and dirty bits).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Slot>() + self.dirty.capacity() * 8
    }

    /// Reads the wheel file at `path`: `Ok(Err(reason))` when it is missing or damaged.
    pub fn load(path: &Path, geometry: Geometry) -> std::io::Result<Result<Self, String>> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err("the wheel file is missing".into()));
            }
            Err(err) => return Err(err),
        };
        let expected = HEADER_LEN + geometry.slots as usize * SLOT_LEN;
        if bytes.len() != expected {
            return Ok(Err(format!("the wheel file is {} bytes, not {expected}", bytes.len())));
        }
        if bytes[..HEADER_LEN] != header(geometry) {
            return Ok(Err("the wheel file's header is damaged or for another geometry".into()));
        }
        let mut wheel = Self::new(geometry);
        for (i, chunk) in bytes[HEADER_LEN..].chunks_exact(SLOT_LEN).enumerate() {
            match Slot::decode(chunk) {
                Some(slot) => wheel.slots[i] = slot,
                None => return Ok(Err(format!("wheel slot {i} is damaged"))),
            }
        }
        Ok(Ok(wheel))
    }

    /// Checks that every slot holding a tick at or after `from` is in its place, inside
    /// the window `[from, from + slots)`, and points below `end`.
    pub fn check(&self, from: u64, end: u64) -> Result<(), String> {
        let g = &self.geometry;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.is_empty() || g.tick(slot.time_ms) < from {
                continue;
            }
            let tick = g.tick(slot.time_ms);
            if slot.time_ms % g.precision_ms != 0 || g.slot(tick) != i {
                return Err(format!("wheel slot {i} holds time {} that belongs elsewhere", slot.time_ms));
            }
            if tick >= from.saturating_add(g.slots) {
                return Err(format!("wheel slot {i} holds tick {tick}, beyond the window from {from}"));
            }
            if slot.last >= end {
                return Err(format!("wheel slot {i} points at record {}, past the log's end {end}", slot.last));
            }
        }
        Ok(())
    }

    /// The slot holding `tick`, if it holds it and is not empty.
    pub fn get(&self, tick: u64) -> Option<&Slot> {
        let slot = &self.slots[self.geometry.slot(tick)];
        (!slot.is_empty() && slot.time_ms == self.geometry.tick_ms(tick)).then_some(slot)
    }

    /// Where a record filed under `tick` links to: the chain's last record, or
    /// [`NONE`] when the slot is free for `tick` (empty, or holding a tick before
    /// `live_from`, which nothing reads again). Changes nothing.
    pub fn prev_for(&self, tick: u64, live_from: u64) -> Result<u64, Conflict> {
        let slot = &self.slots[self.geometry.slot(tick)];
        let held = self.geometry.tick(slot.time_ms);
        if slot.is_empty() || held < live_from {
            Ok(NONE)
        } else if held == tick {
            Ok(slot.last)
        } else {
            Err(Conflict { tick, held })
        }
    }

    /// Files the record at `position` under `tick` (after [`prev_for`](Self::prev_for)
    /// said where it links): the slot is claimed for `tick` or its chain extended.
    pub fn file(&mut self, tick: u64, live_from: u64, position: u64, is_timer: bool) -> Result<(), Conflict> {
        let index = self.geometry.slot(tick);
        let prev = self.prev_for(tick, live_from)?;
        let time_ms = self.geometry.tick_ms(tick);
        let slot = &mut self.slots[index];
        if prev == NONE {
            *slot = Slot { time_ms, first: position, last: position, count: 0 };
        }
        slot.last = position;
        slot.count = slot.count.saturating_add(u32::from(is_timer));
        self.dirty[index / PAGE_SLOTS / 64] |= 1 << (index / PAGE_SLOTS % 64);
        Ok(())
    }

    /// Recovery: files the record at `position` unless the slot's chain already ends at
    /// or after it (the wheel file was written after the record).
    pub fn replay(&mut self, tick: u64, live_from: u64, position: u64, is_timer: bool) -> Result<(), Conflict> {
        match self.prev_for(tick, live_from)? {
            last if last != NONE && last >= position => Ok(()),
            _ => self.file(tick, live_from, position, is_timer),
        }
    }

    /// Timer records in the chains of ticks at or after `from`.
    pub fn count_from(&self, from: u64) -> u64 {
        let g = &self.geometry;
        self.slots.iter().filter(|s| !s.is_empty() && g.tick(s.time_ms) >= from).map(|s| u64::from(s.count)).sum()
    }

    /// The first tick in `[from, to)` whose slot holds it.
    pub fn next_live(&self, from: u64, to: u64) -> Option<u64> {
        // At most one pass over the wheel: ticks a wheel apart share a slot.
        let to = to.min(from.saturating_add(self.geometry.slots));
        (from..to).find(|&tick| self.get(tick).is_some())
    }

    /// Durably replaces the wheel file with every slot.
    pub fn write_all(&mut self, path: &Path) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.slots.len() * SLOT_LEN);
        bytes.extend_from_slice(&header(self.geometry));
        for slot in &self.slots {
            bytes.extend_from_slice(&slot.encode());
        }
        weir_storage::durable::replace_file(path, &bytes)?;
        self.dirty.fill(0);
        Ok(())
    }

    /// Writes the pages changed since the last write into the wheel file (which exists,
    /// written whole before) and syncs it.
    pub fn write_dirty(&mut self, path: &Path) -> std::io::Result<()> {
        if self.dirty.iter().all(|&word| word == 0) {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        let pages = self.slots.len().div_ceil(PAGE_SLOTS);
        let mut page = 0;
        let mut buf = Vec::new();
        while page < pages {
            if !self.is_dirty(page) {
                page += 1;
                continue;
            }
            let run_start = page;
            while page < pages && self.is_dirty(page) {
                page += 1;
            }
            let from = run_start * PAGE_SLOTS;
            let to = (page * PAGE_SLOTS).min(self.slots.len());
            buf.clear();
            for slot in &self.slots[from..to] {
                buf.extend_from_slice(&slot.encode());
            }
            file.write_all_at(&buf, (HEADER_LEN + from * SLOT_LEN) as u64)?;
        }
        weir_storage::durable::sync_file(path, || file.sync_data())?;
        self.dirty.fill(0);
        Ok(())
    }

    fn is_dirty(&self, page: usize) -> bool {
        self.dirty[page / 64] & (1 << (page % 64)) != 0
    }
}

fn header(geometry: Geometry) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&geometry.slots.to_le_bytes());
    out[16..24].copy_from_slice(&geometry.precision_ms.to_le_bytes());
    let crc = crc32c::crc32c(&out[..60]);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimerConfig;

    fn geometry(slots: u64) -> Geometry {
        TimerConfig { precision_ms: 10, max_delay_ms: 100, wheel_slots: Some(slots), segment_records: 64 }
            .geometry()
            .expect("valid")
    }

    #[test]
    fn slots_round_trip_and_damage_is_found() {
        let slot = Slot { time_ms: 1230, first: 4, last: 9, count: 3 };
        assert_eq!(Slot::decode(&slot.encode()), Some(slot));
        assert_eq!(Slot::decode(&[0; SLOT_LEN]), Some(Slot::EMPTY));
        assert_eq!(Slot::decode(&Slot::EMPTY.encode()), Some(Slot::EMPTY));
        for byte in 0..SLOT_LEN {
            let mut bad = slot.encode();
            bad[byte] ^= 1;
            assert_eq!(Slot::decode(&bad), None, "flipped byte {byte}");
        }
        let backwards = Slot { first: 9, last: 4, ..slot };
        assert_eq!(Slot::decode(&backwards.encode()), None, "a chain cannot end before it starts");
    }

    #[test]
    fn files_claims_and_refuses_a_second_live_tick() {
        let mut wheel = Wheel::new(geometry(8));
        assert_eq!(wheel.prev_for(3, 0), Ok(NONE));
        wheel.file(3, 0, 10, true).expect("claim");
        assert_eq!(wheel.prev_for(3, 0), Ok(10));
        wheel.file(3, 0, 11, false).expect("extend");
        assert_eq!(wheel.get(3), Some(&Slot { time_ms: 30, first: 10, last: 11, count: 1 }));
        assert_eq!(wheel.get(11), None, "same slot, other tick");
        assert_eq!(wheel.prev_for(11, 0), Err(Conflict { tick: 11, held: 3 }));
        // Once tick 3 is behind the live window the slot is free again.
        wheel.file(11, 4, 12, true).expect("reclaim");
        assert_eq!(wheel.get(11), Some(&Slot { time_ms: 110, first: 12, last: 12, count: 1 }));
        wheel.replay(11, 4, 12, true).expect("replaying a filed record changes nothing");
        assert_eq!(wheel.get(11).map(|s| s.count), Some(1));
        assert_eq!(wheel.count_from(4), 1);
        assert_eq!(wheel.next_live(4, 100), Some(11));
        assert_eq!(wheel.next_live(12, 100), None);
    }

    #[test]
    fn writes_dirty_pages_and_loads_them_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wheel");
        let g = geometry(1000);
        assert!(Wheel::load(&path, g).expect("read").is_err(), "missing");
        let mut wheel = Wheel::new(g);
        wheel.write_all(&path).expect("write");
        wheel.file(5, 0, 1, true).expect("file");
        wheel.file(999, 0, 2, true).expect("file");
        wheel.write_dirty(&path).expect("write dirty");
        let loaded = Wheel::load(&path, g).expect("read").expect("valid");
        assert_eq!(loaded.slots, wheel.slots);
        loaded.check(0, 3).expect("consistent");
        assert!(loaded.check(0, 2).is_err(), "points past the end");
        assert!(loaded.check(1000, 3).is_ok(), "ticks before the window are not looked at");
        assert!(Wheel::load(&path, geometry(999)).expect("read").is_err(), "other geometry");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[HEADER_LEN + 5 * SLOT_LEN + 3] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(Wheel::load(&path, g).expect("read").is_err(), "damaged slot");
    }
}
