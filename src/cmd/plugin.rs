//! `weir plugin`: WebAssembly plugins. `upload`, `list`, `remove` and
//! `enable` talk to the broker; `new` and `test` work offline (scaffold a
//! plugin crate; run a module against sample messages under the broker's limits).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use weir_client::{PluginInfo, PluginState};
use weir_plugins::{Limits, NewPlugin, PluginKind};

use crate::cmd::BrokerAddr;

/// `weir plugin` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Upload (or replace, live) a plugin module; name, kind and version default to its manifest.
    Upload(UploadArgs),
    /// List the broker's plugins: kind, version, size, state, calls, errors, mean call time;
    /// for dlq-policy plugins the groups they decide for and their decisions by kind.
    ///
    /// With --json, one object per plugin: {"name", "kind", "version", "revision",
    /// "size_bytes", "state", "state_detail", "subscriptions", "calls", "errors",
    /// "mean_call_us", "fuel_used", "description", "hints", "params", "groups", "retries",
    /// "dead_letters", "discards"}.
    List(ListArgs),
    /// Remove a plugin (refused while a subscription uses it, unless --force).
    Remove(RemoveArgs),
    /// Re-enable a plugin disabled after repeated failures.
    Enable(EnableArgs),
    /// Create a ready-to-build plugin crate using the guest SDK.
    New(NewArgs),
    /// Run a plugin offline against sample messages (JSON lines), with the broker's limits.
    Test(TestArgs),
}

/// A plugin kind on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Deliver a message to a subscription or skip it.
    Filter,
    /// Retry, dead-letter or discard a message whose consumption failed.
    DlqPolicy,
}

impl Kind {
    fn plugin_kind(self) -> PluginKind {
        match self {
            Kind::Filter => PluginKind::Filter,
            Kind::DlqPolicy => PluginKind::DlqPolicy,
        }
    }
}

/// Arguments of `weir plugin upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The plugin's name (default: the manifest's).
    #[arg(long)]
    name: Option<String>,
    /// Its kind (default: the manifest's).
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// Its version (default: the manifest's, else the upload's revision).
    #[arg(long)]
    version: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
    /// The module (`.wasm`).
    file: PathBuf,
}

/// Arguments of `weir plugin list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// One JSON object per plugin.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir plugin remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The plugin's name.
    name: String,
    /// Remove even while subscriptions use it (their plugin calls then fail).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir plugin enable`.
#[derive(Debug, Args)]
pub struct EnableArgs {
    /// The plugin's name.
    name: String,
    #[command(flatten)]
    broker: BrokerAddr,
}

/// Arguments of `weir plugin new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's (and crate's) name.
    name: String,
    /// What it decides.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Where to create the crate (it goes in DIR/NAME).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// Arguments of `weir plugin test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The module (`.wasm`).
    file: PathBuf,
    /// Sample messages, one JSON object a line: `topic`, `tag`, `keys`, `props`, `body`
    /// (and for dlq-policy plugins `group`, `reason`, `reconsume_times`).
    #[arg(long)]
    messages: PathBuf,
    /// Parameters passed to the plugin's init.
    #[arg(long, default_value = "")]
    params: String,
    /// One JSON object per message.
    #[arg(long)]
    json: bool,
}

/// Runs a `weir plugin` subcommand.
pub async fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Upload(args) => {
            let wasm = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
            let client = args.broker.connect().await?;
            let kind = args.kind.map(|k| k.plugin_kind().as_str());
            let info = client.upload_plugin(wasm, args.name.as_deref(), kind, args.version.as_deref()).await?;
            client.close().await;
            if args.json {
                println!("{}", info_json(&info));
            } else {
                println!(
                    "uploaded {} {} ({}, {} bytes, revision {})",
                    info.name, info.version, info.kind, info.size_bytes, info.revision
                );
            }
        }
        PluginCommand::List(args) => {
            let client = args.broker.connect().await?;
            let plugins = client.list_plugins().await?;
            client.close().await;
            for info in &plugins {
                if args.json {
                    println!("{}", info_json(info));
                } else {
                    println!("{}", info_line(info));
                }
            }
            if plugins.is_empty() && !args.json {
                eprintln!("no plugins");
            }
        }
        PluginCommand::Remove(args) => {
            let client = args.broker.connect().await?;
            client.remove_plugin(&args.name, args.force).await?;
            client.close().await;
            println!("removed {}", args.name);
        }
        PluginCommand::Enable(args) => {
            let client = args.broker.connect().await?;
            let enabled = client.enable_plugin(&args.name).await?;
            client.close().await;
            println!("re-enabled {} for {enabled} subscription(s)", args.name);
        }
        PluginCommand::New(args) => {
            let sdk = weir_plugins::bundled_sdk_path();
            let root = weir_plugins::scaffold(NewPlugin {
                name: &args.name,
                kind: args.kind.plugin_kind(),
                dir: &args.dir,
                sdk_path: &sdk,
            })?;
            println!("created {}", root.display());
            println!("build it: cd {} && cargo build --target wasm32-unknown-unknown --release", root.display());
        }
        PluginCommand::Test(args) => return test(args),
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir plugin test`: exits non-zero when any call failed.
fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let messages =
        std::fs::File::open(&args.messages).with_context(|| format!("opening {}", args.messages.display()))?;
    let report = weir_plugins::run_offline(&wasm, std::io::BufReader::new(messages), &args.params, Limits::default())?;
    let mut failed = 0;
    for result in &report.results {
        failed += usize::from(result.error.is_some());
        if args.json {
            println!("{}", serde_json::to_string(result)?);
        } else {
            let decision = match (&result.decision, &result.error) {
                (Some(decision), _) => serde_json::to_value(decision)?["decision"].as_str().unwrap_or("?").to_owned(),
                (None, Some(error)) => format!("error: {error}"),
                (None, None) => "no decision".to_owned(),
            };
            println!(
                "line {:>4}: {decision} (fuel {}, {:.1} µs)",
                result.line,
                result.fuel,
                result.nanos as f64 / 1000.0
            );
            for log in &result.logs {
                println!("           log: {}", serde_json::to_string(log)?);
            }
        }
    }
    eprintln!("{} message(s), {failed} failed call(s), {} plugin", report.results.len(), report.kind.as_str());
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn mean_call_micros(info: &PluginInfo) -> f64 {
    if info.calls == 0 { 0.0 } else { info.total_call_nanos as f64 / info.calls as f64 / 1000.0 }
}

/// One plugin as a JSON object.
fn info_json(info: &PluginInfo) -> serde_json::Value {
    serde_json::json!({
        "name": info.name, "kind": info.kind, "version": info.version, "revision": info.revision,
        "size_bytes": info.size_bytes, "state": info.state.as_str(), "state_detail": info.state_detail,
        "subscriptions": info.subscriptions, "calls": info.calls, "errors": info.errors,
        "mean_call_us": mean_call_micros(info), "fuel_used": info.fuel_used,
        "description": info.description, "hints": info.hints, "params": info.params,
        "groups": info.groups, "retries": info.retries, "dead_letters": info.dead_letters, "discards": info.discards,
    })
}

/// One plugin as a line of text.
fn info_line(info: &PluginInfo) -> String {
    let state = match info.state {
        PluginState::Active => "active".to_owned(),
        other => format!("{} ({})", other.as_str(), info.state_detail),
    };
    let users = if info.kind == "dlq-policy" {
        format!(
            "{} group(s), decided {} retry, {} dead-letter, {} discard",
            info.groups, info.retries, info.dead_letters, info.discards
        )
    } else {
        format!("{} subscription(s)", info.subscriptions)
    };
    format!(
        "{} {} [{}] {} bytes, {state}, {users}, {} calls, {} errors, mean {:.1} µs{}",
        info.name,
        info.version,
        info.kind,
        info.size_bytes,
        info.calls,
        info.errors,
        mean_call_micros(info),
        if info.description.is_empty() { String::new() } else { format!(" — {}", info.description) },
    )
}
