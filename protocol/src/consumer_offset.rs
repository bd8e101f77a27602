//! Consume offsets: what a consumer group has processed, per (group, topic, queue).

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Wire, Writer};

/// Record that `consumer_group` has processed `topic`/`queue_id` up to (not including)
/// `offset`. The broker answers with an empty response.
///
/// Format: string consumer_group, string topic, `u32` queue_id, `u64` offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffsetRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
    /// The next offset the group will consume.
    pub offset: u64,
}

impl Wire for CommitOffsetRequest {
    const MIN_LEN: usize = 2 + 2 + 4 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("commit_offset.consumer_group", &self.consumer_group)?;
        w.str("commit_offset.topic", &self.topic)?;
        w.u32(self.queue_id);
        w.u64(self.offset);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(CommitOffsetRequest {
            consumer_group: r.str("commit_offset.consumer_group")?,
            topic: r.str("commit_offset.topic")?,
            queue_id: r.u32("commit_offset.queue_id")?,
            offset: r.u64("commit_offset.offset")?,
        })
    }
}

/// Ask for the offset `consumer_group` last committed for `topic`/`queue_id`.
///
/// Format: string consumer_group, string topic, `u32` queue_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOffsetRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
}

impl Wire for FetchOffsetRequest {
    const MIN_LEN: usize = 2 + 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("fetch_offset.consumer_group", &self.consumer_group)?;
        w.str("fetch_offset.topic", &self.topic)?;
        w.u32(self.queue_id);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(FetchOffsetRequest {
            consumer_group: r.str("fetch_offset.consumer_group")?,
            topic: r.str("fetch_offset.topic")?,
            queue_id: r.u32("fetch_offset.queue_id")?,
        })
    }
}

/// The committed offset, if the group ever committed one for the queue.
///
/// Format: optional `u64` offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOffsetResponse {
    /// The next offset the group will consume; `None` when it never committed.
    pub offset: Option<u64>,
}

impl Wire for FetchOffsetResponse {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.opt_u64(self.offset);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(FetchOffsetResponse { offset: r.opt_u64("fetch_offset.offset")? })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{check_request, check_response};
    use crate::{Request, Response};

    #[test]
    fn golden_fetch_offset_responses() {
        let never: &[u8] = &[b'W', b'E', b'I', b'R', 1, 0, 0x02, 0x86, 1, 0, 0, 0, 0];
        check_response(&Response::FetchOffset(FetchOffsetResponse { offset: None }), Some(never)).unwrap();
        let some: &[u8] = &[
            b'W', b'E', b'I', b'R', 1, 0, 0x02, 0x86, 9, 0, 0, 0, // header
            1, 0x2a, 0, 0, 0, 0, 0, 0, 0, // offset: present, 42
        ];
        check_response(&Response::FetchOffset(FetchOffsetResponse { offset: Some(42) }), Some(some)).unwrap();
    }

    proptest! {
        #[test]
        fn consumer_offset_requests_round_trip(
            consumer_group in "\\PC{0,12}",
            topic in "\\PC{0,12}",
            queue_id in any::<u32>(),
            offset in any::<u64>(),
        ) {
            let fetch = FetchOffsetRequest {
                consumer_group: consumer_group.clone(),
                topic: topic.clone(),
                queue_id,
            };
            check_request(&Request::FetchOffset(fetch), None)?;
            let commit = CommitOffsetRequest { consumer_group, topic, queue_id, offset };
            check_request(&Request::CommitOffset(commit), None)?;
        }

        #[test]
        fn consumer_offset_responses_round_trip(offset in any::<Option<u64>>()) {
            check_response(&Response::FetchOffset(FetchOffsetResponse { offset }), None)?;
            check_response(&Response::CommitOffset, None)?;
        }
    }
}
