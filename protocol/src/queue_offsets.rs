//! Queue offsets: a queue's bounds, and the offset of a point in time.

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Wire, Writer};

/// Ask for a queue's smallest and largest offsets.
///
/// Format: string topic, `u32` queue_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOffsetsRequest {
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
}

impl Wire for QueueOffsetsRequest {
    const MIN_LEN: usize = 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("queue_offsets.topic", &self.topic)?;
        w.u32(self.queue_id);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(QueueOffsetsRequest { topic: r.str("queue_offsets.topic")?, queue_id: r.u32("queue_offsets.queue_id")? })
    }
}

/// A queue's bounds: messages live at offsets `min_offset..max_offset`.
///
/// Format: `u64` min_offset, `u64` max_offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOffsetsResponse {
    /// The smallest offset still stored (retention raises it).
    pub min_offset: u64,
    /// The offset the next message will get.
    pub max_offset: u64,
}

impl Wire for QueueOffsetsResponse {
    const MIN_LEN: usize = 8 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.min_offset);
        w.u64(self.max_offset);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(QueueOffsetsResponse {
            min_offset: r.u64("queue_offsets.min_offset")?,
            max_offset: r.u64("queue_offsets.max_offset")?,
        })
    }
}

/// Ask for the first queue offset whose message was stored at or after a time (to reset a
/// consumer to a timestamp).
///
/// Format: string topic, `u32` queue_id, `u64` timestamp_ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetByTimestampRequest {
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
    /// Unix time in milliseconds.
    pub timestamp_ms: u64,
}

impl Wire for OffsetByTimestampRequest {
    const MIN_LEN: usize = 2 + 4 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("offset_by_timestamp.topic", &self.topic)?;
        w.u32(self.queue_id);
        w.u64(self.timestamp_ms);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(OffsetByTimestampRequest {
            topic: r.str("offset_by_timestamp.topic")?,
            queue_id: r.u32("offset_by_timestamp.queue_id")?,
            timestamp_ms: r.u64("offset_by_timestamp.timestamp_ms")?,
        })
    }
}

/// The offset found for a timestamp: the queue's max offset when every message is older.
///
/// Format: `u64` offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetByTimestampResponse {
    /// The queue offset.
    pub offset: u64,
}

impl Wire for OffsetByTimestampResponse {
    const MIN_LEN: usize = 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.offset);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(OffsetByTimestampResponse { offset: r.u64("offset_by_timestamp.offset")? })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{check_request, check_response};
    use crate::{Request, Response};

    proptest! {
        #[test]
        fn queue_offset_requests_round_trip(
            topic in "\\PC{0,12}",
            queue_id in any::<u32>(),
            timestamp_ms in any::<u64>(),
        ) {
            let bounds = QueueOffsetsRequest { topic: topic.clone(), queue_id };
            check_request(&Request::QueueOffsets(bounds), None)?;
            let at = OffsetByTimestampRequest { topic, queue_id, timestamp_ms };
            check_request(&Request::OffsetByTimestamp(at), None)?;
        }

        #[test]
        fn queue_offset_responses_round_trip(min_offset in any::<u64>(), max_offset in any::<u64>()) {
            let bounds = QueueOffsetsResponse { min_offset, max_offset };
            check_response(&Response::QueueOffsets(bounds), None)?;
            let at = OffsetByTimestampResponse { offset: max_offset };
            check_response(&Response::OffsetByTimestamp(at), None)?;
        }
    }
}
