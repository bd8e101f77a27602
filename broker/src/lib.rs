//! The Weir broker: a transport-independent core behind a QUIC front door.
//!
//! Layout:
//! - `config`: [`BrokerConfig`] (TOML + flags); `tls`: configured or generated
//!   self-signed certificates; `error`: [`BrokerError`].
//! - `core`: [`Core`], the one state and set of typed operations every front
//!   door calls (send, pull, offsets, topics, groups, plugins, status).
//! - `meta`: metadata stores: topics (`topics.log`), group roles and
//!   subscriptions (JSON), consumer offsets (redb).
//! - `delay`: the `delay_levels` schedule; `delayed`: delayed delivery on the
//!   persistent timer (the `%TIMER%` topic, its dispatch hook, the `weir-timer` thread).
//! - `long_poll`: wake-ups for pulls held until a message arrives.
//! - `membership`: consumer group members, queue assignment (strategies),
//!   generations and fencing, queue locks: a state machine without I/O.
//! - `quic`: the QUIC door: the quinn driver, the request handler, wire conversions.
//!
//! **Boundary**: wire types stay in `quic`; the core and the storage engine never see
//! them, and nothing imports from `quic`.

mod config;
pub mod core;
pub mod delay;
pub mod delayed;
mod error;
mod long_poll;
mod membership;
pub mod meta;
mod quic;
pub mod retry;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::core::{Core, CoreError};
pub use config::{BrokerConfig, FlushKind};
pub use error::BrokerError;
/// The QUIC server settings the broker uses (for transport benchmarks).
pub use quic::bind as bind_udp;
pub use tls::{endpoint_config as quic_endpoint_config, server_config as quic_server_config};
use tokio::task::JoinHandle;

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    local_addr: SocketAddr,
    cert_path: PathBuf,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: JoinHandle<()>,
    core: Arc<Core>,
}

impl Broker {
    /// Opens the store (recovering after a crash), loads metadata and TLS
    /// material, binds the endpoint and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Self, BrokerError> {
        let io = |what: &'static str| move |source| BrokerError::Io { what: what.to_owned(), source };
        let core = Core::open(config).await?;
        let config = core.config();
        let server_config = tls::server_config(config)?;
        let endpoint_config = tls::endpoint_config(config)?;
        let socket = quic::bind(config.listen, config.udp_buffer_bytes).map_err(io("binding the QUIC endpoint"))?;
        let cert_path = config.tls_paths().0;
        let endpoint =
            quinn::Endpoint::new(endpoint_config, Some(server_config), socket, Arc::new(quinn::TokioRuntime))
                .map_err(io("starting the QUIC endpoint"))?;
        let local_addr = endpoint.local_addr().map_err(io("reading the bound address"))?;
        let (shutdown, shutting_down) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(quic::serve(endpoint, core.clone(), shutting_down));
        tokio::spawn(core.clone().run_membership_expiry());
        tracing::info!(%local_addr, data_dir = %core.config().data_dir.display(), "broker started");
        Ok(Self { local_addr, cert_path, shutdown, server, core })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The PEM certificate clients should trust.
    pub fn cert_path(&self) -> &std::path::Path {
        &self.cert_path
    }

    /// Stops accepting, answers held requests, finishes in-flight requests, then
    /// closes the core (consumer offsets, then the store, flushed).
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let _ = self.shutdown.send(true);
        self.core.begin_shutdown();
        let _ = self.server.await;
        self.core.close().await?;
        tracing::info!("broker stopped");
        Ok(())
    }
}
