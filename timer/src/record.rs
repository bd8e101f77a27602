//! The timer log's record: one fixed-size entry per timer, re-filing or cancel.
//!
//! Format (little-endian, 64 bytes): `magic u32 ("WTL1"), kind u8, flags u8,
//! reserved u16 (0), tick u64, due_ms u64, id u64, prev u64, commitlog_offset u64,
//! size u32, reserved [u8; 8] (0), crc32c u32 of bytes 0..60`.
//!
//! - `tick`: the wheel tick the record is filed under (`due_ms / precision_ms`, or
//!   the tick being delivered when that was later, or an earlier tick for a rolled timer).
//! - `kind`: 1 timer, 2 cancel (of timer `id`), 3 cancel by payload (of every timer
//!   delivering `commitlog_offset`/`size`, met under the same tick; `id` is [`NONE`]).
//! - `id`: the timer it is about: its own position for a new timer, the original
//!   timer's position for a timer re-filed after a roll, the cancelled timer's for a cancel.
//! - `prev`: the position of the previous record filed under the same tick
//!   ([`NONE`] for the first); the wheel slot holds the last, so a tick's records form
//!   a chain walked backwards.
//!
//! A record is never all zeroes (its magic), so the log's end is its last non-zero byte.

use crate::Payload;

/// Bytes per record.
pub const LEN: usize = 64;
/// "WTL1".
const MAGIC: u32 = 0x5754_4c31;
/// A position that points nowhere (no previous record, an empty slot).
pub const NONE: u64 = u64::MAX;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A timer (new or re-filed).
    Timer,
    /// Cancels the timer `id`.
    Cancel,
    /// Cancels the timers delivering its payload (the caller knows what it filed, not
    /// where: a broker cancels a delayed message by its CommitLog record).
    CancelPayload,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Timer => 1,
            Kind::Cancel => 2,
            Kind::CancelPayload => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Kind::Timer),
            2 => Some(Kind::Cancel),
            3 => Some(Kind::CancelPayload),
            _ => None,
        }
    }
}

/// Flag: filed under a tick before its due time because the due time lay beyond the
/// wheel's window; when that tick is read, the record is filed again (not delivered).
const ROLLED: u8 = 1;

/// A decoded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Timer or cancel.
    pub kind: Kind,
    /// Filed early, to be re-filed when its tick is read.
    pub rolled: bool,
    /// The tick it is filed under.
    pub tick: u64,
    /// When the timer is due (for a cancel: the cancelled timer's due time).
    pub due_ms: u64,
    /// The timer it is about.
    pub id: u64,
    /// The previous record under the same tick, or [`NONE`].
    pub prev: u64,
    /// What to deliver (zero for a cancel by id; what to cancel for a cancel by payload).
    pub payload: Payload,
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not the record magic (a hole or garbage).
    #[error("bad magic {0:#010x}")]
    Magic(u32),
    /// The CRC does not match.
    #[error("CRC mismatch")]
    Crc,
    /// An unknown kind, unknown flags or non-zero reserved bytes.
    #[error("unknown kind, flags or reserved bytes")]
    Unknown,
}

impl Record {
    /// Encodes the record.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4] = self.kind.code();
        out[5] = if self.rolled { ROLLED } else { 0 };
        out[8..16].copy_from_slice(&self.tick.to_le_bytes());
        out[16..24].copy_from_slice(&self.due_ms.to_le_bytes());
        out[24..32].copy_from_slice(&self.id.to_le_bytes());
        out[32..40].copy_from_slice(&self.prev.to_le_bytes());
        out[40..48].copy_from_slice(&self.payload.commitlog_offset.to_le_bytes());
        out[48..52].copy_from_slice(&self.payload.size.to_le_bytes());
        let crc = crc32c::crc32c(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and verifies `bytes` (at least [`LEN`] long; more is ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let Some(bytes) = bytes.get(..LEN) else { return Err(RecordError::Magic(0)) };
        let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let magic = u32_at(0);
        if magic != MAGIC {
            return Err(RecordError::Magic(magic));
        }
        if u32_at(60) != crc32c::crc32c(&bytes[..60]) {
            return Err(RecordError::Crc);
        }
        let kind = Kind::from_code(bytes[4]).ok_or(RecordError::Unknown)?;
        if bytes[5] & !ROLLED != 0 || bytes[6..8] != [0, 0] || bytes[52..60] != [0; 8] {
            return Err(RecordError::Unknown);
        }
        Ok(Self {
            kind,
            rolled: bytes[5] & ROLLED != 0,
            tick: u64_at(8),
            due_ms: u64_at(16),
            id: u64_at(24),
            prev: u64_at(32),
            payload: Payload { commitlog_offset: u64_at(40), size: u32_at(48) },
        })
    }

    /// Whether this record delivers (or re-files) a timer, rather than cancels one.
    pub fn is_timer(&self) -> bool {
        self.kind == Kind::Timer
    }
}

/// Where a timer record's payload ends in the CommitLog (0 for a cancel).
pub fn payload_end(record: &Record) -> u64 {
    if record.kind == Kind::Timer {
        record.payload.commitlog_offset.saturating_add(u64::from(record.payload.size))
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            kind: Kind::Timer,
            rolled: true,
            tick: 1_700_000_000,
            due_ms: 1_700_000_000_123,
            id: 42,
            prev: NONE,
            payload: Payload { commitlog_offset: 0x0102_0304_0506_0708, size: 0x0a0b_0c0d },
        }
    }

    #[test]
    fn round_trips() {
        let record = sample();
        assert_eq!(Record::decode(&record.encode()), Ok(record));
        let cancel = Record { kind: Kind::Cancel, rolled: false, payload: Payload::default(), ..record };
        assert_eq!(Record::decode(&cancel.encode()), Ok(cancel));
        let by_payload = Record { kind: Kind::CancelPayload, id: NONE, ..record };
        assert_eq!(Record::decode(&by_payload.encode()), Ok(by_payload));
        assert_eq!(by_payload.encode()[4], 3);
    }

    #[test]
    fn golden_bytes() {
        let bytes = sample().encode();
        assert_eq!(&bytes[0..8], &[0x31, 0x4c, 0x54, 0x57, 1, 1, 0, 0]);
        assert_eq!(&bytes[32..40], &[0xff; 8], "no previous record");
        assert_eq!(&bytes[40..52], &[8, 7, 6, 5, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a]);
        assert_eq!(&bytes[52..60], &[0; 8]);
    }

    #[test]
    fn every_damage_is_refused() {
        let good = sample().encode();
        assert_eq!(Record::decode(&[0; LEN]), Err(RecordError::Magic(0)));
        assert_eq!(Record::decode(&good[..LEN - 1]), Err(RecordError::Magic(0)), "short input");
        for byte in 0..LEN {
            let mut bad = good;
            bad[byte] ^= 0x40;
            assert!(Record::decode(&bad).is_err(), "flipped byte {byte} accepted");
        }
        // A valid CRC over an unknown kind or reserved bits is still refused.
        for (at, value) in [(4, 9u8), (5, 2), (6, 1), (55, 1)] {
            let mut bad = good;
            bad[at] = value;
            let crc = crc32c::crc32c(&bad[..60]);
            bad[60..].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(Record::decode(&bad), Err(RecordError::Unknown), "byte {at}");
        }
    }
}
