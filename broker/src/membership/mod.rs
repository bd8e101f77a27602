//! Consumer group membership, coordinated by the broker: who is in each group,
//! which member owns which queue, and the generation that fences stale owners.
//!
//! The [`Coordinator`] is a state machine with no I/O and no clock of its own
//! (every call takes `now`), so it is tested without a network. The core wraps it
//! in async operations (held heartbeats, the expiry task).
//!
//! - A member joins and stays with heartbeats; one silent for `member_timeout` is
//!   removed, a graceful leave removes it at once.
//! - For each (group, topic) the coordinator computes the assignment with the
//!   group's [`Strategy`] over the live clustering members subscribed to the topic,
//!   and bumps the group's **generation** on every change of any member's queues.
//! - A queue moving from a live member A to B is first revoked: A's assignment
//!   loses it, and B gets it once A's heartbeat no longer lists it in `owned` (A
//!   stopped pulling and committed), or A leaves or expires, or `revoke_timeout`
//!   passes. So two members never consume one queue when both follow the protocol.
//! - Each owned queue carries `since`, the generation it was granted (or its
//!   offsets reset) in: a pull or commit by a member whose generation is older is
//!   fenced, as is one for a queue it does not own.
//! - Broadcasting members each get every queue of their topics.
//! - Orderly consumers lock their queues (a lock with expiry, held by the owner).

pub mod assignment;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub use self::assignment::Strategy;
use crate::core::CoreError;

/// How a group's members share its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumeMode {
    /// Each message to one member: queues are split among members.
    #[default]
    Clustering,
    /// Every member receives every message, with its own offsets.
    Broadcasting,
}

impl ConsumeMode {
    /// `clustering` or `broadcasting`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumeMode::Clustering => "clustering",
            ConsumeMode::Broadcasting => "broadcasting",
        }
    }
}

/// Timings of membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How often members heartbeat.
    pub heartbeat_interval: Duration,
    /// A member silent this long is removed.
    pub member_timeout: Duration,
    /// How long a queue lock lasts without renewal.
    pub lock_expiry: Duration,
}

/// A member's heartbeat, as the coordinator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The member's id, unique per process.
    pub member_id: String,
    /// Random per member process start.
    pub session: u64,
    /// Where the member connects from.
    pub host: String,
    /// Clustering or broadcasting.
    pub mode: ConsumeMode,
    /// Whether it consumes orderly (locks its queues).
    pub orderly: bool,
    /// The topics it subscribes to.
    pub topics: BTreeSet<String>,
    /// The queues it still holds, as (topic, queue id).
    pub owned: BTreeSet<(String, u32)>,
}

/// A member's queues of one topic, each with the generation it holds it since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicQueues {
    /// The topic.
    pub topic: String,
    /// (queue id, since generation), ascending.
    pub queues: Vec<(u32, u64)>,
}

/// What a member learns from a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The group's generation.
    pub generation: u64,
    /// The member's queues.
    pub assignments: Vec<TopicQueues>,
}

/// A live member, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's id.
    pub member_id: String,
    /// Where it connects from.
    pub host: String,
    /// Clustering or broadcasting.
    pub mode: ConsumeMode,
    /// Whether it consumes orderly.
    pub orderly: bool,
    /// Its queues.
    pub assignments: Vec<TopicQueues>,
    /// Time since its last heartbeat.
    pub since_heartbeat: Duration,
}

/// A member refused because its subscription differs from the group's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The refused member.
    pub member_id: String,
    /// Where it connected from.
    pub host: String,
    /// The topic.
    pub topic: String,
    /// What the member asked for.
    pub expression: String,
    /// What the group holds.
    pub group_expression: String,
    /// When it was refused.
    pub at: Instant,
}

/// A group's live state, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// The generation.
    pub generation: u64,
    /// The mode of its live members.
    pub mode: ConsumeMode,
    /// Live members, by id.
    pub members: Vec<MemberInfo>,
    /// Recent subscription conflicts.
    pub conflicts: Vec<Conflict>,
    /// Current owner of each (topic, queue id) (clustering).
    pub owners: BTreeMap<(String, u32), String>,
}

/// Conflicts older than this are forgotten.
const CONFLICT_MEMORY: Duration = Duration::from_secs(300);
/// Most conflicts remembered per group.
const MAX_CONFLICTS: usize = 32;

#[derive(Debug)]
struct Member {
    session: u64,
    host: String,
    mode: ConsumeMode,
    orderly: bool,
    topics: BTreeSet<String>,
    owned: BTreeSet<(String, u32)>,
    last_heartbeat: Instant,
    /// Broadcasting: per topic, the generation since which it reads it.
    since: BTreeMap<String, u64>,
}

/// One queue of a clustering group.
#[derive(Debug, Default)]
struct Queue {
    /// Who may consume it now.
    owner: Option<String>,
    /// The generation it was granted in (or its offsets reset).
    since: u64,
    /// Revoked from this member, which still holds it, for `next`.
    revoking: Option<Revoke>,
    /// An orderly member's lock.
    lock: Option<(String, Instant)>,
}

#[derive(Debug)]
struct Revoke {
    from: String,
    next: String,
    at: Instant,
}

#[derive(Debug, Default)]
struct Group {
    generation: u64,
    members: BTreeMap<String, Member>,
    /// Clustering: topic → queue id → state.
    queues: BTreeMap<String, BTreeMap<u32, Queue>>,
    conflicts: Vec<Conflict>,
    /// Topics whose offsets are being reset: every pull and commit of them is refused.
    resetting: BTreeSet<String>,
}

/// Every group's members and assignments.
#[derive(Debug)]
pub struct Coordinator {
    timings: Timings,
    /// Generations start above every generation of an earlier broker run.
    first_generation: u64,
    groups: BTreeMap<String, Group>,
}

/// What the coordinator needs to know of topics and groups.
pub trait Directory {
    /// The read queue count of a topic (0 if it does not exist).
    fn read_queues(&self, topic: &str) -> u32;
    /// The group's assignment strategy.
    fn strategy(&self, group: &str) -> Strategy;
}

impl Coordinator {
    /// A coordinator whose generations start at `first_generation` (make it grow
    /// across restarts, so a member of an earlier run is always stale).
    pub fn new(timings: Timings, first_generation: u64) -> Self {
        Self { timings, first_generation, groups: BTreeMap::new() }
    }

    /// The timings members are told.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Whether the group has live state (members or recent conflicts).
    pub fn knows(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// The group's generation (0 when it has no state).
    pub fn generation(&self, group: &str) -> u64 {
        self.groups.get(group).map_or(0, |g| g.generation)
    }

    /// Whether `member_id` is a live member of `group` with this session.
    pub fn is_member(&self, group: &str, member_id: &str, session: u64) -> bool {
        self.groups.get(group).and_then(|g| g.members.get(member_id)).is_some_and(|m| m.session == session)
    }

    /// Whether `group` has live members other than `member_id` subscribed to `topic`.
    pub fn others_subscribe(&self, group: &str, member_id: &str, topic: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.members.iter().any(|(id, m)| id != member_id && m.topics.contains(topic)))
    }

    /// Remembers a refused member (shown by `group describe`).
    pub fn record_conflict(&mut self, group: &str, conflict: Conflict) {
        let g = self.groups.entry(group.to_owned()).or_default();
        g.conflicts.retain(|c| c.member_id != conflict.member_id || c.topic != conflict.topic);
        g.conflicts.push(conflict);
        if g.conflicts.len() > MAX_CONFLICTS {
            g.conflicts.remove(0);
        }
    }

    /// Checks that `heartbeat` may join or stay in `group` (the member id is not
    /// another live session's, the mode matches the group's).
    pub fn check(&self, group: &str, heartbeat: &Heartbeat, now: Instant) -> Result<(), CoreError> {
        let Some(g) = self.groups.get(group) else { return Ok(()) };
        if let Some(member) = g.members.get(&heartbeat.member_id)
            && member.session != heartbeat.session
            && now.saturating_duration_since(member.last_heartbeat) < self.timings.member_timeout
        {
            return Err(CoreError::MemberIdInUse { group: group.to_owned(), member_id: heartbeat.member_id.clone() });
        }
        if let Some((id, other)) =
            g.members.iter().find(|(id, m)| **id != heartbeat.member_id && m.mode != heartbeat.mode)
        {
            return Err(CoreError::Invalid(format!(
                "group {group} consumes in {} mode (member {id}); this member asked for {}",
                other.mode.as_str(),
                heartbeat.mode.as_str()
            )));
        }
        Ok(())
    }

    /// Records a heartbeat (joining the member if new) and rebalances what it
    /// changed. Call [`check`](Self::check) first.
    pub fn heartbeat(&mut self, group: &str, heartbeat: Heartbeat, dir: &dyn Directory, now: Instant) -> MemberView {
        let first = self.first_generation;
        let g = self.groups.entry(group.to_owned()).or_insert_with(|| Group { generation: first, ..Group::default() });
        let replaced = g.members.get(&heartbeat.member_id).is_some_and(|m| m.session != heartbeat.session);
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        if replaced {
            // A restarted member whose old session expired: the old one's queues go first.
            remove_member(g, &heartbeat.member_id, &mut dirty);
        }
        let generation_now = g.generation;
        match g.members.get_mut(&heartbeat.member_id) {
            Some(member) => {
                dirty.extend(member.topics.symmetric_difference(&heartbeat.topics).cloned());
                member.topics = heartbeat.topics;
                member.owned = heartbeat.owned;
                member.orderly = heartbeat.orderly;
                member.host = heartbeat.host;
                member.last_heartbeat = now;
            }
            None => {
                dirty.extend(heartbeat.topics.iter().cloned());
                let since = heartbeat.topics.iter().map(|t| (t.clone(), generation_now + 1)).collect();
                let member = Member {
                    session: heartbeat.session,
                    host: heartbeat.host,
                    mode: heartbeat.mode,
                    orderly: heartbeat.orderly,
                    topics: heartbeat.topics,
                    owned: heartbeat.owned,
                    last_heartbeat: now,
                    since,
                };
                g.members.insert(heartbeat.member_id.clone(), member);
            }
        }
        let mut changed = !dirty.is_empty();
        changed |= complete_revokes(g, now, self.timings.member_timeout);
        for topic in dirty {
            rebalance(g, group, &topic, dir, now);
        }
        if changed {
            bump(g);
        }
        view(g, &heartbeat.member_id, dir)
    }

    /// The member's current view (for a held heartbeat answered later).
    pub fn view(&self, group: &str, member_id: &str, dir: &dyn Directory) -> Result<MemberView, CoreError> {
        let g = self.live_group(group, member_id)?;
        Ok(view(g, member_id, dir))
    }

    /// Removes a member that leaves gracefully; its queues go to the others at once.
    pub fn leave(
        &mut self,
        group: &str,
        member_id: &str,
        session: u64,
        dir: &dyn Directory,
        now: Instant,
    ) -> Result<(), CoreError> {
        let g = self.groups.get_mut(group).filter(|g| g.members.get(member_id).is_some_and(|m| m.session == session));
        let Some(g) = g else { return Err(unknown_member(group, member_id)) };
        let mut dirty = BTreeSet::new();
        remove_member(g, member_id, &mut dirty);
        for topic in &dirty {
            rebalance(g, group, topic, dir, now);
        }
        bump(g);
        Ok(())
    }

    /// Removes members silent for longer than the timeout and completes revokes that
    /// timed out; returns the groups whose generation changed.
    pub fn expire(&mut self, dir: &dyn Directory, now: Instant) -> Vec<String> {
        let timeout = self.timings.member_timeout;
        let mut changed_groups = Vec::new();
        for (name, g) in &mut self.groups {
            let silent: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| now.saturating_duration_since(m.last_heartbeat) >= timeout)
                .map(|(id, _)| id.clone())
                .collect();
            let mut dirty = BTreeSet::new();
            for id in &silent {
                tracing::info!(group = %name, member = %id, "member expired");
                remove_member(g, id, &mut dirty);
            }
            let mut changed = !silent.is_empty();
            changed |= complete_revokes(g, now, timeout);
            for topic in &dirty {
                rebalance(g, name, topic, dir, now);
            }
            g.conflicts.retain(|c| now.saturating_duration_since(c.at) < CONFLICT_MEMORY);
            if changed {
                bump(g);
                changed_groups.push(name.clone());
            }
        }
        self.groups.retain(|_, g| !g.members.is_empty() || !g.conflicts.is_empty());
        changed_groups
    }

    /// Rebalances every group subscribed to `topic` (its queue count changed or it
    /// was deleted); returns the groups whose generation changed.
    pub fn topic_changed(&mut self, topic: &str, dir: &dyn Directory, now: Instant) -> Vec<String> {
        let mut changed = Vec::new();
        for (name, g) in &mut self.groups {
            if g.members.values().any(|m| m.topics.contains(topic)) || g.queues.contains_key(topic) {
                rebalance(g, name, topic, dir, now);
                bump(g);
                changed.push(name.clone());
            }
        }
        changed
    }

    /// Checks that `member_id`, at `generation`, may pull or commit the queue.
    /// `releasing` also admits the member a queue is being revoked from (its final commit).
    pub fn check_owner(
        &self,
        group: &str,
        member_id: &str,
        generation: u64,
        topic: &str,
        queue_id: u32,
        releasing: bool,
    ) -> Result<ConsumeMode, CoreError> {
        let g = self.live_group(group, member_id)?;
        if g.resetting.contains(topic) {
            return Err(CoreError::NotAssigned(format!("the offsets of group {group} in {topic} are being reset")));
        }
        let member = &g.members[member_id];
        let since = match member.mode {
            ConsumeMode::Broadcasting => {
                member.topics.contains(topic).then(|| member.since.get(topic).copied().unwrap_or(0))
            }
            ConsumeMode::Clustering => g.queues.get(topic).and_then(|queues| queues.get(&queue_id)).and_then(|q| {
                let owns = q.owner.as_deref() == Some(member_id);
                let revoking = releasing && q.revoking.as_ref().is_some_and(|r| r.from == member_id);
                (owns || revoking).then_some(q.since)
            }),
        };
        match since {
            Some(since) if generation >= since => Ok(member.mode),
            Some(since) => Err(CoreError::NotAssigned(format!(
                "member {member_id} of group {group} holds {topic}/{queue_id} since generation {since}, not {generation}: \
                 heartbeat for the current assignment"
            ))),
            None => Err(CoreError::NotAssigned(format!(
                "member {member_id} of group {group} does not own {topic}/{queue_id} in generation {}",
                g.generation
            ))),
        }
    }

    /// Locks the member's queues of `topic` among `queue_ids` that no other member
    /// holds a live lock on; returns those locked and the lock expiry.
    pub fn lock(
        &mut self,
        group: &str,
        member_id: &str,
        topic: &str,
        queue_ids: &[u32],
        now: Instant,
    ) -> Result<Vec<u32>, CoreError> {
        self.live_group(group, member_id)?;
        let expiry = self.timings.lock_expiry;
        let g = self.groups.get_mut(group).expect("checked live");
        let Some(queues) = g.queues.get_mut(topic) else { return Ok(Vec::new()) };
        let mut locked = Vec::new();
        for id in queue_ids {
            let Some(q) = queues.get_mut(id) else { continue };
            let free = q.lock.as_ref().is_none_or(|(holder, until)| holder == member_id || *until <= now);
            if q.owner.as_deref() == Some(member_id) && free {
                q.lock = Some((member_id.to_owned(), now + expiry));
                locked.push(*id);
            }
        }
        Ok(locked)
    }

    /// Releases the member's locks on `queue_ids` of `topic`.
    pub fn unlock(&mut self, group: &str, member_id: &str, topic: &str, queue_ids: &[u32]) -> Result<(), CoreError> {
        self.live_group(group, member_id)?;
        let g = self.groups.get_mut(group).expect("checked live");
        if let Some(queues) = g.queues.get_mut(topic) {
            for id in queue_ids {
                if let Some(q) = queues.get_mut(id)
                    && q.lock.as_ref().is_some_and(|(holder, _)| holder == member_id)
                {
                    q.lock = None;
                }
            }
        }
        Ok(())
    }

    /// Before a reset of `topic`'s offsets is written: refuses every pull and commit of
    /// its queues until [`reset`](Self::reset) or [`abort_reset`](Self::abort_reset).
    pub fn begin_reset(&mut self, group: &str, topic: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.resetting.insert(topic.to_owned());
        }
    }

    /// The reset could not be written: the queues go on as they were.
    pub fn abort_reset(&mut self, group: &str, topic: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.resetting.remove(topic);
        }
    }

    /// Once a reset of `topic`'s offsets is written: every holder of its queues holds
    /// them since a new generation, so what it pulled before stays fenced, and reads
    /// the new offsets. Returns the generation (0 when the group has no live state).
    pub fn reset(&mut self, group: &str, topic: &str) -> u64 {
        let Some(g) = self.groups.get_mut(group) else { return 0 };
        g.resetting.remove(topic);
        let next = g.generation + 1;
        for q in g.queues.get_mut(topic).into_iter().flat_map(|queues| queues.values_mut()) {
            q.since = next;
        }
        for member in g.members.values_mut() {
            if let Some(since) = member.since.get_mut(topic) {
                *since = next;
            }
        }
        bump(g);
        g.generation
    }

    /// Live groups by name.
    pub fn group_names(&self) -> Vec<String> {
        self.groups.iter().filter(|(_, g)| !g.members.is_empty()).map(|(name, _)| name.clone()).collect()
    }

    /// The group's live state.
    pub fn describe(&self, group: &str, dir: &dyn Directory, now: Instant) -> Option<GroupInfo> {
        let g = self.groups.get(group)?;
        let members = g
            .members
            .iter()
            .map(|(id, m)| MemberInfo {
                member_id: id.clone(),
                host: m.host.clone(),
                mode: m.mode,
                orderly: m.orderly,
                assignments: view(g, id, dir).assignments,
                since_heartbeat: now.saturating_duration_since(m.last_heartbeat),
            })
            .collect();
        let owners = g
            .queues
            .iter()
            .flat_map(|(t, queues)| queues.iter().map(move |(id, q)| ((t.clone(), *id), q)))
            .filter_map(|(key, q)| q.owner.clone().map(|owner| (key, owner)))
            .collect();
        Some(GroupInfo {
            generation: g.generation,
            mode: g.members.values().next().map(|m| m.mode).unwrap_or_default(),
            members,
            conflicts: g.conflicts.clone(),
            owners,
        })
    }

    fn live_group(&self, group: &str, member_id: &str) -> Result<&Group, CoreError> {
        self.groups
            .get(group)
            .filter(|g| g.members.contains_key(member_id))
            .ok_or_else(|| unknown_member(group, member_id))
    }
}

fn unknown_member(group: &str, member_id: &str) -> CoreError {
    CoreError::UnknownMember { group: group.to_owned(), member_id: member_id.to_owned() }
}

fn bump(g: &mut Group) {
    g.generation += 1;
}

/// Removes a member: the queues it owned or was releasing become free, its locks go.
fn remove_member(g: &mut Group, member_id: &str, dirty: &mut BTreeSet<String>) {
    let Some(member) = g.members.remove(member_id) else { return };
    dirty.extend(member.topics);
    for (topic, queues) in &mut g.queues {
        for q in queues.values_mut() {
            if q.lock.as_ref().is_some_and(|(holder, _)| holder == member_id) {
                q.lock = None;
            }
            if q.owner.as_deref() == Some(member_id) {
                q.owner = None;
                dirty.insert(topic.clone());
            }
            if q.revoking.as_ref().is_some_and(|r| r.from == member_id || r.next == member_id) {
                q.revoking = None;
                dirty.insert(topic.clone());
            }
        }
    }
}

/// Hands revoked queues to their next owner once the old one no longer holds them
/// (or the revoke timed out). Returns whether any did.
fn complete_revokes(g: &mut Group, now: Instant, timeout: Duration) -> bool {
    let next_generation = g.generation + 1;
    let mut changed = false;
    for (topic, queues) in &mut g.queues {
        for (id, q) in queues.iter_mut() {
            let Some(revoke) = q.revoking.take() else { continue };
            let held = g.members.get(&revoke.from).is_some_and(|m| m.owned.contains(&(topic.clone(), *id)));
            let timed_out = now.saturating_duration_since(revoke.at) >= timeout;
            if held && !timed_out {
                q.revoking = Some(revoke);
                continue;
            }
            if held {
                tracing::warn!(%topic, queue_id = id, from = %revoke.from, "revoke timed out; handing the queue over");
            } else if q.lock.as_ref().is_some_and(|(holder, _)| *holder == revoke.from) {
                q.lock = None;
            }
            q.owner = Some(revoke.next);
            q.since = next_generation;
            changed = true;
        }
    }
    changed
}

/// Recomputes `topic`'s assignment among the live clustering members subscribed to it.
fn rebalance(g: &mut Group, group: &str, topic: &str, dir: &dyn Directory, now: Instant) {
    let next_generation = g.generation + 1;
    let members: Vec<String> = g
        .members
        .iter()
        .filter(|(_, m)| m.mode == ConsumeMode::Clustering && m.topics.contains(topic))
        .map(|(id, _)| id.clone())
        .collect();
    let count = if members.is_empty() { 0 } else { dir.read_queues(topic) };
    let queues = g.queues.entry(topic.to_owned()).or_default();
    queues.retain(|id, _| *id < count);
    if count == 0 {
        g.queues.remove(topic);
        return;
    }
    // The assignment a change starts from: each queue's owner, or where it is going.
    let previous: assignment::Assignment = queues
        .iter()
        .filter_map(|(id, q)| q.revoking.as_ref().map(|r| r.next.clone()).or_else(|| q.owner.clone()).map(|m| (*id, m)))
        .collect();
    let ids: Vec<u32> = (0..count).collect();
    let target = assignment::assign(dir.strategy(group), &members, &ids, &previous);
    for (id, next) in target {
        let q = queues.entry(id).or_default();
        let current = q.revoking.as_ref().map(|r| r.next.as_str()).or(q.owner.as_deref());
        if current == Some(next.as_str()) {
            continue;
        }
        // Revoke from a live owner (it may have started pulling since its last
        // heartbeat); a queue nobody live holds changes hands now.
        let from = q.revoking.as_ref().map(|r| r.from.clone()).or_else(|| q.owner.clone());
        let holder = from.filter(|f| g.members.contains_key(f));
        match holder {
            Some(from) if from != next => {
                q.owner = None;
                q.revoking = Some(Revoke { from, next, at: now });
            }
            _ => {
                q.owner = Some(next);
                q.since = next_generation;
                q.revoking = None;
            }
        }
    }
}

/// The member's queues in the group.
fn view(g: &Group, member_id: &str, dir: &dyn Directory) -> MemberView {
    let Some(member) = g.members.get(member_id) else {
        return MemberView { generation: g.generation, assignments: Vec::new() };
    };
    let assignments = match member.mode {
        ConsumeMode::Clustering => g
            .queues
            .iter()
            .filter(|(topic, _)| member.topics.contains(*topic))
            .map(|(topic, queues)| TopicQueues {
                topic: topic.clone(),
                queues: queues
                    .iter()
                    .filter(|(_, q)| q.owner.as_deref() == Some(member_id))
                    .map(|(id, q)| (*id, q.since))
                    .collect(),
            })
            .filter(|t| !t.queues.is_empty())
            .collect(),
        // Broadcasting members read every queue.
        ConsumeMode::Broadcasting => member
            .topics
            .iter()
            .map(|topic| {
                let since = member.since.get(topic).copied().unwrap_or(0);
                TopicQueues {
                    topic: topic.clone(),
                    queues: (0..dir.read_queues(topic)).map(|id| (id, since)).collect(),
                }
            })
            .collect(),
    };
    MemberView { generation: g.generation, assignments }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Topics(u32, Strategy);

    impl Directory for Topics {
        fn read_queues(&self, _: &str) -> u32 {
            self.0
        }

        fn strategy(&self, _: &str) -> Strategy {
            self.1
        }
    }

    const TIMINGS: Timings = Timings {
        heartbeat_interval: Duration::from_secs(5),
        member_timeout: Duration::from_secs(15),
        lock_expiry: Duration::from_secs(60),
    };

    fn beat(member: &str, owned: &[u32]) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            session: 1,
            host: "127.0.0.1:1".into(),
            mode: ConsumeMode::Clustering,
            orderly: false,
            topics: BTreeSet::from(["t".to_owned()]),
            owned: owned.iter().map(|q| ("t".to_owned(), *q)).collect(),
        }
    }

    fn queues(view: &MemberView) -> Vec<u32> {
        view.assignments.iter().flat_map(|t| t.queues.iter().map(|(q, _)| *q)).collect()
    }

    #[test]
    fn a_moving_queue_waits_for_its_old_owner_to_let_go() {
        let dir = Topics(4, Strategy::Average);
        let now = Instant::now();
        let mut c = Coordinator::new(TIMINGS, 100);
        let a = c.heartbeat("g", beat("a", &[]), &dir, now);
        assert_eq!(queues(&a), [0, 1, 2, 3]);
        c.heartbeat("g", beat("a", &[0, 1, 2, 3]), &dir, now);
        let b = c.heartbeat("g", beat("b", &[]), &dir, now);
        assert!(queues(&b).is_empty(), "b waits while a still holds the queues");
        assert_eq!(queues(&c.view("g", "a", &dir).expect("live")), [0, 1], "a's view loses the moving queues at once");
        assert!(c.check_owner("g", "a", b.generation, "t", 2, false).is_err(), "a may no longer pull queue 2");
        assert!(c.check_owner("g", "a", b.generation, "t", 2, true).is_ok(), "but may commit what it finished");
        let a = c.heartbeat("g", beat("a", &[0, 1]), &dir, now);
        let b = c.view("g", "b", &dir).expect("live");
        assert_eq!(queues(&b), [2, 3]);
        assert!(b.generation > a.generation - 1);
        let since = b.assignments[0].queues[0].1;
        assert!(c.check_owner("g", "b", since - 1, "t", 2, false).is_err(), "an older generation is fenced");
        assert!(c.check_owner("g", "b", since, "t", 2, false).is_ok());
    }

    #[test]
    fn expiry_and_leave_hand_queues_over_at_once() {
        let dir = Topics(8, Strategy::Sticky);
        let now = Instant::now();
        let mut c = Coordinator::new(TIMINGS, 1);
        c.heartbeat("g", beat("a", &[]), &dir, now);
        c.heartbeat("g", beat("b", &[]), &dir, now);
        c.heartbeat("g", beat("c", &[]), &dir, now);
        let later = now + Duration::from_secs(10);
        c.heartbeat("g", beat("a", &[]), &dir, later);
        c.heartbeat("g", beat("b", &[]), &dir, later);
        assert!(c.expire(&dir, later).is_empty(), "c is not silent long enough yet");
        assert_eq!(c.expire(&dir, now + Duration::from_secs(15)), ["g"]);
        assert!(matches!(c.view("g", "c", &dir), Err(CoreError::UnknownMember { .. })));
        let owned: usize = ["a", "b"].iter().map(|m| queues(&c.view("g", m, &dir).expect("live")).len()).sum();
        assert_eq!(owned, 8, "the silent member's queues went to the others");
        c.leave("g", "b", 1, &dir, later).expect("leave");
        assert_eq!(queues(&c.view("g", "a", &dir).expect("live")).len(), 8);
        assert!(matches!(c.leave("g", "b", 1, &dir, later), Err(CoreError::UnknownMember { .. })));
    }

    #[test]
    fn a_live_member_id_is_not_reused_and_modes_do_not_mix() {
        let dir = Topics(2, Strategy::Average);
        let now = Instant::now();
        let mut c = Coordinator::new(TIMINGS, 1);
        c.heartbeat("g", beat("a", &[]), &dir, now);
        let twin = Heartbeat { session: 2, ..beat("a", &[]) };
        assert!(matches!(c.check("g", &twin, now), Err(CoreError::MemberIdInUse { .. })));
        assert!(c.check("g", &twin, now + TIMINGS.member_timeout).is_ok(), "once the old session expired");
        let broadcast = Heartbeat { mode: ConsumeMode::Broadcasting, ..beat("b", &[]) };
        assert!(matches!(c.check("g", &broadcast, now), Err(CoreError::Invalid(_))));
    }

    #[test]
    fn broadcasting_members_each_get_every_queue() {
        let dir = Topics(3, Strategy::Average);
        let now = Instant::now();
        let mut c = Coordinator::new(TIMINGS, 1);
        for member in ["a", "b"] {
            c.heartbeat("g", Heartbeat { mode: ConsumeMode::Broadcasting, ..beat(member, &[]) }, &dir, now);
        }
        for member in ["a", "b"] {
            assert_eq!(queues(&c.view("g", member, &dir).expect("live")), [0, 1, 2]);
        }
    }

    #[test]
    fn locks_go_to_owners_one_at_a_time_and_expire() {
        let dir = Topics(2, Strategy::Average);
        let now = Instant::now();
        let mut c = Coordinator::new(TIMINGS, 1);
        c.heartbeat("g", beat("a", &[]), &dir, now);
        assert_eq!(c.lock("g", "a", "t", &[0, 1, 7], now).expect("live"), [0, 1]);
        c.heartbeat("g", beat("a", &[0, 1]), &dir, now);
        c.heartbeat("g", beat("b", &[]), &dir, now);
        // a's revoke times out while it still holds queue 1 (a stuck consumer): b owns
        // it but cannot lock it until a's lock expires.
        let stuck = now + TIMINGS.member_timeout;
        c.heartbeat("g", beat("a", &[0, 1]), &dir, stuck);
        c.heartbeat("g", beat("b", &[]), &dir, stuck);
        assert_eq!(queues(&c.view("g", "b", &dir).expect("live")), [1]);
        assert!(c.lock("g", "b", "t", &[1], stuck).expect("live").is_empty());
        assert_eq!(c.lock("g", "b", "t", &[1], now + TIMINGS.lock_expiry).expect("live"), [1], "the lock expired");
        c.unlock("g", "b", "t", &[1]).expect("live");
        assert_eq!(c.lock("g", "b", "t", &[1], stuck).expect("live"), [1]);
    }

    #[test]
    fn letting_a_queue_go_releases_its_lock() {
        let dir = Topics(2, Strategy::Average);
        let now = Instant::now();
        let mut c = Coordinator::new(TIMINGS, 1);
        c.heartbeat("g", beat("a", &[]), &dir, now);
        c.lock("g", "a", "t", &[0, 1], now).expect("live");
        c.heartbeat("g", beat("a", &[0, 1]), &dir, now);
        c.heartbeat("g", beat("b", &[]), &dir, now);
        c.heartbeat("g", beat("a", &[0]), &dir, now);
        assert_eq!(c.lock("g", "b", "t", &[1], now).expect("live"), [1]);
    }

    #[test]
    fn a_reset_fences_what_was_pulled_before() {
        let dir = Topics(1, Strategy::Average);
        let now = Instant::now();
        let mut c = Coordinator::new(TIMINGS, 1);
        let view = c.heartbeat("g", beat("a", &[]), &dir, now);
        assert!(c.check_owner("g", "a", view.generation, "t", 0, false).is_ok());
        c.begin_reset("g", "t");
        assert!(c.check_owner("g", "a", view.generation, "t", 0, true).is_err(), "no commit while resetting");
        let reset = c.reset("g", "t");
        assert!(c.check_owner("g", "a", view.generation, "t", 0, false).is_err());
        assert!(c.check_owner("g", "a", reset, "t", 0, false).is_ok());
    }
}
