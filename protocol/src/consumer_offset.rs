//! Consume offsets: what a consumer group has processed, per (group, topic, queue), and
//! per member in broadcasting groups.

use crate::error::{DecodeError, EncodeError};
use crate::membership::MemberRef;
use crate::wire::{Reader, Wire, Writer};

/// Record that `consumer_group` has processed `topic`/`queue_id` up to (not including)
/// `offset`. The broker answers with an empty response.
///
/// Format: string consumer_group, string topic, `u32` queue_id, `u64` offset,
/// option\<[`MemberRef`]\> member.
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
    /// Set by members of a managed group: the broker refuses a commit for a queue the
    /// member does not own (`NOT_ASSIGNED`); a broadcasting group keeps it as the member's.
    pub member: Option<MemberRef>,
}

impl Wire for CommitOffsetRequest {
    const MIN_LEN: usize = 2 + 2 + 4 + 8 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("commit_offset.consumer_group", &self.consumer_group)?;
        w.str("commit_offset.topic", &self.topic)?;
        w.u32(self.queue_id);
        w.u64(self.offset);
        w.opt(self.member.as_ref())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(CommitOffsetRequest {
            consumer_group: r.str("commit_offset.consumer_group")?,
            topic: r.str("commit_offset.topic")?,
            queue_id: r.u32("commit_offset.queue_id")?,
            offset: r.u64("commit_offset.offset")?,
            member: r.opt("commit_offset.member")?,
        })
    }
}

/// Ask for the offset `consumer_group` last committed for `topic`/`queue_id`.
///
/// Format: string consumer_group, string topic, `u32` queue_id, option\<[`MemberRef`]\>
/// member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOffsetRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
    /// The member asking: broadcasting groups keep offsets per member, and answer with
    /// this member's.
    pub member: Option<MemberRef>,
}

impl Wire for FetchOffsetRequest {
    const MIN_LEN: usize = 2 + 2 + 4 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("fetch_offset.consumer_group", &self.consumer_group)?;
        w.str("fetch_offset.topic", &self.topic)?;
        w.u32(self.queue_id);
        w.opt(self.member.as_ref())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(FetchOffsetRequest {
            consumer_group: r.str("fetch_offset.consumer_group")?,
            topic: r.str("fetch_offset.topic")?,
            queue_id: r.u32("fetch_offset.queue_id")?,
            member: r.opt("fetch_offset.member")?,
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
    use crate::testing::{arb_member_ref, check_request, check_response, encoded_len};
    use crate::{Request, Response};

    #[test]
    fn min_lens_are_the_smallest_encodings() {
        let fetch =
            FetchOffsetRequest { consumer_group: String::new(), topic: String::new(), queue_id: 0, member: None };
        assert_eq!(encoded_len(&fetch), FetchOffsetRequest::MIN_LEN);
        let commit = CommitOffsetRequest {
            consumer_group: String::new(),
            topic: String::new(),
            queue_id: 0,
            offset: 0,
            member: None,
        };
        assert_eq!(encoded_len(&commit), CommitOffsetRequest::MIN_LEN);
    }

    #[test]
    fn golden_commit_offset_frame_with_member() {
        let request = Request::CommitOffset(CommitOffsetRequest {
            consumer_group: "g".to_owned(),
            topic: "t".to_owned(),
            queue_id: 1,
            offset: 5,
            member: Some(MemberRef { member_id: "m".to_owned(), generation: 3 }),
        });
        let golden: &[u8] = &[
            b'W', b'E', b'I', b'R', 1, 0, 0x01, 0x06, 30, 0, 0, 0, // header: CommitOffset, length 30
            1, 0, b'g', // consumer_group
            1, 0, b't', // topic
            1, 0, 0, 0, // queue_id
            5, 0, 0, 0, 0, 0, 0, 0, // offset
            1, 1, 0, b'm', 3, 0, 0, 0, 0, 0, 0, 0, // member: present, "m", generation 3
        ];
        check_request(&request, Some(golden)).unwrap();
    }

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
            member in proptest::option::of(arb_member_ref()),
        ) {
            let fetch = FetchOffsetRequest {
                consumer_group: consumer_group.clone(),
                topic: topic.clone(),
                queue_id,
                member: member.clone(),
            };
            check_request(&Request::FetchOffset(fetch), None)?;
            let commit = CommitOffsetRequest { consumer_group, topic, queue_id, offset, member };
            check_request(&Request::CommitOffset(commit), None)?;
        }

        #[test]
        fn consumer_offset_responses_round_trip(offset in any::<Option<u64>>()) {
            check_response(&Response::FetchOffset(FetchOffsetResponse { offset }), None)?;
            check_response(&Response::CommitOffset, None)?;
        }
    }
}
