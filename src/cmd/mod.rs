//! One module per command family, plus what they share: how to reach a
//! broker, the async runtime, and the progress bar.

pub mod bench;
pub mod broker;
pub mod consume;
pub mod demo;
pub mod dlq;
pub mod filter;
pub mod group;
pub mod message;
pub mod plugin;
pub mod send;
pub mod status;
pub mod store;
pub mod time;
pub mod topic;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use weir_client::{Client, ClientConfig, Subscription};

/// How a command reaches the broker: flags, else `WEIR_BROKER` / `WEIR_CA`,
/// else the local default (`127.0.0.1:7420`, `./weir-data/tls/cert.pem`).
#[derive(Debug, Clone, Args)]
pub struct BrokerAddr {
    /// Broker address `host:port` [env: WEIR_BROKER] [default: 127.0.0.1:7420].
    #[arg(long, global = true)]
    pub broker: Option<String>,
    /// PEM file with the certificate(s) to trust [env: WEIR_CA] [default: ./weir-data/tls/cert.pem].
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
}

impl BrokerAddr {
    /// The client configuration these flags and the environment select.
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::from_env();
        if let Some(broker) = &self.broker {
            config = config.with_broker(broker.clone());
        }
        if let Some(ca) = &self.ca {
            config = config.with_ca_file(ca.clone());
        }
        config
    }

    /// Connects to the broker.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let config = self.config();
        let broker = config.broker.clone();
        Client::connect(config).await.with_context(|| format!("cannot reach the broker at {broker}"))
    }
}

/// What a consuming command subscribes to: `--tag` or `--sql`, and `--shadow`.
#[derive(Debug, Clone, Args)]
pub struct SubscriptionArgs {
    /// Tag subscription: `*` or `TagA || TagB`.
    #[arg(long, default_value = "*", conflicts_with = "sql")]
    tag: String,
    /// SQL92 subscription over properties, e.g. `region = 'SH' AND amount > 100`.
    #[arg(long)]
    sql: Option<String>,
    /// Declare the group a shadow group: it receives only shadow (stress-test) traffic.
    #[arg(long)]
    shadow: bool,
    /// A filter plugin (`weir plugin upload`) run on what `--tag`/`--sql` let through.
    #[arg(long, value_name = "PLUGIN")]
    filter: Option<String>,
    /// Parameters for the filter plugin's init.
    #[arg(long, value_name = "STR", requires = "filter", default_value = "")]
    filter_params: String,
}

impl SubscriptionArgs {
    /// The subscription these flags describe.
    pub fn subscription(&self) -> Subscription {
        let subscription = match &self.sql {
            Some(sql) => Subscription::sql(sql.clone()),
            None => Subscription::tag(self.tag.clone()),
        };
        let subscription = if self.shadow { subscription.shadow() } else { subscription };
        match &self.filter {
            Some(plugin) => subscription.plugin(plugin.clone(), self.filter_params.clone()),
            None => subscription,
        }
    }
}

/// Runs an async command on a fresh multi-threaded runtime.
pub fn block_on(future: impl Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new().context("starting the async runtime")?.block_on(future)
}

/// Parses `k=v`.
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// A progress bar with rate and ETA on stderr; hidden for `--json` runs and
/// when stderr is not a terminal.
pub fn progress_bar(total: u64, json: bool) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} ETA {eta}").expect("valid template"),
    );
    bar
}
