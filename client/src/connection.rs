//! The QUIC connection to the broker: TLS setup, dialing, redialing, and one request per
//! bidirectional stream.
//!
//! A request opens a new bidirectional stream, writes its one frame, finishes its side
//! and reads the response to the end (protocol README §1). Streams are independent, so
//! any number of requests share the connection and a held long poll never delays a
//! send. When the connection has died, the next request dials a new one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::Mutex;
use weir_protocol::{ALPN, HEADER_LEN, Request, Response, decode_frame};

use crate::config::{CaSource, ClientConfig};
use crate::error::Error;

/// Silence after which a connection is considered dead: a broker that vanished without
/// closing it (killed, host gone) is noticed this long after its last packet, and the
/// next request redials. Keep-alives hold healthy idle connections open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A request already encoded as its frame, ready to be written on a stream.
#[derive(Debug, Clone)]
pub(crate) struct EncodedRequest {
    frame: Bytes,
}

impl EncodedRequest {
    /// Encodes `request`'s frame.
    pub(crate) fn new(request: &Request) -> Result<Self, Error> {
        let mut frame = BytesMut::new();
        request.encode(&mut frame)?;
        Ok(EncodedRequest { frame: frame.freeze() })
    }
}

/// The broker's address split into the host (also the TLS server name) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BrokerAddress {
    host: String,
    port: u16,
}

impl BrokerAddress {
    /// Parses `host:port`, `ip:port` or `[ipv6]:port`.
    fn parse(broker: &str) -> Result<Self, Error> {
        if let Ok(addr) = broker.parse::<SocketAddr>() {
            return Ok(BrokerAddress { host: addr.ip().to_string(), port: addr.port() });
        }
        let invalid = || Error::Config { reason: format!("broker address `{broker}` is not host:port") };
        let (host, port) = broker.rsplit_once(':').ok_or_else(invalid)?;
        let port = port.parse().map_err(|_| invalid())?;
        if host.is_empty() || host.contains(':') {
            return Err(invalid());
        }
        Ok(BrokerAddress { host: host.to_owned(), port })
    }
}

/// The client's one connection to the broker, redialed when it dies.
#[derive(Debug)]
pub(crate) struct Connection {
    endpoint: quinn::Endpoint,
    quic: quinn::ClientConfig,
    broker: String,
    address: BrokerAddress,
    connect_timeout: Duration,
    /// Largest response read, frame header included.
    max_response_len: usize,
    /// The live connection, if any; the lock is held while dialing so concurrent
    /// requests share one dial.
    current: Mutex<Option<quinn::Connection>>,
}

impl Connection {
    /// Sets up TLS and the local endpoint, and dials the broker once so configuration
    /// mistakes show up here rather than on the first request.
    pub(crate) async fn open(config: &ClientConfig) -> Result<Self, Error> {
        let address = BrokerAddress::parse(&config.broker)?;
        let quic = quic_config(config)?;
        let remote = resolve(&config.broker, &address, None).await?;
        let local: SocketAddr = if remote.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = bind(local, config.udp_buffer_bytes).map_err(Error::Socket)?;
        let endpoint = quinn::Endpoint::new(endpoint_config(config)?, None, socket, Arc::new(quinn::TokioRuntime))
            .map_err(Error::Socket)?;
        let connection = Connection {
            endpoint,
            quic,
            broker: config.broker.clone(),
            address,
            connect_timeout: config.connect_timeout,
            max_response_len: HEADER_LEN + config.max_frame_payload as usize,
            current: Mutex::new(None),
        };
        connection.live().await?;
        Ok(connection)
    }

    /// Sends `request` on a new stream and waits up to `timeout` for its response. An
    /// error frame becomes [`Error::Broker`].
    pub(crate) async fn request(&self, request: &EncodedRequest, timeout: Duration) -> Result<Response, Error> {
        let response = tokio::time::timeout(timeout, self.round_trip(request))
            .await
            .map_err(|_| Error::Timeout { after: timeout })??;
        match response {
            Response::Error(error) => Err(error.into()),
            response => Ok(response),
        }
    }

    async fn round_trip(&self, request: &EncodedRequest) -> Result<Response, Error> {
        let connection = self.live().await?;
        let (mut send, mut recv) = connection.open_bi().await.map_err(Error::Connection)?;
        send.write_chunk(request.frame.clone()).await.map_err(Error::from_write)?;
        send.finish()
            .map_err(|_| Error::Stream { reason: "request stream closed before it was finished".to_owned() })?;
        let bytes = read_to_end(&mut recv, self.max_response_len).await?;
        let payload_limit = (self.max_response_len - HEADER_LEN) as u32;
        let frame = decode_frame(bytes, payload_limit)?;
        Ok(Response::decode(frame)?)
    }

    /// The live connection, dialing a new one if there is none or it has closed.
    async fn live(&self) -> Result<quinn::Connection, Error> {
        let mut current = self.current.lock().await;
        if let Some(connection) = current.as_ref().filter(|connection| connection.close_reason().is_none()) {
            return Ok(connection.clone());
        }
        let connection = tokio::time::timeout(self.connect_timeout, self.dial())
            .await
            .map_err(|_| Error::Timeout { after: self.connect_timeout })??;
        *current = Some(connection.clone());
        Ok(connection)
    }

    async fn dial(&self) -> Result<quinn::Connection, Error> {
        let local = self.endpoint.local_addr().map_err(Error::Socket)?;
        let remote = resolve(&self.broker, &self.address, Some(local.is_ipv6())).await?;
        tracing::debug!(broker = %self.broker, %remote, "connecting");
        let connecting =
            self.endpoint.connect_with(self.quic.clone(), remote, &self.address.host).map_err(Error::Connect)?;
        connecting.await.map_err(Error::Connection)
    }

    /// Closes the connection and waits until the broker has been told.
    pub(crate) async fn close(&self) {
        if let Some(connection) = self.current.lock().await.take() {
            connection.close(0u32.into(), b"client closed");
        }
        self.endpoint.wait_idle().await;
    }
}

/// Reads a response stream to its end, at most `limit` bytes, into one buffer: the chunks
/// as quinn hands them over, then one copy into a buffer of the exact size (a single chunk
/// is used as it is). Unlike `RecvStream::read_to_end`, nothing is zero-filled first.
async fn read_to_end(recv: &mut quinn::RecvStream, limit: usize) -> Result<Bytes, Error> {
    let mut chunks = Vec::new();
    let mut len = 0;
    while let Some(chunk) = recv.read_chunk(limit, true).await.map_err(Error::from_read)? {
        len += chunk.bytes.len();
        if len > limit {
            return Err(Error::ResponseTooLarge { limit });
        }
        chunks.push(chunk.bytes);
    }
    if chunks.len() == 1 {
        return Ok(chunks.pop().expect("one chunk"));
    }
    let mut bytes = BytesMut::with_capacity(len);
    for chunk in chunks {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// Binds the client's UDP socket with `buffer_bytes` of send and receive buffer, or as
/// much as the kernel allows (`net.core.rmem_max`): a pull response arrives as a burst of
/// packets, and one dropped for lack of buffer costs a QUIC loss recovery.
pub fn bind(local: SocketAddr, buffer_bytes: usize) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(local)?;
    let sock = socket2::SockRef::from(&socket);
    sock.set_recv_buffer_size(buffer_bytes)?;
    sock.set_send_buffer_size(buffer_bytes)?;
    Ok(socket)
}

/// Resolves the broker's address; with `ipv6` set, to an address of that family.
async fn resolve(broker: &str, address: &BrokerAddress, ipv6: Option<bool>) -> Result<SocketAddr, Error> {
    let resolve_error = |source| Error::Resolve { broker: broker.to_owned(), source };
    let mut addresses = tokio::net::lookup_host((address.host.as_str(), address.port)).await.map_err(resolve_error)?;
    addresses.find(|addr| ipv6.is_none_or(|ipv6| addr.is_ipv6() == ipv6)).ok_or_else(|| {
        resolve_error(std::io::Error::new(std::io::ErrorKind::NotFound, "no address of the client socket's family"))
    })
}

/// `config.max_udp_payload`, refused outside what QUIC and GSO allow.
fn max_udp_payload(config: &ClientConfig) -> Result<u16, Error> {
    weir_protocol::checked_udp_payload(config.max_udp_payload)
        .map_err(|error| Error::Config { reason: error.to_string() })
}

/// The client endpoint's settings: the largest UDP payload it accepts.
pub fn endpoint_config(config: &ClientConfig) -> Result<quinn::EndpointConfig, Error> {
    let mut endpoint = quinn::EndpointConfig::default();
    endpoint
        .max_udp_payload_size(max_udp_payload(config)?)
        .map_err(|error| Error::Config { reason: format!("max_udp_payload: {error}") })?;
    Ok(endpoint)
}

/// QUIC client settings: TLS 1.3 trusting exactly the configured certificates, ALPN
/// `weir/1`, keep-alives, path MTU discovery up to `max_udp_payload`. Public so transport
/// benchmarks measure exactly these settings.
pub fn quic_config(config: &ClientConfig) -> Result<quinn::ClientConfig, Error> {
    let pem = match &config.ca {
        CaSource::File(path) => std::fs::read(path).map_err(|source| Error::CaFile { path: path.clone(), source })?,
        CaSource::Pem(pem) => pem.clone(),
    };
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|error| Error::Ca { reason: error.to_string() })?;
        roots.add(certificate).map_err(|error| Error::Ca { reason: error.to_string() })?;
    }
    if roots.is_empty() {
        return Err(Error::Ca { reason: "no certificate in the PEM".to_owned() });
    }
    // AES-128-GCM first, as the broker prefers: cheaper per byte than AES-256-GCM.
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let provider = Arc::new(provider);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| Error::Config { reason: error.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|error| Error::Config { reason: error.to_string() })?;
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(config.keep_alive_interval));
    let mut mtu_discovery = quinn::MtuDiscoveryConfig::default();
    mtu_discovery.upper_bound(max_udp_payload(config)?);
    transport.mtu_discovery_config(Some(mtu_discovery));
    transport.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("15 s is a valid QUIC idle timeout")));
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        let parse = |s: &str| BrokerAddress::parse(s).map(|a| (a.host, a.port)).ok();
        assert_eq!(parse("127.0.0.1:7420"), Some(("127.0.0.1".to_owned(), 7420)));
        assert_eq!(parse("[::1]:7420"), Some(("::1".to_owned(), 7420)));
        assert_eq!(parse("localhost:9"), Some(("localhost".to_owned(), 9)));
        assert_eq!(parse("localhost"), None);
        assert_eq!(parse(":7420"), None);
        assert_eq!(parse("host:port"), None);
        assert_eq!(parse("::1:7420"), None);
    }

    fn with_ca(ca: CaSource) -> ClientConfig {
        ClientConfig { ca, ..ClientConfig::default() }
    }

    #[test]
    fn ca_pem_without_certificates_is_refused() {
        let error = quic_config(&with_ca(CaSource::Pem(b"not a pem".to_vec()))).unwrap_err();
        assert!(matches!(error, Error::Ca { .. }), "{error:?}");
        let error = quic_config(&with_ca(CaSource::File("/nonexistent/ca.pem".into()))).unwrap_err();
        assert!(matches!(error, Error::CaFile { .. }), "{error:?}");
    }

    #[test]
    fn max_udp_payload_outside_what_quic_and_gso_allow_is_refused() {
        assert!(endpoint_config(&ClientConfig::default()).is_ok());
        for bad in [1199, 6501] {
            let config = ClientConfig { max_udp_payload: bad, ..ClientConfig::default() };
            let error = endpoint_config(&config).unwrap_err();
            assert!(error.to_string().contains("max_udp_payload"), "{error}");
        }
    }
}
