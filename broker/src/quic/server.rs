//! The QUIC driver: accepts connections, runs one task per request stream,
//! and shuts down gracefully.
//!
//! Each bidirectional stream carries one request frame and one response frame
//! (see `protocol/README.md`). A malformed or oversized frame gets an error
//! frame and a `STOP_SENDING` on that stream only; a panic in a handler kills
//! only its stream's task.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;
use weir_protocol::{ErrorResponse, FrameDecoder, Request, Response};

use super::handler::{self, Reply};
use crate::core::Core;

/// Binds the endpoint's UDP socket with `buffer_bytes` of send and receive buffer (or
/// as much as the kernel allows; less is logged, since it costs throughput).
pub fn bind(addr: SocketAddr, buffer_bytes: usize) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let sock = socket2::SockRef::from(&socket);
    sock.set_recv_buffer_size(buffer_bytes)?;
    sock.set_send_buffer_size(buffer_bytes)?;
    let granted = sock.recv_buffer_size()?.min(sock.send_buffer_size()?);
    if granted < buffer_bytes {
        tracing::info!(
            requested = buffer_bytes,
            granted,
            "UDP socket buffers capped by the kernel; raise net.core.rmem_max and net.core.wmem_max"
        );
    }
    Ok(socket)
}

/// What the tasks of one endpoint share.
#[derive(Debug)]
struct Door {
    core: Arc<Core>,
    /// One permit per connection, taken before its handshake and held until it
    /// closes: at most `max_connections` are ever open or opening.
    permits: Arc<tokio::sync::Semaphore>,
    max_connections: usize,
    /// Largest request payload accepted.
    max_payload: u32,
}

impl Door {
    /// Connections open or in their handshake.
    fn open_connections(&self) -> u32 {
        u32::try_from(self.max_connections - self.permits.available_permits()).unwrap_or(u32::MAX)
    }
}

/// Accepts connections until `shutdown` flips, then waits for every connection to finish.
pub async fn serve(endpoint: quinn::Endpoint, core: Arc<Core>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let max_connections = core.config().max_connections;
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let ctx = Arc::new(Door { max_payload: frame_limit(&core), core, permits, max_connections });
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let Ok(permit) = ctx.permits.clone().try_acquire_owned() else {
                    tracing::warn!(peer = %incoming.remote_address(), "connection limit reached; refusing");
                    incoming.refuse();
                    continue;
                };
                connections.spawn(connection(incoming, ctx.clone(), shutdown.clone(), permit));
            }
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Stop accepting; let open connections finish their in-flight requests.
    endpoint.set_server_config(None);
    while connections.join_next().await.is_some() {}
    endpoint.close(0u32.into(), b"broker shutting down");
    endpoint.wait_idle().await;
}

/// Serves one connection; its `permit` is returned when it closes.
async fn connection(
    incoming: quinn::Incoming,
    ctx: Arc<Door>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let peer = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(err) => {
            tracing::debug!(%peer, %err, "handshake failed");
            return;
        }
    };
    tracing::debug!(%peer, "connection open");
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    streams.spawn(request_stream(ctx.clone(), send, recv, peer));
                }
                Err(err) => {
                    tracing::debug!(%peer, %err, "connection closed");
                    break;
                }
            },
            _ = shutdown.changed() => break,
            Some(joined) = streams.join_next(), if !streams.is_empty() => {
                if let Err(err) = joined && err.is_panic() {
                    tracing::error!(%peer, "a request handler panicked; its stream was reset");
                }
            }
        }
    }
    // Finish what is in flight (held pulls return at once on shutdown), then close.
    while streams.join_next().await.is_some() {}
    conn.close(0u32.into(), b"bye");
}

/// Reads the stream's one request frame; a bad frame becomes the error to answer with.
async fn read_request(recv: &mut quinn::RecvStream, max_payload: u32) -> Result<Request, ErrorResponse> {
    let mut decoder = FrameDecoder::with_max_payload_len(max_payload);
    loop {
        match recv.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => decoder.feed(&chunk.bytes).map_err(ErrorResponse::from)?,
            Ok(None) => break,
            Err(err) => {
                return Err(ErrorResponse::new(weir_protocol::ErrorCode::BadRequest, format!("stream failed: {err}")));
            }
        }
    }
    Request::decode(decoder.into_frame()?).map_err(ErrorResponse::from)
}

async fn request_stream(ctx: Arc<Door>, mut send: quinn::SendStream, mut recv: quinn::RecvStream, peer: SocketAddr) {
    let reply = match read_request(&mut recv, ctx.max_payload).await {
        Ok(request) => handler::handle(&ctx.core, request, peer, ctx.open_connections()).await,
        Err(err) => {
            tracing::debug!(%peer, code = %err.code, message = %err.message, "bad request frame");
            let _ = recv.stop(u32::from(err.code.to_u16()).into());
            Reply::Response(Response::Error(err))
        }
    };
    let frame = match reply {
        Reply::Frame(frame) => frame,
        Reply::Response(response) => encode(&response, peer),
    };
    // Handed over, not copied: quinn keeps the buffer until the client acknowledges it.
    if send.write_chunk(frame).await.is_ok() {
        let _ = send.finish();
    }
}

/// `response`'s frame, or an `INTERNAL` error frame when it cannot be encoded.
fn encode(response: &Response, peer: SocketAddr) -> Bytes {
    let mut buf = BytesMut::new();
    if let Err(err) = response.encode(&mut buf) {
        tracing::error!(%peer, %err, "response cannot be encoded");
        buf.clear();
        let fallback =
            Response::Error(ErrorResponse::new(weir_protocol::ErrorCode::Internal, "response too large to encode"));
        fallback.encode(&mut buf).expect("a short error response always encodes");
    }
    buf.freeze()
}

/// Largest request payload: a batch of messages at the size limit plus headers, or a
/// plugin module at its size limit.
fn frame_limit(core: &Core) -> u32 {
    let config = core.config();
    let limit = config
        .max_message_size
        .saturating_add(1 << 20)
        .max(config.plugin_max_module_bytes.saturating_add(64 << 10))
        .max(weir_protocol::DEFAULT_MAX_PAYLOAD_LEN as usize);
    u32::try_from(limit).unwrap_or(u32::MAX)
}
