//! Failed deliveries (SPEC §8): a consumer's nack becomes a retry copy, a dead letter or
//! a discard, as the group's retry policy decides; and the policy itself.
//!
//! The decision: the group's dlq-policy plugin when one is attached (called here, on
//! the blocking pool), else, and whenever the plugin fails (trap, fuel, bad answer,
//! disabled), RocketMQ's schedule: a retry after delay level `3 + reconsume_times` of
//! `delay_levels` until `max_reconsume_times` (the group's own, else the broker's), then
//! the dead-letter topic. The copy is stored (durably, under sync flush) before the nack
//! is answered, so the consumer commits past the failed message only once its copy is safe.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use weir_filters::FilterInput;
use weir_plugins::{FailedDelivery, RetryDecision};
use weir_storage::{AppendStatus, RecordView};

use super::{Core, CoreError, require_group};
use crate::delayed::{self, RESERVED_PREFIX};
use crate::meta::policies::{GroupPolicy, Setting};
use crate::retry::{self, CopyKind, Origin};

/// A consumer's report that it failed a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// The consumer group.
    pub group: String,
    /// The message as pulled (a retry copy's own id).
    pub msg_id: String,
    /// Why, as the consumer said.
    pub reason: String,
    /// An orderly consumer retrying in place: the redeliveries it made so far.
    pub in_place_attempts: Option<u32>,
}

/// What became of a failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackOutcome {
    /// The decision.
    pub decision: RetryDecision,
    /// The redelivery count the copy carries.
    pub reconsume_times: u32,
    /// The copy stored, if any (a retry copy waiting for its delay, or a dead letter).
    pub stored_msg_id: Option<String>,
    /// The plugin that decided; `None` for the default schedule.
    pub decided_by: Option<String>,
}

/// A group's retry policy and counters, as `weir group describe` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryInfo {
    /// The attached plugin and its parameters.
    pub plugin: Option<(String, String)>,
    /// Redeliveries before the dead-letter topic, as in force.
    pub max_reconsume_times: u32,
    /// The limit is the group's own.
    pub group_limit: bool,
    /// Failures reported, decisions (retry, dead letter, discard), fallbacks, resends.
    pub failures: u64,
    /// Decided: retry.
    pub retries: u64,
    /// Decided: dead letter.
    pub dead_letters: u64,
    /// Decided: discard.
    pub discards: u64,
    /// Decided by the default schedule because the plugin failed.
    pub fallbacks: u64,
    /// The plugin's calls, failed calls and total call time (ns).
    pub policy_calls: u64,
    /// Failed calls.
    pub policy_errors: u64,
    /// Total call time, ns.
    pub policy_call_nanos: u64,
    /// Dead letters resent.
    pub resent: u64,
}

/// A dlq-policy plugin's decisions over the groups it is attached to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyUse {
    /// Groups it is attached to.
    pub groups: u32,
    /// Its decisions: retry.
    pub retries: u64,
    /// Dead letter.
    pub dead_letters: u64,
    /// Discard.
    pub discards: u64,
}

impl Core {
    /// Handles `nack`: decides, stores the retry or dead-letter copy (durably under sync
    /// flush) and answers what was done. `NotFound` for an unknown message; `Invalid`
    /// for a message in a system topic other than the group's retry topic.
    pub async fn nack(self: &Arc<Self>, nack: Nack) -> Result<NackOutcome, CoreError> {
        require_group(&nack.group)?;
        self.blocking(move |core| core.handle_nack(&nack)).await
    }

    fn handle_nack(&self, nack: &Nack) -> Result<NackOutcome, CoreError> {
        let record = self.store.message_by_id(&nack.msg_id)?;
        let view = record.view();
        let origin = retry::origin(&view, &nack.msg_id, &nack.group).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let reconsume_times = nack.in_place_attempts.unwrap_or(origin.reconsume_times);
        let policy = self.retry_policies.get(&nack.group);
        policy.counters.failures.fetch_add(1, Ordering::Relaxed);
        let (decision, decided_by) = self.decide(nack, &view, &origin, reconsume_times, &policy);
        policy.counters.count(decision);
        let (kind, carried, delay) = match decision {
            RetryDecision::Discard => {
                tracing::warn!(
                    group = %nack.group, msg_id = %nack.msg_id, original_msg_id = %origin.msg_id,
                    decided_by = decided_by.as_deref().unwrap_or("default"), reason = %nack.reason,
                    "a failed message was discarded by the group's policy"
                );
                return Ok(NackOutcome { decision, reconsume_times, stored_msg_id: None, decided_by });
            }
            RetryDecision::RetryAfter(_) if nack.in_place_attempts.is_some() => {
                let reconsume_times = reconsume_times.saturating_add(1);
                return Ok(NackOutcome { decision, reconsume_times, stored_msg_id: None, decided_by });
            }
            RetryDecision::RetryAfter(delay) => (CopyKind::Retry, reconsume_times.saturating_add(1), delay),
            RetryDecision::DeadLetter => (CopyKind::DeadLetter, reconsume_times, Duration::ZERO),
        };
        let copy = retry::copy(&view, &origin, &nack.group, kind, carried, &nack.reason);
        let stored = self.store_copy(copy, delay)?;
        tracing::debug!(group = %nack.group, msg_id = %nack.msg_id, ?decision, %stored, "failed delivery handled");
        Ok(NackOutcome { decision, reconsume_times: carried, stored_msg_id: Some(stored), decided_by })
    }

    /// The decision for a failed delivery, and the plugin that made it (`None`: the
    /// default schedule, also when the plugin failed).
    fn decide(
        &self,
        nack: &Nack,
        view: &RecordView<'_>,
        origin: &Origin,
        reconsume_times: u32,
        policy: &GroupPolicy,
    ) -> (RetryDecision, Option<String>) {
        let limit = policy.max_reconsume_times.unwrap_or(self.config.max_reconsume_times);
        let default = || {
            if reconsume_times >= limit {
                RetryDecision::DeadLetter
            } else {
                RetryDecision::RetryAfter(self.delay_levels.retry_delay(reconsume_times))
            }
        };
        let Some(attached) = &policy.plugin else { return (default(), None) };
        let keys: Vec<&str> = view.keys().collect();
        let properties: Vec<(&str, &str)> =
            view.properties().filter(|(name, _)| !name.starts_with(RESERVED_PREFIX)).collect();
        let message = FilterInput {
            topic: &origin.topic,
            queue_id: origin.queue_id,
            queue_offset: view.queue_offset(),
            tag: view.tag(),
            keys: &keys,
            properties: &properties,
            body: view.body(),
            born_timestamp_ms: view.born_timestamp_ms(),
            reconsume_times,
        };
        let failed = FailedDelivery { group: &nack.group, reason: &nack.reason, message };
        let name = attached.policy.handle().name().to_owned();
        match attached.policy.try_decide(&failed) {
            Ok(decision) => {
                attached.count(decision);
                (self.bounded(decision), Some(name))
            }
            Err(err) => {
                policy.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(group = %nack.group, plugin = %name, msg_id = %nack.msg_id, %err, "dlq-policy call failed: the default schedule decides");
                (default(), None)
            }
        }
    }

    /// A plugin's retry delay held to `max_delay_ms`.
    fn bounded(&self, decision: RetryDecision) -> RetryDecision {
        match decision {
            RetryDecision::RetryAfter(delay) => {
                RetryDecision::RetryAfter(delay.min(Duration::from_millis(self.config.max_delay_ms)))
            }
            other => other,
        }
    }

    /// Stores a retry or dead-letter copy (creating its topic on first use), through the
    /// timer when `delay` is not zero; waits for its flush under sync flush.
    pub(super) fn store_copy(&self, copy: weir_storage::Message, delay: Duration) -> Result<String, CoreError> {
        self.topics.ensure_system(&copy.topic)?;
        let copy = if delay.is_zero() {
            copy
        } else {
            let due = delayed::now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
            delayed::to_timer_record(copy, due)
        };
        let result = self.store.append_batch(std::slice::from_ref(&copy))?.remove(0);
        if result.status != AppendStatus::SendOk {
            return Err(CoreError::Internal(format!(
                "the copy {} was stored but not flushed in time ({:?}); report the failure again",
                result.msg_id, result.status
            )));
        }
        Ok(result.msg_id.to_string())
    }

    /// Changes `group`'s dlq-policy plugin and redelivery limit. `NotFound` for an unknown
    /// plugin, `Plugin(WrongKind)` for one that is not a dlq-policy.
    pub async fn set_group_policy(
        self: &Arc<Self>,
        group: String,
        plugin: Setting<(String, String)>,
        max_reconsume_times: Setting<u32>,
    ) -> Result<RetryInfo, CoreError> {
        require_group(&group)?;
        self.blocking(move |core| {
            let resolve = |name: &str, params: &str| core.plugins.dlq_policy(name, params);
            core.retry_policies.set(&group, plugin, max_reconsume_times, &resolve)?;
            tracing::info!(%group, "retry policy changed");
            Ok(core.retry_info(&group))
        })
        .await
    }

    /// `group`'s retry policy and counters.
    pub fn retry_info(&self, group: &str) -> RetryInfo {
        let policy = self.retry_policies.get(group);
        let c = &policy.counters;
        let calls = policy.plugin.as_ref().map(|p| p.policy.handle().stats()).unwrap_or_default();
        RetryInfo {
            plugin: policy
                .plugin
                .as_ref()
                .map(|p| (p.policy.handle().name().to_owned(), p.policy.handle().params().to_owned())),
            max_reconsume_times: policy.max_reconsume_times.unwrap_or(self.config.max_reconsume_times),
            group_limit: policy.max_reconsume_times.is_some(),
            failures: c.failures.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dead_letters: c.dead_letters.load(Ordering::Relaxed),
            discards: c.discards.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
            policy_calls: calls.calls,
            policy_errors: calls.errors,
            policy_call_nanos: calls.total_call_nanos,
            resent: c.resent.load(Ordering::Relaxed),
        }
    }

    /// What dlq-policy plugin `name` decided over the groups it is attached to.
    pub fn policy_use(&self, name: &str) -> PolicyUse {
        let mut total = PolicyUse::default();
        for (_, attached) in self.retry_policies.attached().iter().filter(|(_, p)| p.policy.handle().name() == name) {
            let (retries, dead_letters, discards) = attached.decisions();
            total.groups += 1;
            total.retries += retries;
            total.dead_letters += dead_letters;
            total.discards += discards;
        }
        total
    }
}
