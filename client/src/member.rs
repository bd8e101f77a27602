//! The calls a consumer group member makes: heartbeats (held by the broker until the
//! group changes), leaving, queue locks, and offsets committed as a member (fenced by
//! the broker when the member no longer owns the queue).

use std::time::Duration;

use weir_protocol::{
    CommitOffsetRequest, FetchOffsetRequest, HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest, LockQueuesRequest,
    MemberRef, Request, Response, UnlockQueuesRequest,
};

use crate::client::{Client, unexpected};
use crate::error::Error;

impl Client {
    /// Joins or stays in a group; the broker may hold the request up to its `max_wait_ms`.
    pub(crate) async fn heartbeat(&self, request: HeartbeatRequest) -> Result<HeartbeatResponse, Error> {
        let hold = Duration::from_millis(request.max_wait_ms.into());
        match self.call_held(&Request::Heartbeat(request), hold).await? {
            Response::Heartbeat(response) => Ok(response),
            other => Err(unexpected(&other)),
        }
    }

    /// Leaves a group at once: its queues go to the other members.
    pub(crate) async fn leave_group(&self, group: &str, member_id: &str, session: u64) -> Result<(), Error> {
        let request = LeaveGroupRequest { consumer_group: group.to_owned(), member_id: member_id.to_owned(), session };
        match self.call(&Request::LeaveGroup(request)).await? {
            Response::LeaveGroup => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Locks the member's queues among `queue_ids`; returns those locked and the lock's lifetime.
    pub(crate) async fn lock_queues(
        &self,
        group: &str,
        member: &MemberRef,
        topic: &str,
        queue_ids: Vec<u32>,
    ) -> Result<(Vec<u32>, Duration), Error> {
        let request = LockQueuesRequest {
            consumer_group: group.to_owned(),
            member: member.clone(),
            topic: topic.to_owned(),
            queue_ids,
        };
        match self.call(&Request::LockQueues(request)).await? {
            Response::LockQueues(response) => {
                Ok((response.locked, Duration::from_millis(response.expires_in_ms.into())))
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Releases the member's locks on `queue_ids`.
    pub(crate) async fn unlock_queues(
        &self,
        group: &str,
        member: &MemberRef,
        topic: &str,
        queue_ids: Vec<u32>,
    ) -> Result<(), Error> {
        let request = UnlockQueuesRequest {
            consumer_group: group.to_owned(),
            member: member.clone(),
            topic: topic.to_owned(),
            queue_ids,
        };
        match self.call(&Request::UnlockQueues(request)).await? {
            Response::UnlockQueues => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Commits `offset` as `member` (refused with `NOT_ASSIGNED` once it lost the queue).
    pub(crate) async fn commit_offset_as(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
        member: &MemberRef,
    ) -> Result<(), Error> {
        let request = CommitOffsetRequest {
            consumer_group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id,
            offset,
            member: Some(member.clone()),
        };
        match self.call(&Request::CommitOffset(request)).await? {
            Response::CommitOffset => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The offset committed for the queue: the group's, or in a broadcasting group the member's.
    pub(crate) async fn fetch_offset_as(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        member: &MemberRef,
    ) -> Result<Option<u64>, Error> {
        let request = FetchOffsetRequest {
            consumer_group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id,
            member: Some(member.clone()),
        };
        match self.call(&Request::FetchOffset(request)).await? {
            Response::FetchOffset(response) => Ok(response.offset),
            other => Err(unexpected(&other)),
        }
    }
}
