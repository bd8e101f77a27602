//! Every response the broker can send, and its frame encoding.

use bytes::BytesMut;

use crate::consumer_offset::FetchOffsetResponse;
use crate::error::{DecodeError, EncodeError};
use crate::error_response::ErrorResponse;
use crate::frame::{Frame, FrameKind, RequestKind, encode_frame};
use crate::group::{GroupConfig, GroupStatsResponse, SubscribeResponse};
use crate::membership::{
    GroupDescription, GroupLagResponse, HeartbeatResponse, ListGroupsResponse, LockQueuesResponse, ResetOffsetResponse,
};
use crate::plugin::{PluginEnableResponse, PluginInfo, PluginListResponse};
use crate::pull::PullResponse;
use crate::query::{CancelMessageResponse, QueryMessageResponse};
use crate::queue_offsets::{OffsetByTimestampResponse, QueueOffsetsResponse};
use crate::retry::{DlqListResponse, DlqResendResponse, NackResponse, RetryPolicyInfo};
use crate::send::SendResponse;
use crate::status::BrokerStatus;
use crate::topic::{ListTopicsResponse, TopicConfig};
use crate::wire::{Wire, Writer, decode_exact};

/// A response, broker to client: the one frame the broker writes back on a request's
/// stream. Each variant but [`Response::Error`] answers the request of the same name.
///
/// Format: a frame of kind [`FrameKind::Response`] (or [`FrameKind::Error`]) whose
/// payload is the variant's value (empty for unit variants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The created topic.
    CreateTopic(TopicConfig),
    /// The updated topic.
    UpdateTopic(TopicConfig),
    /// The topic was deleted.
    DeleteTopic,
    /// The topics.
    ListTopics(ListTopicsResponse),
    /// One result per sent message.
    Send(SendResponse),
    /// A page of messages.
    Pull(PullResponse),
    /// The messages found.
    QueryMessage(QueryMessageResponse),
    /// The cancelled delayed message.
    CancelMessage(CancelMessageResponse),
    /// The queue's bounds.
    QueueOffsets(QueueOffsetsResponse),
    /// The offset at the timestamp.
    OffsetByTimestamp(OffsetByTimestampResponse),
    /// The offset was committed.
    CommitOffset,
    /// The committed offset.
    FetchOffset(FetchOffsetResponse),
    /// The broker's status (boxed: by far the largest response).
    Status(Box<BrokerStatus>),
    /// The group as stored.
    CreateGroup(GroupConfig),
    /// The registered subscription's version.
    Subscribe(SubscribeResponse),
    /// The group's filter statistics.
    GroupStats(GroupStatsResponse),
    /// The uploaded plugin.
    PluginUpload(PluginInfo),
    /// The plugins.
    PluginList(PluginListResponse),
    /// The plugin was removed.
    PluginRemove,
    /// How many subscriptions were re-enabled.
    PluginEnable(PluginEnableResponse),
    /// The member's generation and queues.
    Heartbeat(HeartbeatResponse),
    /// The member left the group.
    LeaveGroup,
    /// The queues locked.
    LockQueues(LockQueuesResponse),
    /// The locks were released.
    UnlockQueues,
    /// The groups.
    ListGroups(ListGroupsResponse),
    /// The group's members, subscriptions and conflicts.
    DescribeGroup(GroupDescription),
    /// The group's lag per queue.
    GroupLag(GroupLagResponse),
    /// The offsets set and the group's new generation.
    ResetOffset(ResetOffsetResponse),
    /// The group's retry policy as changed.
    SetGroupPolicy(RetryPolicyInfo),
    /// What became of the failed delivery.
    Nack(NackResponse),
    /// A page of dead letters.
    DlqList(DlqListResponse),
    /// What the resend did, per dead letter.
    DlqResend(DlqResendResponse),
    /// The request failed.
    Error(ErrorResponse),
}

impl Response {
    /// The frame kind this response is sent as.
    pub const fn kind(&self) -> FrameKind {
        let answers = match self {
            Response::CreateTopic(_) => RequestKind::CreateTopic,
            Response::UpdateTopic(_) => RequestKind::UpdateTopic,
            Response::DeleteTopic => RequestKind::DeleteTopic,
            Response::ListTopics(_) => RequestKind::ListTopics,
            Response::Send(_) => RequestKind::Send,
            Response::Pull(_) => RequestKind::Pull,
            Response::QueryMessage(_) => RequestKind::QueryMessage,
            Response::CancelMessage(_) => RequestKind::CancelMessage,
            Response::QueueOffsets(_) => RequestKind::QueueOffsets,
            Response::OffsetByTimestamp(_) => RequestKind::OffsetByTimestamp,
            Response::CommitOffset => RequestKind::CommitOffset,
            Response::FetchOffset(_) => RequestKind::FetchOffset,
            Response::Status(_) => RequestKind::Status,
            Response::CreateGroup(_) => RequestKind::CreateGroup,
            Response::Subscribe(_) => RequestKind::Subscribe,
            Response::GroupStats(_) => RequestKind::GroupStats,
            Response::PluginUpload(_) => RequestKind::PluginUpload,
            Response::PluginList(_) => RequestKind::PluginList,
            Response::PluginRemove => RequestKind::PluginRemove,
            Response::PluginEnable(_) => RequestKind::PluginEnable,
            Response::Heartbeat(_) => RequestKind::Heartbeat,
            Response::LeaveGroup => RequestKind::LeaveGroup,
            Response::LockQueues(_) => RequestKind::LockQueues,
            Response::UnlockQueues => RequestKind::UnlockQueues,
            Response::ListGroups(_) => RequestKind::ListGroups,
            Response::DescribeGroup(_) => RequestKind::DescribeGroup,
            Response::GroupLag(_) => RequestKind::GroupLag,
            Response::ResetOffset(_) => RequestKind::ResetOffset,
            Response::SetGroupPolicy(_) => RequestKind::SetGroupPolicy,
            Response::Nack(_) => RequestKind::Nack,
            Response::DlqList(_) => RequestKind::DlqList,
            Response::DlqResend(_) => RequestKind::DlqResend,
            Response::Error(_) => return FrameKind::Error,
        };
        FrameKind::Response(answers)
    }

    /// Appends the response's whole frame (header and payload) to `dst`. On error `dst`
    /// is left as it was.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode_frame(dst, self.kind(), |w| self.encode_payload(w))
    }

    fn encode_payload(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Response::CreateTopic(topic) | Response::UpdateTopic(topic) => topic.encode(w),
            Response::DeleteTopic
            | Response::CommitOffset
            | Response::PluginRemove
            | Response::LeaveGroup
            | Response::UnlockQueues => ().encode(w),
            Response::ListTopics(response) => response.encode(w),
            Response::Send(response) => response.encode(w),
            Response::Pull(response) => response.encode(w),
            Response::QueryMessage(response) => response.encode(w),
            Response::CancelMessage(response) => response.encode(w),
            Response::QueueOffsets(response) => response.encode(w),
            Response::OffsetByTimestamp(response) => response.encode(w),
            Response::FetchOffset(response) => response.encode(w),
            Response::Status(status) => status.encode(w),
            Response::CreateGroup(group) => group.encode(w),
            Response::Subscribe(response) => response.encode(w),
            Response::GroupStats(response) => response.encode(w),
            Response::PluginUpload(info) => info.encode(w),
            Response::PluginList(response) => response.encode(w),
            Response::PluginEnable(response) => response.encode(w),
            Response::Heartbeat(response) => response.encode(w),
            Response::LockQueues(response) => response.encode(w),
            Response::ListGroups(response) => response.encode(w),
            Response::DescribeGroup(group) => group.encode(w),
            Response::GroupLag(response) => response.encode(w),
            Response::ResetOffset(response) => response.encode(w),
            Response::SetGroupPolicy(response) => response.encode(w),
            Response::Nack(response) => response.encode(w),
            Response::DlqList(response) => response.encode(w),
            Response::DlqResend(response) => response.encode(w),
            Response::Error(error) => error.encode(w),
        }
    }

    /// Decodes a response or error frame. A request frame is
    /// [`UnexpectedKind`](DecodeError::UnexpectedKind); the payload must be consumed
    /// exactly.
    pub fn decode(frame: Frame) -> Result<Self, DecodeError> {
        let payload = frame.payload;
        let kind = match frame.kind {
            FrameKind::Response(kind) => kind,
            FrameKind::Error => return Ok(Response::Error(decode_exact(payload)?)),
            FrameKind::Request(_) => return Err(DecodeError::UnexpectedKind { kind: frame.kind }),
        };
        Ok(match kind {
            RequestKind::CreateTopic => Response::CreateTopic(decode_exact(payload)?),
            RequestKind::UpdateTopic => Response::UpdateTopic(decode_exact(payload)?),
            RequestKind::DeleteTopic => {
                decode_exact::<()>(payload)?;
                Response::DeleteTopic
            }
            RequestKind::ListTopics => Response::ListTopics(decode_exact(payload)?),
            RequestKind::Send => Response::Send(decode_exact(payload)?),
            RequestKind::Pull => Response::Pull(decode_exact(payload)?),
            RequestKind::QueryMessage => Response::QueryMessage(decode_exact(payload)?),
            RequestKind::CancelMessage => Response::CancelMessage(decode_exact(payload)?),
            RequestKind::QueueOffsets => Response::QueueOffsets(decode_exact(payload)?),
            RequestKind::OffsetByTimestamp => Response::OffsetByTimestamp(decode_exact(payload)?),
            RequestKind::CommitOffset => {
                decode_exact::<()>(payload)?;
                Response::CommitOffset
            }
            RequestKind::FetchOffset => Response::FetchOffset(decode_exact(payload)?),
            RequestKind::Status => Response::Status(Box::new(decode_exact(payload)?)),
            RequestKind::CreateGroup => Response::CreateGroup(decode_exact(payload)?),
            RequestKind::Subscribe => Response::Subscribe(decode_exact(payload)?),
            RequestKind::GroupStats => Response::GroupStats(decode_exact(payload)?),
            RequestKind::PluginUpload => Response::PluginUpload(decode_exact(payload)?),
            RequestKind::PluginList => Response::PluginList(decode_exact(payload)?),
            RequestKind::PluginRemove => {
                decode_exact::<()>(payload)?;
                Response::PluginRemove
            }
            RequestKind::PluginEnable => Response::PluginEnable(decode_exact(payload)?),
            RequestKind::Heartbeat => Response::Heartbeat(decode_exact(payload)?),
            RequestKind::LeaveGroup => {
                decode_exact::<()>(payload)?;
                Response::LeaveGroup
            }
            RequestKind::LockQueues => Response::LockQueues(decode_exact(payload)?),
            RequestKind::UnlockQueues => {
                decode_exact::<()>(payload)?;
                Response::UnlockQueues
            }
            RequestKind::ListGroups => Response::ListGroups(decode_exact(payload)?),
            RequestKind::DescribeGroup => Response::DescribeGroup(decode_exact(payload)?),
            RequestKind::GroupLag => Response::GroupLag(decode_exact(payload)?),
            RequestKind::ResetOffset => Response::ResetOffset(decode_exact(payload)?),
            RequestKind::SetGroupPolicy => Response::SetGroupPolicy(decode_exact(payload)?),
            RequestKind::Nack => Response::Nack(decode_exact(payload)?),
            RequestKind::DlqList => Response::DlqList(decode_exact(payload)?),
            RequestKind::DlqResend => Response::DlqResend(decode_exact(payload)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{arb_response, check_response, frame};

    #[test]
    fn requests_are_not_responses() {
        let kind = FrameKind::Request(RequestKind::Send);
        assert_eq!(Response::decode(frame(kind, &[0, 0, 0, 0])), Err(DecodeError::UnexpectedKind { kind }));
    }

    #[test]
    fn empty_responses_reject_payload_bytes() {
        for kind in [
            RequestKind::DeleteTopic,
            RequestKind::CommitOffset,
            RequestKind::PluginRemove,
            RequestKind::LeaveGroup,
            RequestKind::UnlockQueues,
        ] {
            assert_eq!(
                Response::decode(frame(FrameKind::Response(kind), &[9, 9])),
                Err(DecodeError::TrailingBytes { count: 2 })
            );
        }
    }

    proptest! {
        #[test]
        fn every_response_round_trips(response in arb_response()) {
            check_response(&response, None)?;
        }
    }
}
