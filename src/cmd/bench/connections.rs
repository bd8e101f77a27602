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
    /// Most seconds to wait for the broker's memory to settle before each reading (it has
    /// settled when four readings 250 ms apart lie within 256 KiB of each other).
    #[arg(long, default_value_t = 10)]
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

/// Process `pid`'s memory once it has settled (the allocator returns freed pages to the
/// system a while after the frees), or after `limit`.
async fn settled(pid: u32, limit: Duration) -> anyhow::Result<Memory> {
    const SPREAD: u64 = 256 << 10;
    let started = Instant::now();
    let mut recent = std::collections::VecDeque::new();
    loop {
        let memory = Memory::of(pid)?;
        recent.push_back(memory.anon);
        if recent.len() > 4 {
            recent.pop_front();
        }
        let spread = recent.iter().max().zip(recent.iter().min()).map_or(u64::MAX, |(max, min)| max - min);
        if (recent.len() == 4 && spread <= SPREAD) || started.elapsed() >= limit {
            return Ok(memory);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs `weir bench connections`.
pub async fn run(args: ConnectionsArgs) -> anyhow::Result<ExitCode> {
    let n = args.connections as usize;
    let settle = Duration::from_secs(args.settle);
    let client = args.broker.connect().await?;
    super::produce::create_missing_topics(&client, std::slice::from_ref(&args.topic), 1).await?;
    let end = client.queue_offsets(&args.topic, 0).await?.end;
    let dialer = Arc::new(Dialer::new(args.broker.config()).await?);
    let base = settled(args.broker_pid, settle).await?;

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
    let idle = settled(args.broker_pid, settle).await?;
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
    let held = settled(args.broker_pid, settle).await?;
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
    let after = settled(args.broker_pid, settle).await.ok();
    let alive = memory::alive(args.broker_pid);
    client.close().await;

    let per = |from: u64, to: u64| (to as f64 - from as f64) / n as f64 / 1024.0;
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
