//! What a soak connection sends: a random mix of well-formed requests (sends, pulls,
//! offset commits, heartbeats, status, lookups, admin), requests the broker must refuse
//! (invalid names, filters, queues, batches), and bad frames (garbage, truncated,
//! oversized, unknown kinds, corrupted, reset mid-request, abandoned mid-answer).
//!
//! No I/O here: a [`Lane`] turns its random generator into [`Step`]s and learns from the
//! answers ([`Lane::observe`]); `connection.rs` performs them on a QUIC stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use weir_protocol::{
    CommitOffsetRequest, ConsumeMode, DeleteTopicRequest, DescribeGroupRequest, FetchOffsetRequest, FilterExpression,
    GroupLagRequest, GroupStatsRequest, HEADER_LEN, HeartbeatRequest, LeaveGroupRequest, ListTopicsRequest,
    LockQueuesRequest, MemberRef, MemberSubscription, Message, MessageQuery, OffsetByTimestampRequest, PullRequest,
    PullStatus, QueueOffsetsRequest, Request, Response, SendRequest, SendStatus, SubscribeRequest, TopicAssignment,
    TopicConfig, TopicPermissions, UnlockQueuesRequest,
};

use super::super::raw;

/// SplitMix64: small, fast, and the same sequence for the same seed on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Random bytes, fewer than `below`.
    pub fn bytes(&mut self, below: u64) -> Vec<u8> {
        let len = self.below(below);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// A generator for a sub-task, independent of this one's later draws.
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng::new(self.next_u64() ^ salt.wrapping_mul(0xd6e8_feb8_6659_fd93))
    }
}

/// The names a soak works with, shared by every connection.
#[derive(Debug)]
pub struct Names {
    /// Topics whose acknowledged messages are checked afterwards.
    pub topics: Vec<String>,
    /// Queues of each of them.
    pub queues: u32,
    /// Topics created, written and deleted again during the run.
    pub scratch: Vec<String>,
    /// Consumer groups that pull (or commit), each with the one expression it uses, so
    /// pulls never replace one another's subscription.
    pub groups: Vec<(String, FilterExpression)>,
    /// Consumer groups whose members heartbeat, subscribed to the first topic.
    pub member_groups: Vec<String>,
}

impl Names {
    /// The names of a soak whose topics start with `prefix`.
    pub fn new(prefix: &str, topics: u32, queues: u32) -> Self {
        Names {
            topics: (0..topics).map(|i| format!("{prefix}-{i}")).collect(),
            queues,
            scratch: (0..3).map(|i| format!("{prefix}-scratch-{i}")).collect(),
            groups: vec![
                (format!("{prefix}-g0"), FilterExpression::All),
                (format!("{prefix}-g1"), FilterExpression::Tag("A || B".into())),
                (format!("{prefix}-g2"), FilterExpression::Sql("region = 'r1' OR amount > 900".into())),
            ],
            member_groups: (0..2).map(|i| format!("{prefix}-m{i}")).collect(),
        }
    }
}

/// What a step's answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A well-formed request: answered with a response or a refusal (an error frame).
    Answer,
    /// A well-formed request the broker must refuse with an error frame.
    Refusal,
    /// Bad bytes, or a stream given up: any answer, a reset or none; the broker must
    /// only stay up and keep serving.
    Anything,
}

/// How a step's bytes go on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// All at once, then `FIN`.
    Whole,
    /// The first `at` bytes, a pause, the rest, then `FIN`: a frame split across reads.
    Split {
        /// Bytes before the pause.
        at: usize,
        /// How long the pause lasts.
        pause: Duration,
    },
    /// The first `at` bytes, then `RESET_STREAM` instead of the rest.
    ResetAfter {
        /// Bytes written before the reset.
        at: usize,
    },
    /// All at once, then `STOP_SENDING` on the answer after `after`: a client that gave up.
    StopReading {
        /// How long to wait for the answer first.
        after: Duration,
    },
}

/// One request stream to open.
#[derive(Debug, Clone)]
pub struct Step {
    /// What it is, for the tally (`send`, `pull`, `garbage`, `bad sql`, ...).
    pub label: &'static str,
    /// The bytes to write.
    pub bytes: Bytes,
    /// How to write them.
    pub how: How,
    /// What the answer must be.
    pub expect: Expect,
    /// How long to wait for the answer (a held pull or heartbeat plus slack).
    pub timeout: Duration,
    /// For a send to a checked topic: the topic's index and each message's id, in order.
    pub sent: Option<(u16, Vec<u64>)>,
}

/// A message the broker acknowledged with `SEND_OK`: it must be delivered afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acked {
    /// Index of the topic in [`Names::topics`].
    pub topic: u16,
    /// Its queue.
    pub queue_id: u32,
    /// Its queue offset.
    pub queue_offset: u64,
    /// The id its body starts with.
    pub id: u64,
}

/// The body of message `id`: the id in 16 hex digits, then `pad` filler bytes.
pub fn body(id: u64, pad: usize) -> Bytes {
    let mut body = BytesMut::with_capacity(16 + pad);
    body.put_slice(format!("{id:016x}").as_bytes());
    body.put_bytes(b'.', pad);
    body.freeze()
}

/// The id a soak message's body starts with.
pub fn body_id(body: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(body.get(..16)?).ok()?, 16).ok()
}

/// Slack on top of a request's own wait before it counts as hung.
const ANSWER_SLACK: Duration = Duration::from_secs(10);
/// How long a bad frame's answer is waited for before the stream is given up.
const ANYTHING_TIMEOUT: Duration = Duration::from_secs(3);

/// Valid SQL92 subscriptions over the properties the soak sends.
const GOOD_SQL: &[&str] = &[
    "region = 'r1'",
    "amount > 500",
    "region IN ('r1', 'r2') AND amount BETWEEN 10 AND 900",
    "amount IS NOT NULL",
    "region <> 'r3' OR amount < 7",
];
/// SQL92 the broker must refuse.
const BAD_SQL: &[&str] =
    &["region = = 'r1'", "amount >", "((", "region IN ()", "'open", "amount BETWEEN 1", "NOT", "1 +", ""];
/// Tag expressions the broker must refuse.
const BAD_TAGS: &[&str] = &["A || || B", "A || *", "||"];
/// Topic names the broker must refuse.
fn bad_topic_name(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => String::new(),
        1 => "bad topic".into(),
        2 => "a/b".into(),
        3 => "x".repeat(128),
        _ => "tópico".into(),
    }
}

/// A group member's view: what its last heartbeat answer said.
#[derive(Debug, Clone)]
struct Member {
    group: usize,
    generation: u64,
    owned: Vec<u32>,
}

/// One sequence of requests on a connection, one at a time.
#[derive(Debug)]
pub struct Lane {
    rng: Rng,
    names: std::sync::Arc<Names>,
    member_id: String,
    session: u64,
    member: Option<Member>,
    /// Message ids recently acknowledged on this lane, for lookups.
    recent_ids: Vec<String>,
    /// The highest queue end seen per (topic, queue), for pulls near the end.
    ends: Vec<u64>,
}

impl Lane {
    /// A lane; `member_id` names it when it joins a group.
    pub fn new(rng: Rng, names: std::sync::Arc<Names>, member_id: String) -> Self {
        let ends = vec![0; names.topics.len() * names.queues as usize];
        let mut rng = rng;
        let session = rng.next_u64();
        Lane { rng, names, member_id, session, member: None, recent_ids: Vec::new(), ends }
    }

    /// The next request; message ids come from `next_id`.
    pub fn next_step(&mut self, next_id: &AtomicU64) -> Step {
        let roll = self.rng.below(1000);
        match roll {
            0..300 => self.send(next_id),
            300..430 => self.pull(),
            430..480 => self.commit_offset(),
            480..505 => self.fetch_offset(),
            505..525 => answer("status", &Request::Status),
            525..555 => self.queue_offsets(),
            555..580 => self.query(),
            580..640 => self.membership(),
            640..665 => self.admin_read(),
            665..680 => self.scratch(),
            680..700 => self.split(next_id),
            700..820 => self.refused(),
            _ => self.bad_frame(),
        }
    }

    /// Learns from a well-formed step's answer; returns the messages it acknowledged.
    pub fn observe(&mut self, step: &Step, response: &Response) -> Vec<Acked> {
        match response {
            Response::Send(sent) => {
                let Some((topic, ids)) = &step.sent else { return Vec::new() };
                let mut acked = Vec::new();
                for (result, &id) in sent.results.iter().zip(ids) {
                    if result.status != SendStatus::SendOk {
                        continue;
                    }
                    acked.push(Acked {
                        topic: *topic,
                        queue_id: result.queue_id,
                        queue_offset: result.queue_offset,
                        id,
                    });
                    self.note_end(*topic, result.queue_id, result.queue_offset + 1);
                    if self.recent_ids.len() >= 8 {
                        self.recent_ids.remove(0);
                    }
                    self.recent_ids.push(result.msg_id.clone());
                }
                acked
            }
            Response::Pull(page) if page.status != PullStatus::OffsetIllegal => {
                if let Some((topic, queue)) = self.pulled_queue(step) {
                    self.note_end(topic, queue, page.max_offset);
                }
                Vec::new()
            }
            Response::Heartbeat(view) => {
                if let Some(member) = &mut self.member {
                    member.generation = view.generation;
                    member.owned = view.assignments.iter().flat_map(|t| t.queues.iter().map(|q| q.queue_id)).collect();
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn note_end(&mut self, topic: u16, queue: u32, end: u64) {
        if let Some(slot) = self.ends.get_mut(usize::from(topic) * self.names.queues as usize + queue as usize) {
            *slot = (*slot).max(end);
        }
    }

    /// The checked (topic, queue) a pull step read, decoded back from its bytes.
    fn pulled_queue(&self, step: &Step) -> Option<(u16, u32)> {
        let frame = weir_protocol::decode_frame(step.bytes.clone(), u32::MAX).ok()?;
        let Ok(Request::Pull(pull)) = Request::decode(frame) else { return None };
        let topic = self.names.topics.iter().position(|t| *t == pull.topic)?;
        Some((topic as u16, pull.queue_id))
    }

    fn topic(&mut self) -> (u16, String) {
        let index = self.rng.below(self.names.topics.len() as u64) as u16;
        (index, self.names.topics[usize::from(index)].clone())
    }

    fn queue(&mut self) -> u32 {
        self.rng.below(self.names.queues.into()) as u32
    }

    fn group(&mut self) -> (String, FilterExpression) {
        self.rng.pick(&self.names.groups).clone()
    }

    fn message(&mut self, topic: &str, id: u64) -> Message {
        let pad = if self.rng.chance(20) { self.rng.below(16 << 10) } else { self.rng.below(512) } as usize;
        let mut m = Message::new(topic, body(id, pad));
        if self.rng.chance(300) {
            m.queue_id = Some(self.queue());
        }
        if !self.rng.chance(200) {
            m.tag = Some((*self.rng.pick(&["A", "B", "C"])).to_owned());
        }
        if self.rng.chance(300) {
            m.keys = vec![format!("k{}", self.rng.below(100))];
        }
        m.properties = vec![
            ("region".into(), format!("r{}", self.rng.below(4))),
            ("amount".into(), self.rng.below(1000).to_string()),
        ];
        m.born_timestamp_ms = now_ms();
        m
    }

    fn send(&mut self, next_id: &AtomicU64) -> Step {
        let (index, topic) = self.topic();
        let count = if self.rng.chance(30) { 16 } else { 1 + self.rng.below(4) };
        let ids: Vec<u64> = (0..count).map(|_| next_id.fetch_add(1, Ordering::Relaxed)).collect();
        let messages = ids.iter().map(|&id| self.message(&topic, id)).collect();
        let mut step = answer("send", &Request::Send(SendRequest { messages }));
        step.sent = Some((index, ids));
        step
    }

    fn pull_request(&mut self) -> PullRequest {
        let (index, topic) = self.topic();
        let queue_id = self.queue();
        let end = self.ends[usize::from(index) * self.names.queues as usize + queue_id as usize];
        let offset = match self.rng.below(10) {
            0..4 => end,
            4..7 => end.saturating_sub(self.rng.below(64)),
            7..9 => 0,
            _ => end + 1 + self.rng.below(1 << 40),
        };
        let max_wait_ms = match self.rng.below(10) {
            0..5 => 0,
            5..9 => self.rng.below(300) as u32,
            _ => 1000,
        };
        let (consumer_group, filter) = match self.rng.below(6) {
            0 => (String::new(), FilterExpression::All),
            1 => (String::new(), FilterExpression::Sql((*self.rng.pick(GOOD_SQL)).to_owned())),
            2 => (String::new(), FilterExpression::Tag("A || C".into())),
            3 => (self.group().0, FilterExpression::Subscribed),
            _ => self.group(),
        };
        let max_messages = if self.rng.chance(20) { 1024 } else { 1 + self.rng.below(64) as u32 };
        PullRequest { consumer_group, topic, queue_id, offset, max_messages, max_wait_ms, filter, member: None }
    }

    fn pull(&mut self) -> Step {
        // A member pulls a queue it was assigned, as its owner (fenced if it lost it).
        if let Some(member) = self.member.clone()
            && !member.owned.is_empty()
            && self.rng.chance(300)
        {
            let queue_id = *self.rng.pick(&member.owned);
            let request = PullRequest {
                consumer_group: self.names.member_groups[member.group].clone(),
                topic: self.names.topics[0].clone(),
                queue_id,
                offset: self.ends[queue_id as usize],
                max_messages: 32,
                max_wait_ms: self.rng.below(200) as u32,
                filter: FilterExpression::All,
                member: Some(MemberRef { member_id: self.member_id.clone(), generation: member.generation }),
            };
            return waiting("member pull", &Request::Pull(request), 200);
        }
        let request = self.pull_request();
        let wait = request.max_wait_ms;
        waiting("pull", &Request::Pull(request), wait)
    }

    fn commit_offset(&mut self) -> Step {
        let (consumer_group, _) = self.group();
        let (_, topic) = self.topic();
        let request = CommitOffsetRequest {
            consumer_group,
            topic,
            queue_id: self.queue(),
            offset: self.rng.below(1000),
            member: None,
        };
        answer("commit offset", &Request::CommitOffset(request))
    }

    fn fetch_offset(&mut self) -> Step {
        let (consumer_group, _) = self.group();
        let (_, topic) = self.topic();
        let request = FetchOffsetRequest { consumer_group, topic, queue_id: self.queue(), member: None };
        answer("fetch offset", &Request::FetchOffset(request))
    }

    fn queue_offsets(&mut self) -> Step {
        let (_, topic) = self.topic();
        let queue_id = self.queue();
        if self.rng.chance(300) {
            let timestamp_ms = now_ms().saturating_sub(self.rng.below(60_000));
            let request = OffsetByTimestampRequest { topic, queue_id, timestamp_ms };
            return answer("offset by time", &Request::OffsetByTimestamp(request));
        }
        answer("queue offsets", &Request::QueueOffsets(QueueOffsetsRequest { topic, queue_id }))
    }

    fn query(&mut self) -> Step {
        let query = match self.rng.below(3) {
            0 if !self.recent_ids.is_empty() => MessageQuery::ById { msg_id: self.rng.pick(&self.recent_ids).clone() },
            0 => MessageQuery::ById { msg_id: "not-an-id".into() },
            1 => MessageQuery::ById { msg_id: format!("{:024x}", self.rng.next_u64()) },
            _ => {
                let (_, topic) = self.topic();
                MessageQuery::ByKey { topic, key: format!("k{}", self.rng.below(100)), max_results: 16 }
            }
        };
        answer("query", &Request::QueryMessage(query))
    }

    /// Joins a group, heartbeats (held briefly), locks and unlocks queues, leaves.
    fn membership(&mut self) -> Step {
        let Some(member) = self.member.clone() else {
            let group = self.rng.below(self.names.member_groups.len() as u64) as usize;
            self.member = Some(Member { group, generation: 0, owned: Vec::new() });
            return self.heartbeat(0, 0);
        };
        let consumer_group = self.names.member_groups[member.group].clone();
        let topic = self.names.topics[0].clone();
        let me = MemberRef { member_id: self.member_id.clone(), generation: member.generation };
        match self.rng.below(10) {
            0 => {
                self.member = None;
                let request =
                    LeaveGroupRequest { consumer_group, member_id: self.member_id.clone(), session: self.session };
                answer("leave group", &Request::LeaveGroup(request))
            }
            1 => {
                let queue_ids = member.owned.clone();
                answer(
                    "lock queues",
                    &Request::LockQueues(LockQueuesRequest { consumer_group, member: me, topic, queue_ids }),
                )
            }
            2 => {
                let queue_ids = member.owned.clone();
                let request = UnlockQueuesRequest { consumer_group, member: me, topic, queue_ids };
                answer("unlock queues", &Request::UnlockQueues(request))
            }
            _ => {
                let wait = self.rng.below(200) as u32;
                self.heartbeat(member.generation, wait)
            }
        }
    }

    fn heartbeat(&mut self, known_generation: u64, max_wait_ms: u32) -> Step {
        let member = self.member.as_ref().expect("a member heartbeats");
        let topic = self.names.topics[0].clone();
        let request = HeartbeatRequest {
            consumer_group: self.names.member_groups[member.group].clone(),
            member_id: self.member_id.clone(),
            session: self.session,
            mode: ConsumeMode::Clustering,
            orderly: false,
            strategy: None,
            replace_subscriptions: false,
            subscriptions: vec![MemberSubscription {
                topic: topic.clone(),
                filter: FilterExpression::All,
                plugin: None,
                plugin_params: String::new(),
            }],
            owned: vec![TopicAssignment {
                topic,
                queues: member
                    .owned
                    .iter()
                    .map(|&queue_id| weir_protocol::AssignedQueue { queue_id, since_generation: 0 })
                    .collect(),
            }],
            known_generation,
            max_wait_ms,
        };
        waiting("heartbeat", &Request::Heartbeat(request), max_wait_ms)
    }

    fn admin_read(&mut self) -> Step {
        let (group, _) = self.group();
        match self.rng.below(6) {
            0 => {
                answer("list topics", &Request::ListTopics(ListTopicsRequest { include_system: self.rng.chance(500) }))
            }
            1 => answer("list groups", &Request::ListGroups),
            2 => answer("describe group", &Request::DescribeGroup(DescribeGroupRequest { consumer_group: group })),
            3 => answer("group lag", &Request::GroupLag(GroupLagRequest { consumer_group: group, topic: None })),
            4 => answer("group stats", &Request::GroupStats(GroupStatsRequest { consumer_group: group, topic: None })),
            _ => {
                let (consumer_group, filter) = self.group();
                let (_, topic) = self.topic();
                let request =
                    SubscribeRequest { consumer_group, topic, filter, plugin: None, plugin_params: String::new() };
                answer("subscribe", &Request::Subscribe(request))
            }
        }
    }

    /// Creates, writes to and deletes topics outside the checked ones.
    fn scratch(&mut self) -> Step {
        let name = self.rng.pick(&self.names.scratch).clone();
        match self.rng.below(4) {
            0 => {
                let queues = 1 + self.rng.below(4) as u32;
                let config = TopicConfig {
                    name,
                    read_queues: queues,
                    write_queues: queues,
                    permissions: TopicPermissions::READ_WRITE,
                };
                answer("create topic", &Request::CreateTopic(config))
            }
            1 => answer("delete topic", &Request::DeleteTopic(DeleteTopicRequest { topic: name })),
            2 => {
                let message = Message::new(name, body(u64::MAX, 8));
                answer("scratch send", &Request::Send(SendRequest { messages: vec![message] }))
            }
            _ => {
                let request = PullRequest {
                    consumer_group: String::new(),
                    topic: name,
                    queue_id: 0,
                    offset: 0,
                    max_messages: 8,
                    max_wait_ms: self.rng.below(500) as u32,
                    filter: FilterExpression::All,
                    member: None,
                };
                let wait = request.max_wait_ms;
                waiting("scratch pull", &Request::Pull(request), wait)
            }
        }
    }

    /// A well-formed request written in two pieces with a pause between.
    fn split(&mut self, next_id: &AtomicU64) -> Step {
        let mut step = if self.rng.chance(500) { self.send(next_id) } else { answer("status", &Request::Status) };
        let at = 1 + self.rng.below(step.bytes.len() as u64 - 1) as usize;
        step.how = How::Split { at, pause: Duration::from_millis(self.rng.below(200)) };
        step.label = if step.sent.is_some() { "split send" } else { "split status" };
        step
    }

    /// Well-formed requests the broker must refuse.
    fn refused(&mut self) -> Step {
        let (_, topic) = self.topic();
        let queue_id = self.queue();
        match self.rng.below(12) {
            0 => {
                let message = Message::new(bad_topic_name(&mut self.rng), body(u64::MAX, 4));
                refusal("send bad topic", &Request::Send(SendRequest { messages: vec![message] }))
            }
            1 => {
                let message = Message::new(format!("{topic}-missing"), body(u64::MAX, 4));
                refusal("send unknown topic", &Request::Send(SendRequest { messages: vec![message] }))
            }
            2 => {
                let mut message = Message::new(topic, body(u64::MAX, 4));
                message.queue_id = Some(self.names.queues + self.rng.below(1000) as u32);
                refusal("send bad queue", &Request::Send(SendRequest { messages: vec![message] }))
            }
            3 => refusal("send empty batch", &Request::Send(SendRequest { messages: Vec::new() })),
            4 => {
                let mut message = Message::new(topic, body(u64::MAX, 4));
                if self.rng.chance(500) {
                    message.flags = 1 << (8 + self.rng.below(24));
                } else {
                    // Due further ahead than any broker's max_delay_ms allows (ten years).
                    message.delivery = weir_protocol::Delivery::DeliverAtMs(now_ms() + 10 * 365 * 86_400_000);
                }
                refusal("send bad flags or delivery", &Request::Send(SendRequest { messages: vec![message] }))
            }
            5 => {
                let mut request = self.pull_request();
                request.consumer_group = String::new();
                request.filter = FilterExpression::Sql((*self.rng.pick(BAD_SQL)).to_owned());
                refusal("pull bad sql", &Request::Pull(request))
            }
            6 => {
                let mut request = self.pull_request();
                request.consumer_group = String::new();
                request.filter = FilterExpression::Tag((*self.rng.pick(BAD_TAGS)).to_owned());
                refusal("pull bad tag", &Request::Pull(request))
            }
            7 => {
                let mut request = self.pull_request();
                if self.rng.chance(500) {
                    request.topic = bad_topic_name(&mut self.rng);
                } else {
                    request.queue_id = self.names.queues + self.rng.below(1000) as u32;
                }
                refusal("pull bad queue", &Request::Pull(request))
            }
            8 => {
                let name =
                    if self.rng.chance(500) { bad_topic_name(&mut self.rng) } else { self.names.scratch[0].clone() };
                let queues = if name.is_empty() { 1 } else { 0 };
                let config = TopicConfig {
                    name,
                    read_queues: queues,
                    write_queues: queues,
                    permissions: TopicPermissions::READ_WRITE,
                };
                refusal("create bad topic", &Request::CreateTopic(config))
            }
            9 => {
                let request = CommitOffsetRequest {
                    consumer_group: self.group().0,
                    topic: format!("{topic}-missing"),
                    queue_id,
                    offset: 1,
                    member: None,
                };
                refusal("commit unknown topic", &Request::CommitOffset(request))
            }
            10 => {
                let mut step = self.heartbeat_with_strategy();
                step.expect = Expect::Refusal;
                step
            }
            _ => {
                let request = QueueOffsetsRequest { topic: format!("{topic}-missing"), queue_id };
                refusal("offsets unknown topic", &Request::QueueOffsets(request))
            }
        }
    }

    /// A heartbeat naming a strategy that does not exist.
    fn heartbeat_with_strategy(&mut self) -> Step {
        let request = HeartbeatRequest {
            consumer_group: self.names.member_groups[0].clone(),
            member_id: format!("{}-bad", self.member_id),
            session: self.session,
            mode: ConsumeMode::Clustering,
            orderly: false,
            strategy: Some("no-such-strategy".into()),
            replace_subscriptions: false,
            subscriptions: Vec::new(),
            owned: Vec::new(),
            known_generation: 0,
            max_wait_ms: 0,
        };
        waiting("heartbeat bad strategy", &Request::Heartbeat(request), 0)
    }

    /// Bytes that are not a request frame, or a stream given up halfway.
    fn bad_frame(&mut self) -> Step {
        let valid = self.valid_frame();
        let how = match self.rng.below(13) {
            0 => return anything("garbage", Bytes::from(self.rng.bytes(256))),
            1 => return anything("empty stream", Bytes::new()),
            2 => {
                let mut bytes = valid.to_vec();
                bytes[self.rng.below(4) as usize] ^= 1 + self.rng.below(255) as u8;
                return anything("bad magic", Bytes::from(bytes));
            }
            3 => {
                let mut bytes = valid.to_vec();
                bytes[4] = *self.rng.pick(&[0, 2, 3, 0x7f, 0xff]);
                return anything("bad version", Bytes::from(bytes));
            }
            4 => {
                let mut bytes = valid.to_vec();
                bytes[5] = 1 + self.rng.below(255) as u8;
                return anything("bad flags", Bytes::from(bytes));
            }
            5 => {
                let mut bytes = valid.to_vec();
                let kind: u16 = *self.rng.pick(&[0x0000, 0x0105, 0x0b01, 0x00ff, 0x7fff, 0x8701, 0xffff, 0x0f0f]);
                bytes[6..8].copy_from_slice(&kind.to_le_bytes());
                return anything("unknown kind", Bytes::from(bytes));
            }
            6 => {
                // A header announcing more than any frame limit, then a little payload.
                let mut bytes = valid[..8].to_vec();
                let len = u32::MAX - self.rng.below(1 << 20) as u32;
                bytes.extend_from_slice(&len.to_le_bytes());
                bytes.extend_from_slice(&self.rng.bytes(64));
                return anything("oversized length", Bytes::from(bytes));
            }
            7 => {
                let cut = self.rng.below(valid.len() as u64) as usize;
                return anything("truncated", valid.slice(..cut));
            }
            8 => {
                let mut bytes = valid.to_vec();
                bytes.push(self.rng.next_u64() as u8);
                bytes.extend_from_slice(&self.rng.bytes(16));
                return anything("trailing bytes", Bytes::from(bytes));
            }
            9 => {
                let mut bytes = valid.to_vec();
                if bytes.len() > HEADER_LEN {
                    for _ in 0..1 + self.rng.below(4) {
                        let at = HEADER_LEN + self.rng.below((bytes.len() - HEADER_LEN) as u64) as usize;
                        bytes[at] ^= 1 + self.rng.below(255) as u8;
                    }
                }
                return anything("corrupted payload", Bytes::from(bytes));
            }
            10 => {
                // The header's length disagrees with the payload that follows.
                let mut bytes = valid.to_vec();
                let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
                let wrong =
                    if self.rng.chance(500) { len.saturating_sub(1 + self.rng.below(8) as u32) } else { len + 1 };
                bytes[8..12].copy_from_slice(&wrong.to_le_bytes());
                return anything("wrong length", Bytes::from(bytes));
            }
            11 => How::ResetAfter { at: self.rng.below(valid.len() as u64) as usize },
            _ => How::StopReading { after: Duration::from_millis(self.rng.below(50)) },
        };
        let label = if matches!(how, How::ResetAfter { .. }) { "reset mid-request" } else { "stop reading" };
        Step { how, ..anything(label, valid) }
    }

    /// A well-formed frame to damage: status, a small send, a pull, an offset request or a commit.
    fn valid_frame(&mut self) -> Bytes {
        let (_, topic) = self.topic();
        let queue_id = self.queue();
        let request = match self.rng.below(5) {
            0 => Request::Status,
            1 => Request::Send(SendRequest { messages: vec![self.message(&topic, u64::MAX)] }),
            2 => Request::Pull(self.pull_request()),
            3 => Request::QueueOffsets(QueueOffsetsRequest { topic, queue_id }),
            _ => Request::CommitOffset(CommitOffsetRequest {
                consumer_group: self.group().0,
                topic,
                queue_id,
                offset: self.rng.below(1000),
                member: None,
            }),
        };
        raw::encode(&request)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn answer(label: &'static str, request: &Request) -> Step {
    waiting(label, request, 0)
}

/// A well-formed request the broker may hold up to `wait_ms`.
fn waiting(label: &'static str, request: &Request, wait_ms: u32) -> Step {
    Step {
        label,
        bytes: raw::encode(request),
        how: How::Whole,
        expect: Expect::Answer,
        timeout: Duration::from_millis(wait_ms.into()) + ANSWER_SLACK,
        sent: None,
    }
}

fn refusal(label: &'static str, request: &Request) -> Step {
    Step { expect: Expect::Refusal, ..answer(label, request) }
}

fn anything(label: &'static str, bytes: Bytes) -> Step {
    Step { label, bytes, how: How::Whole, expect: Expect::Anything, timeout: ANYTHING_TIMEOUT, sent: None }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use weir_protocol::decode_frame;

    use super::*;

    fn steps(seed: u64, count: usize) -> Vec<Step> {
        let mut lane = Lane::new(Rng::new(seed), Arc::new(Names::new("t", 2, 4)), "m".into());
        let ids = AtomicU64::new(0);
        (0..count).map(|_| lane.next_step(&ids)).collect()
    }

    #[test]
    fn well_formed_steps_decode_as_requests_and_sends_carry_their_ids() {
        for step in steps(7, 5000) {
            if step.expect == Expect::Anything {
                continue;
            }
            let frame = decode_frame(step.bytes.clone(), u32::MAX).expect("a whole frame");
            let request = Request::decode(frame).unwrap_or_else(|err| panic!("{}: {err}", step.label));
            if let (Some((_, ids)), Request::Send(send)) = (&step.sent, &request) {
                let bodies: Vec<_> = send.messages.iter().map(|m| body_id(&m.body)).collect();
                assert_eq!(bodies, ids.iter().map(|&id| Some(id)).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn the_mix_covers_every_kind_of_step() {
        let all = steps(11, 20_000);
        for expect in [Expect::Answer, Expect::Refusal, Expect::Anything] {
            assert!(all.iter().filter(|s| s.expect == expect).count() > 1000, "{expect:?}");
        }
        let labels: std::collections::BTreeSet<_> = all.iter().map(|s| s.label).collect();
        for label in ["send", "pull", "heartbeat", "garbage", "pull bad sql", "reset mid-request", "split send"] {
            assert!(labels.contains(label), "no {label} in {labels:?}");
        }
    }

    #[test]
    fn a_seed_replays_the_same_steps() {
        let (a, b) = (steps(3, 500), steps(3, 500));
        assert!(a.iter().zip(&b).all(|(a, b)| a.label == b.label && a.how == b.how));
        // Bodies differ only in their timestamps; the kinds and shapes are the same.
        assert!(a.iter().zip(&b).all(|(a, b)| a.bytes.len() == b.bytes.len()));
    }

    #[test]
    fn body_ids_round_trip() {
        assert_eq!(body_id(&body(0x1234, 10)), Some(0x1234));
        assert_eq!(body_id(&body(u64::MAX, 0)), Some(u64::MAX));
        assert_eq!(body_id(b"short"), None);
    }
}
