//! Errors of starting and running a broker.

/// Why the broker could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The store could not be opened.
    #[error("cannot open the store")]
    Store(#[from] weir_storage::OpenError),
    /// The plugin host could not start.
    #[error("cannot start the plugin host")]
    PluginHost(#[from] weir_plugins::HostError),
    /// The plugin registry could not be opened.
    #[error("cannot open the plugin registry")]
    Plugins(#[from] weir_plugins::RegistryError),
    /// TLS material could not be loaded or generated.
    #[error("TLS: {0}")]
    Tls(String),
    /// A start-up or shutdown task failed.
    #[error("broker task failed: {0}")]
    Task(String),
    /// An I/O operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}
