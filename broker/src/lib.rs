//! The Weir broker: a QUIC endpoint in front of the storage engine.
//!
//! Layout:
//! - `config`: [`BrokerConfig`] (TOML + flags).
//! - `tls`: configured or generated self-signed certificates.
//! - `server`: the quinn driver (connections, one task per request stream, shutdown).
//! - `handler`: requests to storage operations and back.
//! - `topics`: topic metadata, kept in a `journal` (`topics.log`); `offsets`:
//!   consumer offsets, kept by `persist` (a JSON file replaced atomically).
//! - `long_poll`: wake-ups for pulls held until a message arrives.
//! - `groups`: consumer groups (shadow role) and their compiled subscriptions.
//! - `plugins`: the plugin admin requests over the `weir-plugins` registry.
//!
//! **Boundary**: wire types stay in `handler`; the storage engine never sees them.

mod config;
mod error;
mod groups;
mod handler;
mod journal;
mod long_poll;
mod offsets;
mod persist;
mod plugins;
mod pull;
mod server;
mod tls;
mod topics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use config::{BrokerConfig, FlushKind};
pub use error::BrokerError;
/// The QUIC server settings the broker uses (for transport benchmarks).
pub use server::bind as bind_udp;
pub use tls::{endpoint_config as quic_endpoint_config, server_config as quic_server_config};
use tokio::task::JoinHandle;
use weir_storage::Store;

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    local_addr: SocketAddr,
    cert_path: PathBuf,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: JoinHandle<()>,
    ctx: Arc<handler::Context>,
    offsets_task: JoinHandle<()>,
}

impl Broker {
    /// Opens the store (recovering after a crash), loads metadata and TLS
    /// material, binds the endpoint and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Self, BrokerError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| BrokerError::Io { what, source }
        };
        std::fs::create_dir_all(&config.data_dir).map_err(io("creating the data directory"))?;
        let arrivals = Arc::new(long_poll::ArrivalNotifier::default());
        let store_config = config.store_config();
        let shape = config.index_shape()?;
        // The ConsumeQueues and the bloom index share one budget of mapped files, sized
        // from the descriptor limit: raise it first, as far as the process may.
        raise_descriptor_limit();
        let budget = weir_storage::MapBudget::for_config(&store_config);
        let blooms = if config.bloom_index {
            let dir = config.data_dir.join("bloomindex");
            let index = weir_filters::BloomIndex::open(&dir, shape.clone(), budget.clone())
                .map_err(io("opening the bloom index"))?;
            Some(Arc::new(index))
        } else {
            None
        };
        // The bloom index writes before each ConsumeQueue entry, wake-ups come after it.
        let mut hooks: Vec<Arc<dyn weir_storage::DispatchHook>> = Vec::new();
        if let Some(blooms) = &blooms {
            hooks.push(blooms.clone());
        }
        hooks.push(arrivals.clone());
        let store = tokio::task::spawn_blocking(move || Store::open_with_hooks(store_config, budget, hooks))
            .await
            .map_err(|err| BrokerError::Config(format!("store open task failed: {err}")))??;
        let topics = topics::TopicTable::open(&config.data_dir).map_err(io("loading topics"))?;
        let offsets = offsets::ConsumerOffsets::open(config.data_dir.join("consumer_offsets.json"))
            .map_err(io("loading consumer_offsets.json"))?;
        let plugins = {
            let (dir, limits) = (config.data_dir.clone(), config.plugin_limits());
            tokio::task::spawn_blocking(move || -> Result<_, BrokerError> {
                let host = weir_plugins::PluginHost::new(limits)
                    .map_err(|err| BrokerError::Config(format!("starting the plugin host: {err}")))?;
                weir_plugins::Registry::open(&dir, host)
                    .map_err(|err| BrokerError::Config(format!("opening the plugin registry: {err}")))
            })
            .await
            .map_err(|err| BrokerError::Config(format!("plugin registry task failed: {err}")))??
        };
        let resolve = |name: &str, params: &str| -> Result<Arc<dyn weir_filters::MessageFilter>, String> {
            plugins
                .filter(name, params)
                .map(|f| Arc::new(f) as Arc<dyn weir_filters::MessageFilter>)
                .map_err(|e| e.to_string())
        };
        let groups =
            groups::Groups::open(&config.data_dir, shape.clone(), &resolve).map_err(io("loading consumer groups"))?;
        let server_config = tls::server_config(&config)?;
        let endpoint_config = tls::endpoint_config(&config)?;
        let socket = server::bind(config.listen, config.udp_buffer_bytes).map_err(io("binding the QUIC endpoint"))?;
        let endpoint =
            quinn::Endpoint::new(endpoint_config, Some(server_config), socket, Arc::new(quinn::TokioRuntime))
                .map_err(io("starting the QUIC endpoint"))?;
        let local_addr = endpoint.local_addr().map_err(io("reading the bound address"))?;
        let (shutdown, shutting_down) = tokio::sync::watch::channel(false);
        let cert_path = config.tls_paths().0;
        let ctx = Arc::new(handler::Context {
            config,
            store: Arc::new(store),
            topics,
            offsets,
            groups,
            blooms,
            index_shape: shape,
            plugins,
            arrivals,
            started: Instant::now(),
            connections: Default::default(),
            shutting_down: shutting_down.clone(),
        });
        let offsets_task = tokio::spawn(persist_offsets(ctx.clone(), shutting_down.clone()));
        let server = tokio::spawn(server::serve(endpoint, ctx.clone(), shutting_down));
        tracing::info!(%local_addr, data_dir = %ctx.config.data_dir.display(), "broker started");
        Ok(Self { local_addr, cert_path, shutdown, server, ctx, offsets_task })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The PEM certificate clients should trust.
    pub fn cert_path(&self) -> &std::path::Path {
        &self.cert_path
    }

    /// Stops accepting, answers held pulls, finishes in-flight requests,
    /// persists consumer offsets and closes the store (flushing it).
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let _ = self.shutdown.send(true);
        self.ctx.arrivals.wake_all();
        let _ = self.server.await;
        let _ = self.offsets_task.await;
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| BrokerError::Io { what, source }
        };
        self.ctx.offsets.persist().map_err(io("persisting consumer offsets"))?;
        let store = self.ctx.store.clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|err| BrokerError::Config(format!("store close task failed: {err}")))?
            .map_err(io("closing the store"))?;
        tracing::info!("broker stopped");
        Ok(())
    }
}

/// Raises the soft limit on open files to the hard limit: every mapped queue file
/// holds a descriptor, and the default soft limit (often 1024) would cap the broker
/// at a few hundred queues before it has to close and reopen their files.
fn raise_descriptor_limit() {
    // SAFETY: `rlimit` is plain old data and `getrlimit` only writes into it.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid resource id and out-pointer; `setrlimit` reads what `getrlimit` wrote.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if raised {
        tracing::debug!(open_files = limit.rlim_cur, "raised the open-file limit");
    }
}

/// Writes consumer offsets every few seconds until shutdown.
async fn persist_offsets(ctx: Arc<handler::Context>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(offsets::PERSIST_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(err) = ctx.offsets.persist() {
            tracing::error!(%err, "cannot persist consumer offsets");
        }
    }
}
