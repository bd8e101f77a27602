//! `weir topic`: create, update, delete and list topics.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use weir_protocol::{TopicConfig, TopicPermissions};

use crate::cmd::BrokerAddr;

/// Topic administration.
#[derive(Debug, Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
    #[command(flatten)]
    broker: BrokerAddr,
    /// Print one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create(QueueCounts),
    /// Change a topic's queue counts.
    Update(QueueCounts),
    /// Delete a topic (its stored messages age out with retention).
    Delete {
        /// Topic name.
        name: String,
    },
    /// List topics.
    List {
        /// Include system topics (%RETRY%, %DLQ%, ...).
        #[arg(long)]
        system: bool,
    },
}

/// A topic name and its queue counts.
#[derive(Debug, Args)]
struct QueueCounts {
    /// Topic name.
    name: String,
    /// Read and write queues [default: 4].
    #[arg(long, conflicts_with_all = ["read_queues", "write_queues"])]
    queues: Option<u32>,
    /// Read queues (with --write-queues).
    #[arg(long, requires = "write_queues")]
    read_queues: Option<u32>,
    /// Write queues (with --read-queues).
    #[arg(long, requires = "read_queues")]
    write_queues: Option<u32>,
}

impl QueueCounts {
    fn config(&self) -> TopicConfig {
        let queues = self.queues.unwrap_or(4);
        TopicConfig {
            name: self.name.clone(),
            read_queues: self.read_queues.unwrap_or(queues),
            write_queues: self.write_queues.unwrap_or(queues),
            permissions: TopicPermissions::READ_WRITE,
        }
    }
}

fn topic_json(t: &TopicConfig) -> serde_json::Value {
    serde_json::json!({
        "name": t.name, "read_queues": t.read_queues, "write_queues": t.write_queues,
        "readable": t.permissions.readable, "writable": t.permissions.writable,
    })
}

/// Runs a topic command.
pub async fn run(args: TopicArgs) -> anyhow::Result<ExitCode> {
    let client = args.broker.connect().await?;
    let show = |verb: &str, t: &TopicConfig| {
        if args.json {
            println!("{}", topic_json(t));
        } else {
            println!("{verb} topic {} ({} read / {} write queues)", t.name, t.read_queues, t.write_queues);
        }
    };
    match &args.command {
        TopicCommand::Create(counts) => show("created", &client.create_topic(counts.config()).await?),
        TopicCommand::Update(counts) => show("updated", &client.update_topic(counts.config()).await?),
        TopicCommand::Delete { name } => {
            client.delete_topic(name).await?;
            if args.json {
                println!("{}", serde_json::json!({ "deleted": name }));
            } else {
                println!("deleted topic {name}");
            }
        }
        TopicCommand::List { system } => {
            let topics = client.list_topics(*system).await?;
            for t in &topics {
                if args.json {
                    println!("{}", topic_json(t));
                } else {
                    println!("{:<40} {:>5} read {:>5} write", t.name, t.read_queues, t.write_queues);
                }
            }
            if !args.json {
                println!("{} topic(s)", topics.len());
            }
        }
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}
