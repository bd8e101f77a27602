//! `weir bench connections`: what an open connection and a held long poll cost the broker.
//!
//! The broker's memory (`/proc/<pid>/status`) is read before anything, after opening
//! `--connections` idle connections, and after each of them holds a pull on an empty
//! queue; the differences divided by the count are the figures. Then one message arrives
//! and every held pull must be answered with it.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use weir_protocol::{FilterExpression, Message, PullRequest, PullStatus, Request, Response};

use super::memory::{self, Memory, mib};
use super::raw::{self, Dialer, Exchange};
use crate::cmd::BrokerAddr;

/// Arguments of `weir bench connections`.
#[derive(Debug, Args)]
pub struct ConnectionsArgs {
    /// Connections to open (the broker's `max_connections` must allow them).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,
    /// The broker's process id, whose memory is read.
    #[arg(long, value_name = "PID")]
    broker_pid: u32,
    /// Topic whose empty queue the pulls wait on (created with one queue if missing).
    #[arg(long, default_value = "held-pulls")]
    topic: String,
    /// Seconds to let the broker settle before each reading.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
    #[command(flatten)]
    pub threads: super::LoadThreads,
}

/// Handshakes in flight at once while opening the connections.
const HANDSHAKES_IN_FLIGHT: usize = 64;
/// How long a pull may be held: the broker's default `max_pull_wait_ms`, the longest it allows.
const HOLD_MS: u32 = 30_000;

/// Runs `weir bench connections`.
pub async fn run(args: ConnectionsArgs) -> anyhow::Result<ExitCode> {
    let n = args.connections as usize;
    let settle = Duration::from_secs(args.settle);
    let client = args.broker.connect().await?;
    super::produce::create_missing_topics(&client, std::slice::from_ref(&args.topic), 1).await?;
    let end = client.queue_offsets(&args.topic, 0).await?.end;
    let dialer = Arc::new(Dialer::new(args.broker.config()).await?);
    tokio::time::sleep(settle).await;
    let base = Memory::of(args.broker_pid)?;

    // Idle connections.
    let mut connections = Vec::with_capacity(n);
    let mut opening = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..n {
        if opening.len() >= HANDSHAKES_IN_FLIGHT
            && let Some(joined) = opening.join_next().await
        {
            connections.push(joined??);
        }
        let dialer = dialer.clone();
        opening.spawn(async move { dialer.connect().await });
    }
    while let Some(joined) = opening.join_next().await {
        connections.push(joined??);
    }
    let open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let idle = Memory::of(args.broker_pid)?;
    let broker_connections = client.status().await?.connections;

    // One held pull per connection.
    let written = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let mut pulls = tokio::task::JoinSet::new();
    let request = raw::encode(&Request::Pull(PullRequest {
        consumer_group: String::new(),
        topic: args.topic.clone(),
        queue_id: 0,
        offset: end,
        max_messages: 1,
        max_wait_ms: HOLD_MS,
        filter: FilterExpression::All,
        member: None,
    }));
    for conn in &connections {
        let (conn, request, written, answered) = (conn.clone(), request.clone(), written.clone(), answered.clone());
        pulls.spawn(async move {
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_chunk(request).await?;
            send.finish()?;
            written.fetch_add(1, Ordering::Relaxed);
            let exchange = raw::read_response(&mut recv).await;
            answered.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok(exchange)
        });
    }
    while written.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(settle).await;
    let held = Memory::of(args.broker_pid)?;
    let answered_early = answered.load(Ordering::Relaxed);

    // A message arrives: every held pull must be answered with it.
    let woken_at = Instant::now();
    let producer = weir_client::Producer::new(client.clone());
    producer.send(Message::new(args.topic.clone(), "wake up")).await.context("sending the wake-up message")?;
    producer.close().await;
    let mut woken = 0u64;
    while let Some(joined) = pulls.join_next().await {
        if let Exchange::Answered(Response::Pull(page)) = joined?? {
            woken += u64::from(page.status == PullStatus::Found && page.messages.len() == 1);
        }
    }
    let wake_ms = woken_at.elapsed().as_secs_f64() * 1000.0;

    for conn in &connections {
        conn.close(0u32.into(), b"done");
    }
    drop(connections);
    tokio::time::sleep(settle).await;
    let after = Memory::of(args.broker_pid).ok();
    let alive = memory::alive(args.broker_pid);
    client.close().await;

    let per = |from: u64, to: u64| to.saturating_sub(from) as f64 / n as f64 / 1024.0;
    let per_connection_kib = per(base.anon, idle.anon);
    let per_pull_kib = per(idle.anon, held.anon);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "connections": n, "broker_connections": broker_connections, "open_seconds": open_seconds,
                "anon_base_mib": mib(base.anon), "anon_idle_mib": mib(idle.anon), "anon_held_mib": mib(held.anon),
                "anon_after_mib": after.map(|m| mib(m.anon)),
                "rss_base_mib": mib(base.rss), "rss_idle_mib": mib(idle.rss), "rss_held_mib": mib(held.rss),
                "per_idle_connection_kib": per_connection_kib, "per_held_pull_kib": per_pull_kib,
                "per_idle_connection_rss_kib": per(base.rss, idle.rss), "per_held_pull_rss_kib": per(idle.rss, held.rss),
                "answered_early": answered_early, "woken": woken, "wake_all_ms": wake_ms, "broker_alive": alive,
            })
        );
    } else {
        println!("{n} connections opened in {open_seconds:.1} s; the broker counted {broker_connections}");
        println!(
            "  anonymous memory {:.1} MiB → {:.1} MiB idle → {:.1} MiB with a pull held on each",
            mib(base.anon),
            mib(idle.anon),
            mib(held.anon)
        );
        println!("  per idle connection {per_connection_kib:.1} KiB, per held pull {per_pull_kib:.1} KiB");
        println!("  one message woke {woken} of {n} held pulls in {wake_ms:.0} ms");
    }
    let ok = alive && woken == n as u64 && answered_early == 0 && broker_connections as usize > n;
    if !ok {
        eprintln!(
            "error: broker alive {alive}, {woken} of {n} pulls woken, {answered_early} answered before the message, \
             {broker_connections} connections counted"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
