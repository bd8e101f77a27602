//! TLS for the QUIC endpoint: configured certificates, or a self-signed one
//! generated on first start (SANs `localhost`, `127.0.0.1`, `::1`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// Loads the certificate and key, generating a self-signed pair when both default paths are missing.
pub fn load_or_generate(
    config: &BrokerConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), BrokerError> {
    let (cert, key) = config.tls_paths();
    if config.tls_cert.is_none() && !cert.exists() && !key.exists() {
        generate(&cert, &key)?;
    }
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|err| BrokerError::Tls(format!("{}: {err}", cert.display())))?;
    if certs.is_empty() {
        return Err(BrokerError::Tls(format!("{}: no certificate", cert.display())));
    }
    let key =
        PrivateKeyDer::from_pem_file(&key).map_err(|err| BrokerError::Tls(format!("{}: {err}", key.display())))?;
    Ok((certs, key))
}

fn generate(cert: &Path, key: &Path) -> Result<(), BrokerError> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let generated = rcgen::generate_simple_self_signed(names).map_err(|err| BrokerError::Tls(err.to_string()))?;
    let io = |what: &str, path: &Path| {
        let what = format!("{what} {}", path.display());
        move |source| BrokerError::Io { what, source }
    };
    let dir = cert.parent().expect("certificate path has a directory");
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    std::fs::write(cert, generated.cert.pem()).map_err(io("writing", cert))?;
    write_private(key, generated.signing_key.serialize_pem().as_bytes()).map_err(io("writing", key))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate");
    Ok(())
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The QUIC endpoint's identity across restarts: the key that signs stateless resets
/// and the key of its connection ids, both derived from a secret kept in
/// `<data_dir>/tls/reset.key`. A broker restarted after a crash then recognises its
/// clients' old connection ids and resets those connections at once, instead of
/// leaving the clients to find out through their idle timeout. Also the largest UDP
/// payload it accepts (`max_udp_payload`).
pub fn endpoint_config(config: &BrokerConfig) -> Result<quinn::EndpointConfig, BrokerError> {
    let secret = endpoint_secret(config)?;
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let derived = ring::hmac::sign(&reset_key, b"weir connection ids");
    let cid_key = u64::from_le_bytes(derived.as_ref()[..8].try_into().expect("HMAC-SHA256 gives 32 bytes"));
    let mut endpoint = quinn::EndpointConfig::new(Arc::new(reset_key));
    endpoint
        .max_udp_payload_size(config.checked_max_udp_payload()?)
        .map_err(|err| BrokerError::Config(format!("max_udp_payload: {err}")))?;
    endpoint.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    Ok(endpoint)
}

fn endpoint_secret(config: &BrokerConfig) -> Result<Vec<u8>, BrokerError> {
    let path = config.data_dir.join("tls").join("reset.key");
    let secret = match std::fs::read(&path) {
        Ok(secret) if secret.len() >= 32 => secret,
        Ok(_) => return Err(BrokerError::Tls(format!("{}: shorter than 32 bytes", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 64];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                .map_err(|_| BrokerError::Tls("no randomness for the reset key".into()))?;
            let io = |source| BrokerError::Io { what: format!("writing {}", path.display()), source };
            std::fs::create_dir_all(path.parent().expect("tls directory")).map_err(io)?;
            write_private(&path, &secret).map_err(io)?;
            secret
        }
        Err(source) => return Err(BrokerError::Io { what: format!("reading {}", path.display()), source }),
    };
    Ok(secret)
}

/// ring with AES-128-GCM preferred: the suite every QUIC stack supports, and with AES-NI
/// about a third cheaper per byte than rustls' default first choice, AES-256-GCM.
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
}

/// The QUIC server configuration: TLS 1.3 with ALPN `weir/1`, stream credit and idle timeout.
pub fn server_config(config: &BrokerConfig) -> Result<quinn::ServerConfig, BrokerError> {
    let (certs, key) = load_or_generate(config)?;
    let provider = Arc::new(crypto_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|err| BrokerError::Tls(err.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| BrokerError::Tls(err.to_string()))?;
    tls.alpn_protocols = vec![weir_protocol::ALPN.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|err| BrokerError::Tls(err.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(config.max_streams_per_connection.into())
        .max_concurrent_uni_streams(0u32.into())
        .max_idle_timeout(Some(
            Duration::from_millis(config.idle_timeout_ms)
                .try_into()
                .map_err(|_| BrokerError::Config("idle_timeout_ms is too large".into()))?,
        ));
    let mut mtu_discovery = quinn::MtuDiscoveryConfig::default();
    mtu_discovery.upper_bound(config.checked_max_udp_payload()?);
    transport.mtu_discovery_config(Some(mtu_discovery));
    server.transport_config(Arc::new(transport));
    Ok(server)
}
