//! Running a plugin without a broker (`weir plugin test`): the same host and
//! limits as the broker, over sample messages written one JSON object a line.
//!
//! A line is `{"topic": "orders", "tag": "paid", "keys": ["k1"] or "k1",
//! "props": {"region": "SH"}, "body": "text"}`; every field is optional, and
//! `queue_id`, `queue_offset` (default: the line's index), `born_timestamp_ms`
//! and `reconsume_times` may be given too. For a dlq-policy, `group` and
//! `reason` describe the failure (the attempt is `reconsume_times + 1`).
//! Unlike in the broker, repeated failures never disable the plugin here, so
//! every message gets its own result.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};
use weir_filters::FilterInput;

use crate::compile::{LoadError, PluginHost};
use crate::dlq::{FailedDelivery, RetryDecision};
use crate::filter::WasmFilter;
use crate::handle::CallTrace;
use crate::kind::PluginKind;
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::policy::WasmDlqPolicy;
use crate::sandbox::GuestLog;
use crate::slot::PluginSlot;

/// Why an offline run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The module was refused (the same checks as an upload).
    #[error("plugin rejected: {0}")]
    Load(#[from] LoadError),
    /// The limits are not usable.
    #[error(transparent)]
    Host(#[from] crate::compile::HostError),
    /// Reading the messages failed.
    #[error("reading messages: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a message.
    #[error("message line {line}: {error}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        error: String,
    },
}

/// One sample message (a JSONL line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleMessage {
    /// The topic (default `test`).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The tag (default none).
    #[serde(default)]
    pub tag: String,
    /// Business keys: a list or one string.
    #[serde(default)]
    pub keys: SampleKeys,
    /// User properties.
    #[serde(default)]
    pub props: BTreeMap<String, String>,
    /// The body, as text.
    #[serde(default)]
    pub body: String,
    /// The queue id (default 0).
    #[serde(default)]
    pub queue_id: u32,
    /// The queue offset (default: the line's index, from 0).
    pub queue_offset: Option<u64>,
    /// Born timestamp, ms (default 0).
    #[serde(default)]
    pub born_timestamp_ms: i64,
    /// Redeliveries so far (default 0).
    #[serde(default)]
    pub reconsume_times: u32,
    /// dlq-policy: the consumer group (default `test`).
    #[serde(default = "default_topic")]
    pub group: String,
    /// dlq-policy: the failure reason (default empty).
    #[serde(default)]
    pub reason: String,
}

fn default_topic() -> String {
    "test".to_owned()
}

/// Keys written as a list or as one string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SampleKeys {
    /// `"k1"`.
    One(String),
    /// `["k1", "k2"]`.
    Many(Vec<String>),
}

impl Default for SampleKeys {
    fn default() -> Self {
        SampleKeys::Many(Vec::new())
    }
}

impl SampleKeys {
    fn as_vec(&self) -> Vec<&str> {
        match self {
            SampleKeys::One(key) => vec![key.as_str()],
            SampleKeys::Many(keys) => keys.iter().map(String::as_str).collect(),
        }
    }
}

/// What the plugin decided for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "decision")]
pub enum OfflineDecision {
    /// Filter: delivered.
    Deliver,
    /// Filter: skipped.
    Skip,
    /// Dlq-policy: retry after this many milliseconds.
    Retry {
        /// The delay.
        after_ms: u64,
    },
    /// Dlq-policy: to the dead-letter topic.
    DeadLetter,
    /// Dlq-policy: dropped.
    Discard,
}

/// The result for one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineResult {
    /// 1-based line number of the message.
    pub line: usize,
    /// The decision, if the call succeeded.
    pub decision: Option<OfflineDecision>,
    /// Why the call failed (a trap, the budget, the memory limit, ...).
    pub error: Option<String>,
    /// Fuel used.
    pub fuel: u64,
    /// Wall time, in nanoseconds (the first call includes instantiation).
    pub nanos: u64,
    /// What the plugin logged.
    pub logs: Vec<GuestLog>,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineReport {
    /// The plugin's kind.
    pub kind: PluginKind,
    /// Its manifest.
    pub manifest: Option<Manifest>,
    /// One result per message, in order.
    pub results: Vec<OfflineResult>,
}

/// Validates `wasm` as an upload would, then runs it with `params` on every
/// message of `messages` (JSONL) under `limits`.
pub fn run_offline(
    wasm: &[u8],
    messages: impl BufRead,
    params: &str,
    limits: Limits,
) -> Result<OfflineReport, OfflineError> {
    let samples = read_samples(messages)?;
    let host = PluginHost::new(Limits { max_consecutive_failures: u32::MAX, ..limits })?;
    let plugin = host.compile(wasm, None)?;
    let (kind, manifest) = (plugin.kind(), plugin.manifest().cloned());
    let results = match kind {
        PluginKind::Filter => {
            let filter = WasmFilter::from_slot(PluginSlot::new("offline".to_owned(), plugin), params);
            run_each(&samples, |input, _| {
                convert(filter.decide_traced(input), |deliver| {
                    if deliver { OfflineDecision::Deliver } else { OfflineDecision::Skip }
                })
            })
        }
        PluginKind::DlqPolicy => {
            let policy = WasmDlqPolicy::from_slot(PluginSlot::new("offline".to_owned(), plugin), params);
            run_each(&samples, |message, sample| {
                let failed = FailedDelivery { group: &sample.group, reason: &sample.reason, message: *message };
                convert(policy.decide_traced(&failed), |decision| match decision {
                    RetryDecision::RetryAfter(delay) => {
                        OfflineDecision::Retry { after_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX) }
                    }
                    RetryDecision::DeadLetter => OfflineDecision::DeadLetter,
                    RetryDecision::Discard => OfflineDecision::Discard,
                })
            })
        }
    };
    Ok(OfflineReport { kind, manifest, results })
}

fn read_samples(messages: impl BufRead) -> Result<Vec<(usize, SampleMessage)>, OfflineError> {
    let mut samples = Vec::new();
    for (index, line) in messages.lines().enumerate() {
        let line_text = line?;
        if line_text.trim().is_empty() {
            continue;
        }
        let sample = serde_json::from_str::<SampleMessage>(&line_text)
            .map_err(|e| OfflineError::BadLine { line: index + 1, error: e.to_string() })?;
        samples.push((index + 1, sample));
    }
    Ok(samples)
}

fn run_each(
    samples: &[(usize, SampleMessage)],
    mut call: impl FnMut(&FilterInput<'_>, &SampleMessage) -> OfflineResult,
) -> Vec<OfflineResult> {
    samples
        .iter()
        .enumerate()
        .map(|(index, (line, sample))| {
            let keys = sample.keys.as_vec();
            let properties: Vec<(&str, &str)> = sample.props.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let input = FilterInput {
                topic: &sample.topic,
                queue_id: sample.queue_id,
                queue_offset: sample.queue_offset.unwrap_or(index as u64),
                tag: &sample.tag,
                keys: &keys,
                properties: &properties,
                body: sample.body.as_bytes(),
                born_timestamp_ms: sample.born_timestamp_ms,
                reconsume_times: sample.reconsume_times,
            };
            OfflineResult { line: *line, ..call(&input, sample) }
        })
        .collect()
}

fn convert<T>(trace: CallTrace<T>, decision: impl FnOnce(T) -> OfflineDecision) -> OfflineResult {
    let (decision, error) = match trace.result {
        Ok(value) => (Some(decision(value)), None),
        Err(error) => (None, Some(error.to_string())),
    };
    OfflineResult {
        line: 0,
        decision,
        error,
        fuel: trace.cost.fuel,
        nanos: u64::try_from(trace.cost.elapsed.as_nanos()).unwrap_or(u64::MAX),
        logs: trace.logs,
    }
}
