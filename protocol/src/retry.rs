//! Failed consumption, retries and dead letters: a consumer's nack, the dead-letter
//! queue's listing and resend, and a group's retry policy (SPEC §8).
//!
//! A retry or dead-letter copy carries where it came from in reserved properties, named
//! here because consumers read them: [`ORIGIN_TOPIC`], [`ORIGIN_QUEUE`],
//! [`ORIGIN_MSG_ID`], [`RECONSUME_TIMES`], [`LAST_REASON`].

use crate::error::{DecodeError, EncodeError};
use crate::message::StoredMessage;
use crate::wire::{Reader, Wire, Writer};

/// Reserved property of a retry or dead-letter copy: the topic the message was first sent to.
pub const ORIGIN_TOPIC: &str = "__weir_origin_topic";
/// Reserved property: the queue of the original message.
pub const ORIGIN_QUEUE: &str = "__weir_origin_queue";
/// Reserved property: the id of the original message.
pub const ORIGIN_MSG_ID: &str = "__weir_origin_msg_id";
/// Reserved property: how many times the message was redelivered after failures.
pub const RECONSUME_TIMES: &str = "__weir_reconsume_times";
/// Reserved property: why its last consumption failed, as the consumer said.
pub const LAST_REASON: &str = "__weir_last_reason";

/// Report that consuming a message failed. Answered with a [`NackResponse`] once the
/// broker has acted on it: the retry or dead-letter copy is stored (durably, under sync
/// flush), so the consumer may then treat the delivery as handled and commit past it.
///
/// Format: string consumer_group, string msg_id, string reason, option\<`u32`\>
/// in_place_attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackRequest {
    /// The consumer group that failed.
    pub consumer_group: String,
    /// The id of the message as it was pulled (a retry copy's own id).
    pub msg_id: String,
    /// Why, free text (a policy plugin may decide on it); may be empty.
    pub reason: String,
    /// An orderly consumer retries in place: the redeliveries it made so far. The broker
    /// then stores no retry copy; it decides, and stores a dead-letter copy when that is
    /// the decision.
    pub in_place_attempts: Option<u32>,
}

impl Wire for NackRequest {
    const MIN_LEN: usize = 2 + 2 + 2 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("nack.consumer_group", &self.consumer_group)?;
        w.str("nack.msg_id", &self.msg_id)?;
        w.str("nack.reason", &self.reason)?;
        w.opt_u32(self.in_place_attempts);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(NackRequest {
            consumer_group: r.str("nack.consumer_group")?,
            msg_id: r.str("nack.msg_id")?,
            reason: r.str("nack.reason")?,
            in_place_attempts: r.opt_u32("nack.in_place_attempts")?,
        })
    }
}

/// What became of a failed delivery.
///
/// Format: `u8` tag; `0` retry, then `u64` delay_ms; `1` dead letter; `2` discard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackDecision {
    /// Delivered again after this delay (through the group's retry topic, or in place).
    Retry {
        /// The delay, ms.
        delay_ms: u64,
    },
    /// Moved to the group's dead-letter topic.
    DeadLetter,
    /// Dropped by the group's policy (counted and logged by the broker).
    Discard,
}

impl Wire for NackDecision {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            NackDecision::Retry { delay_ms } => {
                w.u8(0);
                w.u64(*delay_ms);
            }
            NackDecision::DeadLetter => w.u8(1),
            NackDecision::Discard => w.u8(2),
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8("nack.decision")? {
            0 => Ok(NackDecision::Retry { delay_ms: r.u64("nack.delay_ms")? }),
            1 => Ok(NackDecision::DeadLetter),
            2 => Ok(NackDecision::Discard),
            tag => Err(DecodeError::InvalidValue { field: "nack.decision", value: tag.into() }),
        }
    }
}

/// The broker's answer to a [`NackRequest`].
///
/// Format: [`NackDecision`] decision, `u32` reconsume_times, string stored_msg_id, string
/// decided_by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackResponse {
    /// What the broker did.
    pub decision: NackDecision,
    /// The redelivery count the copy carries (the failed delivery's plus one).
    pub reconsume_times: u32,
    /// The copy stored: the retry copy (waiting for its delay; cancellable by this id) or
    /// the dead-letter copy; empty for a retry in place or a discard.
    pub stored_msg_id: String,
    /// The policy plugin that decided; empty for the broker's default schedule (also when
    /// a plugin failed and the default decided instead).
    pub decided_by: String,
}

impl Wire for NackResponse {
    const MIN_LEN: usize = 1 + 4 + 2 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.decision.encode(w)?;
        w.u32(self.reconsume_times);
        w.str("nack.stored_msg_id", &self.stored_msg_id)?;
        w.str("nack.decided_by", &self.decided_by)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(NackResponse {
            decision: NackDecision::decode(r)?,
            reconsume_times: r.u32("nack.reconsume_times")?,
            stored_msg_id: r.str("nack.stored_msg_id")?,
            decided_by: r.str("nack.decided_by")?,
        })
    }
}

/// List a group's dead letters, in the order they arrived, or one by id.
///
/// Format: string consumer_group, option\<string\> msg_id, `u64` from_offset, `u32`
/// max_messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqListRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// Only this dead letter (by its id in the dead-letter topic); unknown is `NOT_FOUND`.
    pub msg_id: Option<String>,
    /// The dead-letter queue offset to start at.
    pub from_offset: u64,
    /// Most entries to return.
    pub max_messages: u32,
}

impl Wire for DlqListRequest {
    const MIN_LEN: usize = 2 + 1 + 8 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("dlq_list.consumer_group", &self.consumer_group)?;
        w.opt_str("dlq_list.msg_id", self.msg_id.as_deref())?;
        w.u64(self.from_offset);
        w.u32(self.max_messages);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DlqListRequest {
            consumer_group: r.str("dlq_list.consumer_group")?,
            msg_id: r.opt_str("dlq_list.msg_id")?,
            from_offset: r.u64("dlq_list.from_offset")?,
            max_messages: r.u32("dlq_list.max_messages")?,
        })
    }
}

/// One message in a dead-letter topic.
///
/// Format: [`StoredMessage`] message, string original_topic, string original_msg_id,
/// string last_reason, bool resent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter as stored in `%DLQ%<group>` (its `reconsume_times` is how often it
    /// was redelivered before it got here).
    pub message: StoredMessage,
    /// The topic it was first sent to.
    pub original_topic: String,
    /// The id of the original message.
    pub original_msg_id: String,
    /// Why its last consumption failed.
    pub last_reason: String,
    /// It was sent back to its original topic already.
    pub resent: bool,
}

impl Wire for DeadLetter {
    const MIN_LEN: usize = StoredMessage::MIN_LEN + 2 + 2 + 2 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.message.encode(w)?;
        w.str("dead_letter.original_topic", &self.original_topic)?;
        w.str("dead_letter.original_msg_id", &self.original_msg_id)?;
        w.str("dead_letter.last_reason", &self.last_reason)?;
        w.bool(self.resent);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DeadLetter {
            message: StoredMessage::decode(r)?,
            original_topic: r.str("dead_letter.original_topic")?,
            original_msg_id: r.str("dead_letter.original_msg_id")?,
            last_reason: r.str("dead_letter.last_reason")?,
            resent: r.bool("dead_letter.resent")?,
        })
    }
}

/// A page of dead letters.
///
/// Format: list\<[`DeadLetter`]\> entries, `u64` next_offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqListResponse {
    /// The dead letters, oldest first.
    pub entries: Vec<DeadLetter>,
    /// Where the next page starts; the dead-letter topic's end when this page reached it.
    pub next_offset: u64,
}

impl Wire for DlqListResponse {
    const MIN_LEN: usize = 4 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("dlq_list.entries", &self.entries)?;
        w.u64(self.next_offset);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DlqListResponse { entries: r.list("dlq_list.entries")?, next_offset: r.u64("dlq_list.next_offset")? })
    }
}

/// Send dead letters back to their original topics, redelivery count reset. Idempotent:
/// a dead letter resent before is not resent again.
///
/// Format: string consumer_group, list\<string\> msg_ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqResendRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The dead letters, by their ids in the dead-letter topic.
    pub msg_ids: Vec<String>,
}

impl Wire for DlqResendRequest {
    const MIN_LEN: usize = 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("dlq_resend.consumer_group", &self.consumer_group)?;
        w.str_list("dlq_resend.msg_ids", &self.msg_ids)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DlqResendRequest {
            consumer_group: r.str("dlq_resend.consumer_group")?,
            msg_ids: r.str_list("dlq_resend.msg_ids")?,
        })
    }
}

/// What a resend did with one dead letter.
///
/// Format: `u8` tag; `0` resent, then string new_msg_id; `1` already resent; `2` not
/// found, then string detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResendOutcome {
    /// Stored again on its original topic under this id.
    Resent {
        /// The new message's id.
        new_msg_id: String,
    },
    /// Resent before: nothing was done.
    AlreadyResent,
    /// Not a dead letter of this group (or its topic is gone).
    NotFound {
        /// Why.
        detail: String,
    },
}

/// The outcome for one dead letter of a [`DlqResendRequest`].
///
/// Format: string msg_id, string original_topic, [`ResendOutcome`] outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendResult {
    /// The dead letter's id.
    pub msg_id: String,
    /// The topic it goes back to (empty when not found).
    pub original_topic: String,
    /// What was done.
    pub outcome: ResendOutcome,
}

impl Wire for ResendResult {
    const MIN_LEN: usize = 2 + 2 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("resend.msg_id", &self.msg_id)?;
        w.str("resend.original_topic", &self.original_topic)?;
        match &self.outcome {
            ResendOutcome::Resent { new_msg_id } => {
                w.u8(0);
                w.str("resend.new_msg_id", new_msg_id)
            }
            ResendOutcome::AlreadyResent => {
                w.u8(1);
                Ok(())
            }
            ResendOutcome::NotFound { detail } => {
                w.u8(2);
                w.str("resend.detail", detail)
            }
        }
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let msg_id = r.str("resend.msg_id")?;
        let original_topic = r.str("resend.original_topic")?;
        let outcome = match r.u8("resend.outcome")? {
            0 => ResendOutcome::Resent { new_msg_id: r.str("resend.new_msg_id")? },
            1 => ResendOutcome::AlreadyResent,
            2 => ResendOutcome::NotFound { detail: r.str("resend.detail")? },
            tag => return Err(DecodeError::InvalidValue { field: "resend.outcome", value: tag.into() }),
        };
        Ok(ResendResult { msg_id, original_topic, outcome })
    }
}

/// The outcome of a [`DlqResendRequest`], one result per id in its order.
///
/// Format: list\<[`ResendResult`]\>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqResendResponse {
    /// One per requested id.
    pub results: Vec<ResendResult>,
}

impl Wire for DlqResendResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("dlq_resend.results", &self.results)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DlqResendResponse { results: r.list("dlq_resend.results")? })
    }
}

/// A change to one setting: leave it, set it, or go back to the broker's default.
///
/// Format: `u8` tag; `0` keep; `1` set, then the value; `2` clear.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Change<T> {
    /// Leave as it is.
    #[default]
    Keep,
    /// Set to this.
    Set(T),
    /// Back to the default (no plugin; the broker's `max_reconsume_times`).
    Clear,
}

impl<T: Wire> Wire for Change<T> {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Change::Keep => w.u8(0),
            Change::Set(value) => {
                w.u8(1);
                value.encode(w)?;
            }
            Change::Clear => w.u8(2),
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        match r.u8("change")? {
            0 => Ok(Change::Keep),
            1 => Ok(Change::Set(T::decode(r)?)),
            2 => Ok(Change::Clear),
            tag => Err(DecodeError::InvalidValue { field: "change", value: tag.into() }),
        }
    }
}

/// A dlq-policy plugin attached to a group, with its parameter string.
///
/// Format: string plugin, string params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyPlugin {
    /// The plugin's name (a `dlq-policy` plugin).
    pub plugin: String,
    /// Its parameters.
    pub params: String,
}

impl Wire for PolicyPlugin {
    const MIN_LEN: usize = 2 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("policy.plugin", &self.plugin)?;
        w.str("policy.params", &self.params)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PolicyPlugin { plugin: r.str("policy.plugin")?, params: r.str("policy.params")? })
    }
}

/// Change a group's retry policy: its dlq-policy plugin and its redelivery limit.
/// Answered with the group's [`RetryPolicyInfo`].
///
/// Format: string consumer_group, [`Change`]\<[`PolicyPlugin`]\> plugin,
/// [`Change`]\<`u32`\> max_reconsume_times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetGroupPolicyRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// Attach (replacing any), detach, or keep the policy plugin.
    pub plugin: Change<PolicyPlugin>,
    /// The group's own limit on redeliveries before the dead-letter topic.
    pub max_reconsume_times: Change<u32>,
}

impl Wire for SetGroupPolicyRequest {
    const MIN_LEN: usize = 2 + 1 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("set_policy.consumer_group", &self.consumer_group)?;
        self.plugin.encode(w)?;
        self.max_reconsume_times.encode(w)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(SetGroupPolicyRequest {
            consumer_group: r.str("set_policy.consumer_group")?,
            plugin: Change::decode(r)?,
            max_reconsume_times: Change::decode(r)?,
        })
    }
}

/// What a group's failures became since the broker started, and its policy plugin's calls.
///
/// Format: `u64` × 9: failures, retries, dead_letters, discards, fallbacks, policy_calls,
/// policy_errors, policy_call_nanos, resent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryStats {
    /// Failed deliveries reported (nacks).
    pub failures: u64,
    /// Decided: retry.
    pub retries: u64,
    /// Decided: dead letter.
    pub dead_letters: u64,
    /// Decided: discard.
    pub discards: u64,
    /// Failures the default schedule decided because the plugin failed.
    pub fallbacks: u64,
    /// Calls of the policy plugin.
    pub policy_calls: u64,
    /// Of those, failed (trap, fuel exhausted, bad answer, disabled).
    pub policy_errors: u64,
    /// Total time in the plugin, ns.
    pub policy_call_nanos: u64,
    /// Dead letters resent.
    pub resent: u64,
}

impl Wire for RetryStats {
    const MIN_LEN: usize = 9 * 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        for value in [
            self.failures,
            self.retries,
            self.dead_letters,
            self.discards,
            self.fallbacks,
            self.policy_calls,
            self.policy_errors,
            self.policy_call_nanos,
            self.resent,
        ] {
            w.u64(value);
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(RetryStats {
            failures: r.u64("retry_stats.failures")?,
            retries: r.u64("retry_stats.retries")?,
            dead_letters: r.u64("retry_stats.dead_letters")?,
            discards: r.u64("retry_stats.discards")?,
            fallbacks: r.u64("retry_stats.fallbacks")?,
            policy_calls: r.u64("retry_stats.policy_calls")?,
            policy_errors: r.u64("retry_stats.policy_errors")?,
            policy_call_nanos: r.u64("retry_stats.policy_call_nanos")?,
            resent: r.u64("retry_stats.resent")?,
        })
    }
}

/// A group's retry policy and what it did.
///
/// Format: option\<[`PolicyPlugin`]\> plugin, `u32` max_reconsume_times, bool
/// group_limit, [`RetryStats`] stats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryPolicyInfo {
    /// The attached dlq-policy plugin.
    pub plugin: Option<PolicyPlugin>,
    /// Redeliveries before the dead-letter topic, as in force.
    pub max_reconsume_times: u32,
    /// The limit is the group's own (else the broker's `max_reconsume_times`).
    pub group_limit: bool,
    /// Since the broker started.
    pub stats: RetryStats,
}

impl Wire for RetryPolicyInfo {
    const MIN_LEN: usize = 1 + 4 + 1 + RetryStats::MIN_LEN;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.opt(self.plugin.as_ref())?;
        w.u32(self.max_reconsume_times);
        w.bool(self.group_limit);
        self.stats.encode(w)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(RetryPolicyInfo {
            plugin: r.opt("retry_policy.plugin")?,
            max_reconsume_times: r.u32("retry_policy.max_reconsume_times")?,
            group_limit: r.bool("retry_policy.group_limit")?,
            stats: RetryStats::decode(r)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{arb_retry_request, arb_retry_response, check_request, check_response};

    proptest! {
        #[test]
        fn retry_requests_round_trip(request in arb_retry_request()) {
            check_request(&request, None)?;
        }

        #[test]
        fn retry_responses_round_trip(response in arb_retry_response()) {
            check_response(&response, None)?;
        }
    }

    #[test]
    fn a_nack_has_a_stable_encoding() {
        let request = crate::Request::Nack(NackRequest {
            consumer_group: "g".into(),
            msg_id: "M".into(),
            reason: "".into(),
            in_place_attempts: Some(2),
        });
        #[rustfmt::skip]
        let golden: &[u8] = &[
            b'W', b'E', b'I', b'R', 1, 0, 0x01, 0x0b, 13, 0, 0, 0, // header: Nack, length 13
            1, 0, b'g', 1, 0, b'M', 0, 0, // group, msg_id, reason
            1, 2, 0, 0, 0, // in_place_attempts: Some(2)
        ];
        check_request(&request, Some(golden)).expect("golden");
    }

    #[test]
    fn unknown_tags_are_typed_errors() {
        let mut bytes = bytes::BytesMut::new();
        crate::wire::Writer::new(&mut bytes).u8(3);
        let err = crate::wire::decode_exact::<NackDecision>(bytes.freeze()).expect_err("tag 3");
        assert!(matches!(err, DecodeError::InvalidValue { field: "nack.decision", value: 3 }), "{err:?}");
    }
}
