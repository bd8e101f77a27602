//! `weir consume`: print a topic's messages as a consumer group, committing
//! the group's offsets as it goes and when it stops (count reached, idle
//! timeout, or Ctrl-C).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::sync::mpsc;
use weir_client::{Client, PullConsumer};
use weir_protocol::{PullStatus, StoredMessage};

use crate::cmd::{BrokerAddr, SubscriptionArgs};
use crate::render::{message_json, message_line};

/// Where a group without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// The oldest retained message.
    Earliest,
    /// Only messages sent from now on.
    Latest,
}

/// Arguments of `weir consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to consume.
    #[arg(long)]
    topic: String,
    /// Consumer group (offsets are committed per group and queue).
    #[arg(long)]
    group: String,
    /// Start position when the group has no committed offset.
    #[arg(long, value_enum, default_value_t = From::Earliest)]
    from: From,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds without a message.
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<f64>,
    #[command(flatten)]
    subscription: SubscriptionArgs,
    /// Print one JSON object per message.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// A pulled message and the queue offset to commit once it is printed.
type Delivery = (StoredMessage, u64);

/// Pulls one queue forever, feeding `out`.
async fn pull_queue(
    consumer: PullConsumer,
    topic: String,
    queue_id: u32,
    mut offset: u64,
    out: mpsc::Sender<Delivery>,
) {
    loop {
        match consumer.pull(&topic, queue_id, offset, 64, Duration::from_secs(5)).await {
            Ok(page) => {
                if matches!(page.status, PullStatus::OffsetIllegal | PullStatus::OffsetMoved) {
                    tracing::warn!(queue_id, offset, next = page.next_offset, "offset out of range; moving on");
                }
                for m in page.messages {
                    let next = m.queue_offset + 1;
                    if out.send((m, next)).await.is_err() {
                        return;
                    }
                }
                offset = page.next_offset;
            }
            Err(err) => {
                tracing::warn!(queue_id, %err, "pull failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn start_offset(client: &Client, args: &ConsumeArgs, queue_id: u32) -> anyhow::Result<u64> {
    if let Some(committed) = client.fetch_offset(&args.group, &args.topic, queue_id).await? {
        return Ok(committed);
    }
    let range = client.queue_offsets(&args.topic, queue_id).await?;
    Ok(match args.from {
        From::Earliest => range.start,
        From::Latest => range.end,
    })
}

/// Runs `weir consume`.
pub async fn run(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let topic = client.topic(&args.topic).await?;
    let mut consumer = PullConsumer::new(client.clone(), args.group.clone());
    consumer.subscribe(&args.topic, &args.subscription.subscription()).await?;
    let (tx, mut rx) = mpsc::channel::<Delivery>(1024);
    let mut pullers = tokio::task::JoinSet::new();
    for queue_id in 0..topic.read_queues {
        let consumer = consumer.clone();
        let offset = start_offset(&client, &args, queue_id).await?;
        pullers.spawn(pull_queue(consumer, args.topic.clone(), queue_id, offset, tx.clone()));
    }
    drop(tx);

    let idle = args.idle_exit.map(Duration::from_secs_f64);
    let mut consumed = 0u64;
    let mut to_commit: BTreeMap<u32, u64> = BTreeMap::new();
    let mut committed: BTreeMap<u32, u64> = BTreeMap::new();
    let mut commit_tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_message = tokio::time::Instant::now();
    let stop_reason = loop {
        if args.count.is_some_and(|n| consumed >= n) {
            break "count reached";
        }
        let idle_sleep = async {
            match idle {
                Some(d) => tokio::time::sleep_until(last_message + d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            delivery = rx.recv() => {
                let Some((m, next)) = delivery else { break "pullers stopped" };
                let line = if args.json { message_json(&m).to_string() } else { message_line(&m) };
                // A closed pipe (`| head`) ends the run; the message was not shown, so it is not committed.
                if writeln!(std::io::stdout(), "{line}").is_err() {
                    break "output closed";
                }
                to_commit.insert(m.queue_id, next);
                consumed += 1;
                last_message = tokio::time::Instant::now();
            }
            _ = commit_tick.tick() => commit(&client, &args, &to_commit, &mut committed).await,
            _ = idle_sleep => break "idle",
            _ = tokio::signal::ctrl_c() => break "interrupted",
        }
    };
    pullers.shutdown().await;
    commit(&client, &args, &to_commit, &mut committed).await;
    eprintln!(
        "consumed {consumed} message(s) from {} as group {} ({stop_reason}); offsets committed",
        args.topic, args.group
    );
    client.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Commits every queue whose offset moved since the last commit.
async fn commit(
    client: &Client,
    args: &ConsumeArgs,
    to_commit: &BTreeMap<u32, u64>,
    committed: &mut BTreeMap<u32, u64>,
) {
    for (&queue_id, &offset) in to_commit {
        if committed.get(&queue_id) == Some(&offset) {
            continue;
        }
        match client.commit_offset(&args.group, &args.topic, queue_id, offset).await {
            Ok(()) => {
                committed.insert(queue_id, offset);
            }
            Err(err) => tracing::warn!(queue_id, %err, "offset commit failed"),
        }
    }
}
