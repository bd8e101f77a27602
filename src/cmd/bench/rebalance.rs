//! `weir bench rebalance`: how long a consumer group takes to move queues, and how many
//! messages it delivers twice doing so, when a member joins, leaves gracefully, and is
//! killed (stops without committing or leaving, as after SIGKILL).
//!
//! An embedded broker (temporary directory, the given heartbeat settings) serves one
//! topic; a producer sends a steady stream to every queue while `--members` push
//! consumers, each on its own connection, consume it. For each event the figure is the
//! time from the event until every queue that moved has delivered a message through
//! its new owner (for a join: until the new member consumed its first message).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use parking_lot::Mutex;
use weir_broker::{Broker, BrokerConfig};
use weir_client::{
    Client, ClientConfig, ConsumeStatus, Message, Producer, PushConsumer, StartPosition, StoredMessage, TopicConfig,
    TopicPermissions,
};

/// Arguments of `weir bench rebalance`.
#[derive(Debug, Args)]
pub struct RebalanceArgs {
    /// Members before the join.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=64))]
    members: u32,
    /// Queues of the topic.
    #[arg(long, default_value_t = 8)]
    queues: u32,
    /// The broker's `heartbeat_interval_ms`.
    #[arg(long, default_value_t = 5_000)]
    heartbeat_interval_ms: u64,
    /// The broker's `member_timeout_ms`.
    #[arg(long, default_value_t = 15_000)]
    member_timeout_ms: u64,
    /// Messages per second the producer sends, over all queues.
    #[arg(long, default_value_t = 2_000)]
    rate: u32,
    /// How often members commit, in ms (what a crash replays is what was consumed since).
    #[arg(long, default_value_t = 5_000)]
    commit_interval_ms: u64,
    /// One JSON object per event.
    #[arg(long)]
    json: bool,
}

/// One delivery: message number, queue, member index, when.
type Delivery = (u64, u32, usize, Instant);

/// Runs `weir bench rebalance`.
pub async fn run(args: RebalanceArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("weir-rebalance-").tempdir()?;
    let mut config = BrokerConfig::new(dir.path().join("broker"));
    config.listen = "127.0.0.1:0".parse()?;
    config.heartbeat_interval_ms = args.heartbeat_interval_ms;
    config.member_timeout_ms = args.member_timeout_ms;
    let broker = Broker::start(config).await.context("starting the embedded broker")?;
    let client_config =
        ClientConfig::default().with_broker(broker.local_addr().to_string()).with_ca_file(broker.cert_path());
    let client = Client::connect(client_config.clone()).await?;
    let topic = TopicConfig {
        name: "rebalance".into(),
        read_queues: args.queues,
        write_queues: args.queues,
        permissions: TopicPermissions::READ_WRITE,
    };
    client.create_topic(topic).await?;

    let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let start_member = |index: usize| {
        let (deliveries, config) = (deliveries.clone(), client_config.clone());
        let commit_interval = Duration::from_millis(args.commit_interval_ms);
        async move {
            let listener = move |m: StoredMessage| {
                let deliveries = deliveries.clone();
                async move {
                    let seq = std::str::from_utf8(&m.body).ok().and_then(|b| b.parse().ok()).unwrap_or(u64::MAX);
                    deliveries.lock().push((seq, m.queue_id, index, Instant::now()));
                    ConsumeStatus::Success
                }
            };
            PushConsumer::builder(Client::connect(config).await?, "bench", "rebalance")
                .member_id(format!("member-{index}"))
                .start_position(StartPosition::CommittedOrEarliest)
                .commit_interval(commit_interval)
                .start(listener)
                .await
                .map_err(anyhow::Error::from)
        }
    };
    let mut members = Vec::new();
    for index in 0..args.members as usize {
        members.push(Some(start_member(index).await?));
    }
    let sending = tokio::spawn(produce(Producer::new(client.clone()), args.rate));
    let settle = Duration::from_millis(args.heartbeat_interval_ms.min(2_000));
    tokio::time::sleep(settle).await;
    let wait_limit = Duration::from_millis(args.member_timeout_ms * 2 + 10_000);

    // Join: the new member's first message.
    let joiner = args.members as usize;
    let (t0, before) = (Instant::now(), deliveries.lock().len());
    members.push(Some(start_member(joiner).await?));
    let joined = first_delivery(&deliveries, before, wait_limit, |d| d.2 == joiner).await;
    report(&args, "join", joined.map(|t| t.duration_since(t0)), &deliveries, before).await;

    // Graceful leave, then a kill, of the first members.
    for (event, index) in [("leave", 0usize), ("kill", 1)] {
        tokio::time::sleep(settle).await;
        let member = members[index].take().expect("member running");
        let moved = member.queue_ids();
        let (t0, before) = (Instant::now(), deliveries.lock().len());
        if event == "leave" {
            member.shutdown().await?;
        } else {
            drop(member);
        }
        let taken = takeover(&deliveries, before, &moved, index, wait_limit).await;
        report(&args, event, taken.map(|t| t.duration_since(t0)), &deliveries, before).await;
    }
    sending.abort();
    for member in members.into_iter().flatten() {
        member.shutdown().await?;
    }
    client.close().await;
    broker.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// Sends numbered messages at `rate` per second, in batches every 10 ms, until aborted.
async fn produce(producer: Producer, rate: u32) {
    let per_tick = (rate / 100).max(1) as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut next = 0u64;
    loop {
        tick.tick().await;
        let batch: Vec<Message> = (next..next + per_tick).map(|n| Message::new("rebalance", n.to_string())).collect();
        next += per_tick;
        if let Err(error) = producer.send_batch(batch).await {
            tracing::warn!(%error, "send failed");
        }
    }
}

/// When the first delivery after index `from` matching `pick` happened.
async fn first_delivery(
    deliveries: &Mutex<Vec<Delivery>>,
    from: usize,
    limit: Duration,
    pick: impl Fn(&Delivery) -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(d) = deliveries.lock()[from..].iter().find(|d| pick(d)) {
            return Some(d.3);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// When every queue in `moved` delivered a message through another member than `gone`.
async fn takeover(
    deliveries: &Mutex<Vec<Delivery>>,
    from: usize,
    moved: &[u32],
    gone: usize,
    limit: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let firsts: BTreeMap<u32, Instant> = deliveries.lock()[from..]
            .iter()
            .filter(|d| d.2 != gone && moved.contains(&d.1))
            .fold(BTreeMap::new(), |mut firsts, d| {
                firsts.entry(d.1).or_insert(d.3);
                firsts
            });
        if firsts.len() == moved.len() {
            return firsts.into_values().max();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Prints an event's figure and the messages delivered more than once since index
/// `from` (counted a second later, once the new owners caught up).
async fn report(
    args: &RebalanceArgs,
    event: &str,
    took: Option<Duration>,
    deliveries: &Mutex<Vec<Delivery>>,
    from: usize,
) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deliveries = deliveries.lock();
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for d in deliveries.iter() {
        *seen.entry(d.0).or_default() += 1;
    }
    let since: std::collections::BTreeSet<u64> = deliveries[from..].iter().map(|d| d.0).collect();
    let duplicates = since.iter().filter(|seq| seen[seq] > 1).count();
    let took_ms = took.map(|d| d.as_secs_f64() * 1000.0);
    if args.json {
        let line = serde_json::json!({
            "event": event, "takeover_ms": took_ms, "duplicates": duplicates,
            "heartbeat_interval_ms": args.heartbeat_interval_ms, "member_timeout_ms": args.member_timeout_ms,
        });
        println!("{line}");
    } else {
        let took = took_ms.map_or_else(|| "not within the limit".to_owned(), |ms| format!("{ms:.0} ms"));
        println!("{event:>5}: queues consumed again after {took}; {duplicates} message(s) delivered twice");
    }
}
