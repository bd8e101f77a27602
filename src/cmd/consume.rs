//! `weir consume`: join a consumer group and print the messages of the queues the
//! broker assigns this member, committing the group's offsets as it goes and when it
//! stops (count reached, idle timeout, or Ctrl-C), then leaving the group so its
//! queues move to the other members at once.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio::sync::{mpsc, oneshot};
use weir_client::{ConsumeStatus, PushConsumer, StartPosition, StoredMessage};

use crate::cmd::time::parse_time;
use crate::cmd::{BrokerAddr, SubscriptionArgs};
use crate::render::{message_json, message_line};

/// Arguments of `weir consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to consume.
    #[arg(long)]
    topic: String,
    /// Consumer group: its members split the topic's queues (offsets are committed per
    /// group and queue).
    #[arg(long)]
    group: String,
    /// Where to start a queue the group has no committed offset for: `earliest`,
    /// `latest` (the default), or a time (Unix ms or RFC 3339, e.g. 2026-12-02T10:00:00Z).
    #[arg(long, default_value = "latest", value_parser = parse_from)]
    from: StartPosition,
    /// Every member of the group receives every message (offsets kept per member).
    #[arg(long)]
    broadcast: bool,
    /// Consume each queue in order, one message at a time, under the broker's queue lock.
    #[arg(long)]
    orderly: bool,
    /// This member's id (default `<host>@<pid>-1`); a broadcasting member restarted with
    /// the same id resumes its own offsets.
    #[arg(long, value_name = "ID")]
    member_id: Option<String>,
    /// Set the group's assignment strategy: average, round-robin, consistent-hash, sticky.
    #[arg(long, value_name = "S")]
    strategy: Option<String>,
    /// Replace the group's subscription with this one even while other members hold a
    /// different one (they follow it); without it such a member is refused.
    #[arg(long)]
    replace_subscription: bool,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds without a message.
    #[arg(long, value_name = "SECS")]
    idle_exit: Option<f64>,
    #[command(flatten)]
    subscription: SubscriptionArgs,
    /// Print one JSON object per message (with this member's `member_id`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// `earliest`, `latest` or a time.
fn parse_from(text: &str) -> Result<StartPosition, String> {
    match text {
        "earliest" => Ok(StartPosition::CommittedOrEarliest),
        "latest" => Ok(StartPosition::CommittedOrLatest),
        time => parse_time(time).map(StartPosition::Timestamp),
    }
}

/// A delivered message, and where to say whether it was printed.
type Delivery = (StoredMessage, oneshot::Sender<ConsumeStatus>);

/// Runs `weir consume`.
pub async fn run(args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let (tx, mut rx) = mpsc::channel::<Delivery>(1024);
    let mut builder = PushConsumer::builder(client.clone(), args.group.clone(), args.topic.clone())
        .subscription(args.subscription.subscription())
        .start_position(args.from)
        .broadcasting(args.broadcast)
        .orderly(args.orderly)
        .replace_subscription(args.replace_subscription)
        .commit_interval(Duration::from_secs(1))
        .concurrency(64);
    if let Some(member_id) = &args.member_id {
        builder = builder.member_id(member_id.clone());
    }
    if let Some(strategy) = &args.strategy {
        builder = builder.strategy(strategy.clone());
    }
    // The listener waits until the message is printed: one that was not is not committed.
    let consumer = builder
        .start(move |message: StoredMessage| {
            let tx = tx.clone();
            async move {
                let (printed, answer) = oneshot::channel();
                if tx.send((message, printed)).await.is_err() {
                    return ConsumeStatus::Failure;
                }
                answer.await.unwrap_or(ConsumeStatus::Failure)
            }
        })
        .await?;
    let member_id = consumer.member_id().to_owned();
    eprintln!("joined group {} as {member_id}; consuming queues {:?}", args.group, consumer.queue_ids());

    let idle = args.idle_exit.map(Duration::from_secs_f64);
    let mut consumed = 0u64;
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
                let Some((m, printed)) = delivery else { break "consumer stopped" };
                let line = if args.json {
                    let mut json = message_json(&m);
                    json["member_id"] = member_id.as_str().into();
                    json.to_string()
                } else {
                    message_line(&m)
                };
                // A closed pipe (`| head`) ends the run; the message was not shown, so it is not committed.
                if writeln!(std::io::stdout(), "{line}").is_err() {
                    break "output closed";
                }
                let _ = printed.send(ConsumeStatus::Success);
                consumed += 1;
                last_message = tokio::time::Instant::now();
            }
            _ = idle_sleep => break "idle",
            _ = tokio::signal::ctrl_c() => break "interrupted",
        }
    };
    // Messages delivered but not printed fail: their offsets stay uncommitted.
    drop(rx);
    consumer.shutdown().await?;
    eprintln!(
        "consumed {consumed} message(s) from {} as {member_id} of group {} ({stop_reason}); offsets committed, left the group",
        args.topic, args.group
    );
    client.close().await;
    Ok(ExitCode::SUCCESS)
}
