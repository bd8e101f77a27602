//! Consumer offsets: commit and fetch per (group, topic, queue) — per member in
//! broadcasting groups — a group's lag, and resetting its offsets.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Core, CoreError, MemberRef, require_group};
use crate::membership::ConsumeMode;
use crate::meta::offsets::{Committed, OffsetKey};

/// Where a reset moves a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetTarget {
    /// Each queue's first retained message.
    Earliest,
    /// Each queue's end: only messages arriving later.
    Latest,
    /// The first message stored at or after this Unix time in ms.
    Timestamp(u64),
}

/// How far a group is behind on one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLag {
    /// The topic.
    pub topic: String,
    /// The queue.
    pub queue_id: u32,
    /// The queue's end.
    pub broker_offset: u64,
    /// The group's (or member's) committed offset.
    pub committed_offset: Option<u64>,
    /// Messages between the committed offset (or the queue's start) and the end.
    pub lag: u64,
    /// The member owning the queue (clustering), or whose offset this is (broadcasting).
    pub owner: Option<String>,
    /// When the offset was committed, Unix ms.
    pub last_commit_ms: Option<u64>,
}

impl Core {
    /// Durably records that `group` (or, in a broadcasting group, `member`) will next
    /// consume `offset` of the queue. A member must own the queue (or be handing it over).
    pub async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
        member: Option<&MemberRef>,
    ) -> Result<(), CoreError> {
        self.readable_queue(topic, queue_id)?;
        require_group(group)?;
        let key = match member {
            Some(member) => {
                let mode = self.fence(group, member, topic, queue_id, true)?;
                offset_key(group, topic, queue_id, mode, member)
            }
            None => offset_key(group, topic, queue_id, ConsumeMode::Clustering, &MemberRef::default()),
        };
        self.offsets.commit(vec![(key, offset)]).await
    }

    /// The offset committed for the queue by `group` (or by `member`, in a broadcasting group).
    pub fn fetch_offset(&self, group: &str, topic: &str, queue_id: u32, member: Option<&MemberRef>) -> Option<u64> {
        let mode = member.and_then(|m| self.fence(group, m, topic, queue_id, true).ok()).unwrap_or_default();
        let key = offset_key(group, topic, queue_id, mode, member.unwrap_or(&MemberRef::default()));
        self.offsets.fetch(&key).map(|committed| committed.offset)
    }

    /// Per queue of the group's subscribed topics (or `topic`): the queue's end, the
    /// committed offset, the lag and the owner.
    pub fn group_lag(&self, group: &str, topic: Option<&str>) -> Result<Vec<QueueLag>, CoreError> {
        self.require_known_group(group)?;
        if let Some(topic) = topic {
            self.existing_topic(topic)?;
        }
        let committed = self.offsets.of_group(group, topic);
        // The group's subscribed topics and those it committed offsets in (or the one asked for).
        let mut topics: BTreeSet<String> =
            self.subscriptions(Some(group), topic).into_iter().map(|s| s.topic).collect();
        topics.extend(committed.iter().map(|(key, _)| key.topic.clone()));
        topics.extend(topic.map(str::to_owned));
        let info = self.describe_group_state(group);
        let mut lags = Vec::new();
        for topic in topics {
            let Some(t) = self.topics.get(&topic) else { continue };
            for queue_id in 0..t.read_queues {
                let (min, max) = self.store.queue_offsets(&topic, queue_id);
                let owner = info.as_ref().and_then(|i| i.owners.get(&(topic.clone(), queue_id)).cloned());
                let row = |owner: Option<String>, committed: Option<&Committed>| QueueLag {
                    topic: topic.clone(),
                    queue_id,
                    broker_offset: max,
                    committed_offset: committed.map(|c| c.offset),
                    lag: max.saturating_sub(committed.map_or(min, |c| c.offset.max(min))),
                    owner,
                    last_commit_ms: committed.map(|c| c.at_ms),
                };
                // One row per offset kept for the queue: the group's, or each broadcasting member's.
                let before = lags.len();
                for (key, c) in committed.iter().filter(|(k, _)| k.topic == topic && k.queue_id == queue_id) {
                    let owner = if key.member.is_empty() { owner.clone() } else { Some(key.member.clone()) };
                    lags.push(row(owner, Some(c)));
                }
                if lags.len() == before {
                    lags.push(row(owner, None));
                }
            }
        }
        Ok(lags)
    }

    /// Moves `group`'s offsets of every queue of `topic` (every member's, in a
    /// broadcasting group) to `to`, durably, fencing what live members pulled before
    /// (their commits of old positions are refused): they pick the new offsets up at
    /// once, from the held heartbeat the change answers. Returns the
    /// group's new generation and each queue's offset.
    pub async fn reset_offsets(
        self: &Arc<Self>,
        group: &str,
        topic: &str,
        to: OffsetTarget,
    ) -> Result<(u64, Vec<(u32, u64)>), CoreError> {
        require_group(group)?;
        let t = self.existing_topic(topic)?;
        let mut offsets = Vec::new();
        for queue_id in 0..t.read_queues {
            let (min, max) = self.store.queue_offsets(topic, queue_id);
            let offset = match to {
                OffsetTarget::Earliest => min,
                OffsetTarget::Latest => max,
                OffsetTarget::Timestamp(ms) => {
                    self.store.offset_at_time(topic, queue_id, i64::try_from(ms).unwrap_or(i64::MAX))
                }
            };
            offsets.push((queue_id, offset));
        }
        // The group's own offsets, and every member's that has some.
        let mut members = BTreeSet::from([String::new()]);
        members.extend(self.offsets.of_group(group, Some(topic)).into_iter().map(|(k, _)| k.member));
        let entries = members
            .iter()
            .flat_map(|member| {
                offsets.iter().map(move |(queue_id, offset)| {
                    let key = OffsetKey {
                        group: group.to_owned(),
                        member: member.clone(),
                        topic: topic.to_owned(),
                        queue_id: *queue_id,
                    };
                    (key, *offset)
                })
            })
            .collect();
        // Refuse live members' pulls and commits first: a commit of an old position must
        // not land after the reset. Members learn of the new offsets only once written.
        self.coordinator.lock().begin_reset(group, topic);
        if let Err(err) = self.offsets.commit(entries).await {
            self.coordinator.lock().abort_reset(group, topic);
            return Err(err);
        }
        let generation = self.coordinator.lock().reset(group, topic);
        self.membership_changed();
        tracing::info!(%group, %topic, ?to, generation, "consumer offsets reset");
        Ok((generation, offsets))
    }
}

/// Whose offset a commit or fetch is: the group's, or a broadcasting member's.
fn offset_key(group: &str, topic: &str, queue_id: u32, mode: ConsumeMode, member: &MemberRef) -> OffsetKey {
    let member = match mode {
        ConsumeMode::Broadcasting => member.member_id.clone(),
        ConsumeMode::Clustering => String::new(),
    };
    OffsetKey { group: group.to_owned(), member, topic: topic.to_owned(), queue_id }
}
