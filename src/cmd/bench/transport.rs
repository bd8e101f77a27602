//! `weir bench transport`: the QUIC transport's own limit on this machine —
//! bulk transfer over one quinn connection on loopback with the broker's and
//! client's exact TLS and transport settings, no broker logic. Weir's produce
//! MB/s is quoted as a fraction of this.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use weir_broker::BrokerConfig;
use weir_client::{CaSource, ClientConfig};

/// Arguments of `weir bench transport`.
#[derive(Debug, Args)]
pub struct TransportArgs {
    /// Mebibytes to transfer in total.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
    /// Concurrent streams sharing the connection (like sends in flight).
    #[arg(long, default_value_t = 16)]
    streams: u64,
    /// Bytes per write (like one message).
    #[arg(long, default_value_t = 1 << 20)]
    chunk: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `weir bench transport`.
pub async fn run(args: TransportArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.streams > 0 && args.chunk > 0, "--streams and --chunk must be positive");
    let dir = tempfile::tempdir()?;
    let mut config = BrokerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse()?;
    let server = quinn::Endpoint::new(
        weir_broker::quic_endpoint_config(&config)?,
        Some(weir_broker::quic_server_config(&config)?),
        weir_broker::bind_udp(config.listen, config.udp_buffer_bytes)?,
        Arc::new(quinn::TokioRuntime),
    )?;
    let addr = server.local_addr()?;
    let sink = tokio::spawn(async move {
        let conn = server.accept().await.context("no connection")?.await?;
        let mut streams = tokio::task::JoinSet::new();
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            streams.spawn(async move {
                let mut total = 0u64;
                while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
                    total += chunk.bytes.len() as u64;
                }
                send.write_all(&total.to_le_bytes()).await?;
                send.finish()?;
                anyhow::Ok(())
            });
        }
        while let Some(joined) = streams.join_next().await {
            joined??;
        }
        anyhow::Ok(())
    });

    let mut client_config = ClientConfig::default();
    client_config.ca = CaSource::File(config.tls_paths().0);
    let client_socket = weir_client::bind_udp("127.0.0.1:0".parse()?, client_config.udp_buffer_bytes)?;
    let mut client = quinn::Endpoint::new(
        weir_client::quic_endpoint_config(&client_config)?,
        None,
        client_socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    client.set_default_client_config(weir_client::quic_client_config(&client_config)?);
    let conn = client.connect(addr, "localhost")?.await?;
    let total = args.mib << 20;
    let per_stream = total / args.streams;
    let chunk = bytes::Bytes::from(vec![0x5a; args.chunk]);
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..args.streams {
        let (conn, chunk) = (conn.clone(), chunk.clone());
        senders.spawn(async move {
            let (mut send, mut recv) = conn.open_bi().await?;
            let mut left = per_stream;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                send.write_chunk(chunk.slice(..n)).await?;
                left -= n as u64;
            }
            send.finish()?;
            let echoed = recv.read_to_end(8).await?;
            anyhow::ensure!(echoed == per_stream.to_le_bytes(), "the receiver counted a different length");
            anyhow::Ok(())
        });
    }
    while let Some(joined) = senders.join_next().await {
        joined??;
    }
    let seconds = started.elapsed().as_secs_f64();
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    let _ = sink.await;
    let bytes = per_stream * args.streams;
    let mb_per_sec = bytes as f64 / seconds / 1e6;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "bytes": bytes, "seconds": seconds, "mb_per_sec": mb_per_sec, "streams": args.streams })
        );
    } else {
        println!(
            "transferred {} MiB over {} stream(s) in {seconds:.2} s: {mb_per_sec:.1} MB/s",
            bytes >> 20,
            args.streams
        );
    }
    Ok(ExitCode::SUCCESS)
}
