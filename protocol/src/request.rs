//! Every request a client can send, and its frame encoding.

use bytes::BytesMut;

use crate::consumer_offset::{CommitOffsetRequest, FetchOffsetRequest};
use crate::error::{DecodeError, EncodeError};
use crate::frame::{Frame, FrameKind, RequestKind, encode_frame};
use crate::group::{GroupConfig, GroupStatsRequest, SubscribeRequest};
use crate::membership::{
    DescribeGroupRequest, GroupLagRequest, HeartbeatRequest, LeaveGroupRequest, LockQueuesRequest, ResetOffsetRequest,
    UnlockQueuesRequest,
};
use crate::plugin::{PluginEnableRequest, PluginRemoveRequest, PluginUploadRequest};
use crate::pull::PullRequest;
use crate::query::{CancelMessageRequest, MessageQuery};
use crate::queue_offsets::{OffsetByTimestampRequest, QueueOffsetsRequest};
use crate::retry::{DlqListRequest, DlqResendRequest, NackRequest, SetGroupPolicyRequest};
use crate::send::SendRequest;
use crate::topic::{DeleteTopicRequest, ListTopicsRequest, TopicConfig};
use crate::wire::{Wire, Writer, decode_exact};

/// A request, client to broker: the one frame a client writes on a new stream.
///
/// Format: a frame of kind [`FrameKind::Request`] whose payload is the variant's value
/// (empty for [`Request::Status`], [`Request::PluginList`] and [`Request::ListGroups`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Create a topic; answered with the created [`TopicConfig`].
    CreateTopic(TopicConfig),
    /// Replace a topic's queue counts and permissions; answered with the new config.
    UpdateTopic(TopicConfig),
    /// Delete a topic; answered with an empty response.
    DeleteTopic(DeleteTopicRequest),
    /// List topics.
    ListTopics(ListTopicsRequest),
    /// Send one message or a batch.
    Send(SendRequest),
    /// Pull from a queue, long-polling when empty.
    Pull(PullRequest),
    /// Look messages up by id or key.
    QueryMessage(MessageQuery),
    /// Cancel a pending delayed message.
    CancelMessage(CancelMessageRequest),
    /// A queue's min and max offsets.
    QueueOffsets(QueueOffsetsRequest),
    /// The queue offset at a timestamp.
    OffsetByTimestamp(OffsetByTimestampRequest),
    /// Commit a consumer group's offset; answered with an empty response.
    CommitOffset(CommitOffsetRequest),
    /// Fetch a consumer group's committed offset.
    FetchOffset(FetchOffsetRequest),
    /// Broker status.
    Status,
    /// Declare a consumer group; answered with the group as stored.
    CreateGroup(GroupConfig),
    /// Register a group's subscription to a topic.
    Subscribe(SubscribeRequest),
    /// A group's filter statistics.
    GroupStats(GroupStatsRequest),
    /// Upload (or replace) a WebAssembly plugin; answered with its [`PluginInfo`](crate::PluginInfo).
    PluginUpload(PluginUploadRequest),
    /// List plugins.
    PluginList,
    /// Remove a plugin; answered with an empty response.
    PluginRemove(PluginRemoveRequest),
    /// Re-enable a plugin disabled after repeated failures.
    PluginEnable(PluginEnableRequest),
    /// Join or stay in a consumer group; answered with the member's
    /// [`HeartbeatResponse`](crate::HeartbeatResponse), held while the generation is unchanged.
    Heartbeat(HeartbeatRequest),
    /// Leave a consumer group; answered with an empty response.
    LeaveGroup(LeaveGroupRequest),
    /// Lock queues for a member's orderly consumption.
    LockQueues(LockQueuesRequest),
    /// Release a member's queue locks; answered with an empty response.
    UnlockQueues(UnlockQueuesRequest),
    /// List consumer groups.
    ListGroups,
    /// A group's members, subscriptions and conflicts.
    DescribeGroup(DescribeGroupRequest),
    /// A group's lag per queue.
    GroupLag(GroupLagRequest),
    /// Move a group's offsets for a topic.
    ResetOffset(ResetOffsetRequest),
    /// Change a group's retry policy; answered with its [`RetryPolicyInfo`](crate::RetryPolicyInfo).
    SetGroupPolicy(SetGroupPolicyRequest),
    /// Report a failed consumption.
    Nack(NackRequest),
    /// List a group's dead letters.
    DlqList(DlqListRequest),
    /// Send dead letters back to their original topics.
    DlqResend(DlqResendRequest),
}

impl Request {
    /// What the request asks for.
    pub const fn kind(&self) -> RequestKind {
        match self {
            Request::CreateTopic(_) => RequestKind::CreateTopic,
            Request::UpdateTopic(_) => RequestKind::UpdateTopic,
            Request::DeleteTopic(_) => RequestKind::DeleteTopic,
            Request::ListTopics(_) => RequestKind::ListTopics,
            Request::Send(_) => RequestKind::Send,
            Request::Pull(_) => RequestKind::Pull,
            Request::QueryMessage(_) => RequestKind::QueryMessage,
            Request::CancelMessage(_) => RequestKind::CancelMessage,
            Request::QueueOffsets(_) => RequestKind::QueueOffsets,
            Request::OffsetByTimestamp(_) => RequestKind::OffsetByTimestamp,
            Request::CommitOffset(_) => RequestKind::CommitOffset,
            Request::FetchOffset(_) => RequestKind::FetchOffset,
            Request::Status => RequestKind::Status,
            Request::CreateGroup(_) => RequestKind::CreateGroup,
            Request::Subscribe(_) => RequestKind::Subscribe,
            Request::GroupStats(_) => RequestKind::GroupStats,
            Request::PluginUpload(_) => RequestKind::PluginUpload,
            Request::PluginList => RequestKind::PluginList,
            Request::PluginRemove(_) => RequestKind::PluginRemove,
            Request::PluginEnable(_) => RequestKind::PluginEnable,
            Request::Heartbeat(_) => RequestKind::Heartbeat,
            Request::LeaveGroup(_) => RequestKind::LeaveGroup,
            Request::LockQueues(_) => RequestKind::LockQueues,
            Request::UnlockQueues(_) => RequestKind::UnlockQueues,
            Request::ListGroups => RequestKind::ListGroups,
            Request::DescribeGroup(_) => RequestKind::DescribeGroup,
            Request::GroupLag(_) => RequestKind::GroupLag,
            Request::ResetOffset(_) => RequestKind::ResetOffset,
            Request::SetGroupPolicy(_) => RequestKind::SetGroupPolicy,
            Request::Nack(_) => RequestKind::Nack,
            Request::DlqList(_) => RequestKind::DlqList,
            Request::DlqResend(_) => RequestKind::DlqResend,
        }
    }

    /// Appends the request's whole frame (header and payload) to `dst`. On error `dst` is
    /// left as it was.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode_frame(dst, FrameKind::Request(self.kind()), |w| self.encode_payload(w))
    }

    fn encode_payload(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Request::CreateTopic(topic) | Request::UpdateTopic(topic) => topic.encode(w),
            Request::DeleteTopic(request) => request.encode(w),
            Request::ListTopics(request) => request.encode(w),
            Request::Send(request) => request.encode(w),
            Request::Pull(request) => request.encode(w),
            Request::QueryMessage(query) => query.encode(w),
            Request::CancelMessage(request) => request.encode(w),
            Request::QueueOffsets(request) => request.encode(w),
            Request::OffsetByTimestamp(request) => request.encode(w),
            Request::CommitOffset(request) => request.encode(w),
            Request::FetchOffset(request) => request.encode(w),
            Request::Status => ().encode(w),
            Request::CreateGroup(group) => group.encode(w),
            Request::Subscribe(request) => request.encode(w),
            Request::GroupStats(request) => request.encode(w),
            Request::PluginUpload(request) => request.encode(w),
            Request::PluginList => ().encode(w),
            Request::PluginRemove(request) => request.encode(w),
            Request::PluginEnable(request) => request.encode(w),
            Request::Heartbeat(request) => request.encode(w),
            Request::LeaveGroup(request) => request.encode(w),
            Request::LockQueues(request) => request.encode(w),
            Request::UnlockQueues(request) => request.encode(w),
            Request::ListGroups => ().encode(w),
            Request::DescribeGroup(request) => request.encode(w),
            Request::GroupLag(request) => request.encode(w),
            Request::ResetOffset(request) => request.encode(w),
            Request::SetGroupPolicy(request) => request.encode(w),
            Request::Nack(request) => request.encode(w),
            Request::DlqList(request) => request.encode(w),
            Request::DlqResend(request) => request.encode(w),
        }
    }

    /// Decodes a request frame. A response or error frame is
    /// [`UnexpectedKind`](DecodeError::UnexpectedKind); the payload must be consumed
    /// exactly.
    pub fn decode(frame: Frame) -> Result<Self, DecodeError> {
        let FrameKind::Request(kind) = frame.kind else {
            return Err(DecodeError::UnexpectedKind { kind: frame.kind });
        };
        let payload = frame.payload;
        Ok(match kind {
            RequestKind::CreateTopic => Request::CreateTopic(decode_exact(payload)?),
            RequestKind::UpdateTopic => Request::UpdateTopic(decode_exact(payload)?),
            RequestKind::DeleteTopic => Request::DeleteTopic(decode_exact(payload)?),
            RequestKind::ListTopics => Request::ListTopics(decode_exact(payload)?),
            RequestKind::Send => Request::Send(decode_exact(payload)?),
            RequestKind::Pull => Request::Pull(decode_exact(payload)?),
            RequestKind::QueryMessage => Request::QueryMessage(decode_exact(payload)?),
            RequestKind::CancelMessage => Request::CancelMessage(decode_exact(payload)?),
            RequestKind::QueueOffsets => Request::QueueOffsets(decode_exact(payload)?),
            RequestKind::OffsetByTimestamp => Request::OffsetByTimestamp(decode_exact(payload)?),
            RequestKind::CommitOffset => Request::CommitOffset(decode_exact(payload)?),
            RequestKind::FetchOffset => Request::FetchOffset(decode_exact(payload)?),
            RequestKind::Status => {
                decode_exact::<()>(payload)?;
                Request::Status
            }
            RequestKind::CreateGroup => Request::CreateGroup(decode_exact(payload)?),
            RequestKind::Subscribe => Request::Subscribe(decode_exact(payload)?),
            RequestKind::GroupStats => Request::GroupStats(decode_exact(payload)?),
            RequestKind::PluginUpload => Request::PluginUpload(decode_exact(payload)?),
            RequestKind::PluginList => {
                decode_exact::<()>(payload)?;
                Request::PluginList
            }
            RequestKind::PluginRemove => Request::PluginRemove(decode_exact(payload)?),
            RequestKind::PluginEnable => Request::PluginEnable(decode_exact(payload)?),
            RequestKind::Heartbeat => Request::Heartbeat(decode_exact(payload)?),
            RequestKind::LeaveGroup => Request::LeaveGroup(decode_exact(payload)?),
            RequestKind::LockQueues => Request::LockQueues(decode_exact(payload)?),
            RequestKind::UnlockQueues => Request::UnlockQueues(decode_exact(payload)?),
            RequestKind::ListGroups => {
                decode_exact::<()>(payload)?;
                Request::ListGroups
            }
            RequestKind::DescribeGroup => Request::DescribeGroup(decode_exact(payload)?),
            RequestKind::GroupLag => Request::GroupLag(decode_exact(payload)?),
            RequestKind::ResetOffset => Request::ResetOffset(decode_exact(payload)?),
            RequestKind::SetGroupPolicy => Request::SetGroupPolicy(decode_exact(payload)?),
            RequestKind::Nack => Request::Nack(decode_exact(payload)?),
            RequestKind::DlqList => Request::DlqList(decode_exact(payload)?),
            RequestKind::DlqResend => Request::DlqResend(decode_exact(payload)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{arb_request, check_request, frame};

    #[test]
    fn empty_requests_reject_payload_bytes() {
        for kind in [RequestKind::Status, RequestKind::PluginList, RequestKind::ListGroups] {
            assert_eq!(
                Request::decode(frame(FrameKind::Request(kind), &[0])),
                Err(DecodeError::TrailingBytes { count: 1 })
            );
        }
    }

    #[test]
    fn responses_are_not_requests() {
        for kind in [FrameKind::Response(RequestKind::Status), FrameKind::Error] {
            assert_eq!(Request::decode(frame(kind, &[])), Err(DecodeError::UnexpectedKind { kind }));
        }
    }

    #[test]
    fn encode_appends_after_existing_bytes() {
        let mut dst = BytesMut::from(&b"prefix"[..]);
        Request::Status.encode(&mut dst).unwrap();
        assert_eq!(&dst[..6], b"prefix");
        assert_eq!(dst.len(), 6 + crate::HEADER_LEN);
    }

    proptest! {
        #[test]
        fn every_request_round_trips(request in arb_request()) {
            check_request(&request, None)?;
        }
    }
}
