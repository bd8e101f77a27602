//! Raw QUIC connections to a broker, below the client library: many connections on
//! one endpoint, connections whose socket can be cut (a client that vanishes without a
//! word, as after a crash or a network partition), and single stream exchanges of any
//! bytes, well-formed or not. `weir bench soak` and `weir bench connections` use them.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime as _, UdpPoller};
use weir_client::ClientConfig;
use weir_protocol::{HEADER_LEN, Request, Response, decode_frame};

/// Largest response read: a full pull page.
const MAX_RESPONSE: usize = HEADER_LEN + weir_protocol::DEFAULT_MAX_PAYLOAD_LEN as usize;

/// Dials QUIC connections to one broker with the client library's TLS and transport settings.
#[derive(Debug)]
pub struct Dialer {
    config: ClientConfig,
    quic: quinn::ClientConfig,
    remote: SocketAddr,
    server_name: String,
    /// The endpoint [`connect`](Self::connect) shares between its connections.
    shared: quinn::Endpoint,
}

impl Dialer {
    /// A dialer for the broker `config` names, trusting its CA.
    pub async fn new(config: ClientConfig) -> anyhow::Result<Self> {
        let quic = weir_client::quic_client_config(&config)?;
        let remote = tokio::net::lookup_host(config.broker.as_str())
            .await
            .with_context(|| format!("resolving {}", config.broker))?
            .next()
            .with_context(|| format!("{} has no address", config.broker))?;
        let server_name = match config.broker.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            None => config.broker.clone(),
        };
        let shared = endpoint(&config, remote, None)?;
        Ok(Dialer { config, quic, remote, server_name, shared })
    }

    /// A connection on the shared endpoint.
    pub async fn connect(&self) -> anyhow::Result<quinn::Connection> {
        dial(&self.shared, self.quic.clone(), self.remote, &self.server_name).await
    }

    /// A connection on an endpoint of its own whose socket [`Cut`] can silence.
    pub async fn connect_cuttable(&self) -> anyhow::Result<(quinn::Connection, Cut)> {
        let cut = Cut::default();
        let endpoint = endpoint(&self.config, self.remote, Some(cut.clone()))?;
        let connection = dial(&endpoint, self.quic.clone(), self.remote, &self.server_name).await?;
        Ok((connection, cut))
    }
}

async fn dial(
    endpoint: &quinn::Endpoint,
    quic: quinn::ClientConfig,
    remote: SocketAddr,
    server_name: &str,
) -> anyhow::Result<quinn::Connection> {
    let connecting = endpoint.connect_with(quic, remote, server_name)?;
    Ok(tokio::time::timeout(Duration::from_secs(10), connecting).await.context("handshake timed out")??)
}

/// A client endpoint of the address family of `remote`; its socket drops everything it
/// sends once `cut` is set.
fn endpoint(config: &ClientConfig, remote: SocketAddr, cut: Option<Cut>) -> anyhow::Result<quinn::Endpoint> {
    let local: SocketAddr = if remote.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    // A connection of its own needs a modest buffer; the shared endpoint carries them all.
    let buffer = if cut.is_some() { config.udp_buffer_bytes.min(256 << 10) } else { config.udp_buffer_bytes };
    let socket = weir_client::bind_udp(local, buffer)?;
    let runtime = Arc::new(quinn::TokioRuntime);
    let socket = runtime.wrap_udp_socket(socket)?;
    let socket: Arc<dyn AsyncUdpSocket> = match cut {
        Some(cut) => Arc::new(CuttableSocket { inner: socket, cut }),
        None => socket,
    };
    Ok(quinn::Endpoint::new_with_abstract_socket(weir_client::quic_endpoint_config(config)?, None, socket, runtime)?)
}

/// Silences a [`Dialer::connect_cuttable`] connection: from then on its datagrams are
/// dropped, so the broker hears nothing more from it (no `CONNECTION_CLOSE`) and must
/// notice by its idle timeout, as with a client that crashed.
#[derive(Debug, Clone, Default)]
pub struct Cut(Arc<AtomicBool>);

impl Cut {
    /// Drops everything sent from now on.
    pub fn cut(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A UDP socket that pretends to send once cut.
#[derive(Debug)]
struct CuttableSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    cut: Cut,
}

impl AsyncUdpSocket for CuttableSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> std::io::Result<()> {
        if self.cut.0.load(Ordering::Relaxed) { Ok(()) } else { self.inner.try_send(transmit) }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<std::io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// How one stream exchange ended.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "one per exchange, moved once: a box would only add an allocation")]
pub enum Exchange {
    /// A whole response frame came back.
    Answered(Response),
    /// The stream ended without a response frame that decodes.
    Undecodable(String),
    /// The broker reset the response stream.
    Reset(u64),
    /// The connection closed.
    ConnectionLost(quinn::ConnectionError),
    /// No answer within the time allowed; the stream was abandoned.
    TimedOut,
}

/// The frame of `request`.
pub fn encode(request: &Request) -> Bytes {
    let mut frame = BytesMut::new();
    request.encode(&mut frame).expect("a request the load generator builds encodes");
    frame.freeze()
}

/// Sends `request` on a new stream and reads the answer, waiting at most `timeout`.
pub async fn call(conn: &quinn::Connection, request: &Request, timeout: Duration) -> Exchange {
    exchange(conn, encode(request), timeout).await
}

/// Writes `bytes` on a new stream, finishes it and reads the answer, waiting at most
/// `timeout`. The broker may stop reading early (a bad header); it answers anyway.
pub async fn exchange(conn: &quinn::Connection, bytes: Bytes, timeout: Duration) -> Exchange {
    let round_trip = async {
        let (mut send, mut recv) = match conn.open_bi().await {
            Ok(stream) => stream,
            Err(err) => return Exchange::ConnectionLost(err),
        };
        if !bytes.is_empty() {
            let _ = send.write_chunk(bytes).await;
        }
        let _ = send.finish();
        read_response(&mut recv).await
    };
    tokio::time::timeout(timeout, round_trip).await.unwrap_or(Exchange::TimedOut)
}

/// Reads a response stream to its end and decodes its frame.
pub async fn read_response(recv: &mut quinn::RecvStream) -> Exchange {
    match recv.read_to_end(MAX_RESPONSE).await {
        Ok(data) => match decode_frame(data.into(), MAX_RESPONSE as u32).map(Response::decode) {
            Ok(Ok(response)) => Exchange::Answered(response),
            Ok(Err(err)) => Exchange::Undecodable(err.to_string()),
            Err(err) => Exchange::Undecodable(err.to_string()),
        },
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => Exchange::Reset(code.into_inner()),
        Err(quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(err))) => Exchange::ConnectionLost(err),
        Err(err) => Exchange::Undecodable(err.to_string()),
    }
}
