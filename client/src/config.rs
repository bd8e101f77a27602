//! Where the broker is, which certificate to trust, and how long to wait.

use std::path::PathBuf;
use std::time::Duration;

use weir_protocol::DEFAULT_MAX_PAYLOAD_LEN;

/// The broker address used when none is configured.
pub const DEFAULT_BROKER: &str = "127.0.0.1:7420";

/// The CA file used when none is configured: the certificate a broker started with the
/// default data directory generates for itself.
pub const DEFAULT_CA_PATH: &str = "./weir-data/tls/cert.pem";

/// Environment variable naming the broker address (`host:port`).
pub const BROKER_ENV: &str = "WEIR_BROKER";

/// Environment variable naming the CA PEM file.
pub const CA_ENV: &str = "WEIR_CA";

/// The certificates the client trusts: exactly those in a PEM file or PEM bytes.
///
/// A broker generates a self-signed certificate into `<data-dir>/tls/cert.pem`; point the
/// client at that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A PEM file holding one or more certificates, read when the client connects.
    File(PathBuf),
    /// PEM text holding one or more certificates.
    Pem(Vec<u8>),
}

/// How a [`Client`](crate::Client) reaches the broker.
///
/// Start from [`ClientConfig::default`] (local broker, default data directory's
/// certificate) or [`ClientConfig::from_env`], then change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Broker address, `host:port`; `host` is a DNS name or an IP address (IPv6 in
    /// brackets, `[::1]:7420`). The host is also the TLS server name.
    pub broker: String,
    /// The certificates to trust.
    pub ca: CaSource,
    /// How long to wait for the QUIC handshake.
    pub connect_timeout: Duration,
    /// How long to wait for a request's response. A pull may take its long-polling wait
    /// on top of this.
    pub request_timeout: Duration,
    /// Largest frame payload the client writes or reads, in bytes; keep it equal to the
    /// broker's frame limit. Batches are split to fit; larger responses are an
    /// [`Error::ResponseTooLarge`](crate::Error::ResponseTooLarge).
    pub max_frame_payload: u32,
    /// How often to ping an idle connection so neither side's idle timeout closes it;
    /// keep it well below the client's 15 s idle timeout.
    pub keep_alive_interval: Duration,
    /// Send and receive buffer of the client's UDP socket, in bytes (default 4 MiB; the
    /// kernel caps it at `net.core.rmem_max`/`wmem_max`).
    pub udp_buffer_bytes: usize,
    /// Largest UDP payload the client sends and accepts, in bytes (default
    /// [`DEFAULT_MAX_UDP_PAYLOAD`](weir_protocol::DEFAULT_MAX_UDP_PAYLOAD); 1 200 to
    /// 6 500). Path MTU discovery searches up to it; see the broker's `max_udp_payload`.
    pub max_udp_payload: u16,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            broker: DEFAULT_BROKER.to_owned(),
            ca: CaSource::File(PathBuf::from(DEFAULT_CA_PATH)),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_frame_payload: DEFAULT_MAX_PAYLOAD_LEN,
            keep_alive_interval: Duration::from_secs(5),
            udp_buffer_bytes: 4 << 20,
            max_udp_payload: weir_protocol::DEFAULT_MAX_UDP_PAYLOAD,
        }
    }
}

impl ClientConfig {
    /// The default configuration with the broker address from `WEIR_BROKER` and the CA
    /// file from `WEIR_CA`, where set.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = ClientConfig::default();
        if let Some(broker) = var(BROKER_ENV).filter(|value| !value.is_empty()) {
            config.broker = broker;
        }
        if let Some(ca) = var(CA_ENV).filter(|value| !value.is_empty()) {
            config.ca = CaSource::File(PathBuf::from(ca));
        }
        config
    }

    /// This configuration with another broker address.
    pub fn with_broker(mut self, broker: impl Into<String>) -> Self {
        self.broker = broker.into();
        self
    }

    /// This configuration trusting the certificates in the PEM file at `path`.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = CaSource::File(path.into());
        self
    }

    /// This configuration trusting the certificates in `pem`.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = CaSource::Pem(pem.into());
        self
    }

    /// This configuration with another request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> ClientConfig {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ClientConfig::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = from(&[(BROKER_ENV, "broker.example:9000"), (CA_ENV, "/etc/weir/ca.pem")]);
        assert_eq!(config.broker, "broker.example:9000");
        assert_eq!(config.ca, CaSource::File(PathBuf::from("/etc/weir/ca.pem")));
    }

    #[test]
    fn unset_or_empty_variables_keep_defaults() {
        for config in [from(&[]), from(&[(BROKER_ENV, ""), (CA_ENV, "")])] {
            assert_eq!(config.broker, DEFAULT_BROKER);
            assert_eq!(config.ca, CaSource::File(PathBuf::from(DEFAULT_CA_PATH)));
        }
    }
}
