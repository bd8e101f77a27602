//! The kinds of plugin: what decision a module makes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::abi::{DLQ_POLICY_FN, FILTER_FN};

/// What a plugin decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PluginKind {
    /// Deliver a message to a subscription or skip it (`weir_filter`).
    #[serde(rename = "filter")]
    Filter,
    /// Retry, dead-letter or discard a failed delivery (`weir_dlq_policy`).
    #[serde(rename = "dlq-policy")]
    DlqPolicy,
}

impl PluginKind {
    /// The name used in manifests, the CLI and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Filter => "filter",
            PluginKind::DlqPolicy => "dlq-policy",
        }
    }

    /// The export holding this kind's entry point.
    pub fn entry_point(self) -> &'static str {
        match self {
            PluginKind::Filter => FILTER_FN,
            PluginKind::DlqPolicy => DLQ_POLICY_FN,
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is neither `filter` nor `dlq-policy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown plugin kind {0:?} (expected `filter` or `dlq-policy`)")]
pub struct UnknownKind(pub String);

impl FromStr for PluginKind {
    type Err = UnknownKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "filter" => Ok(PluginKind::Filter),
            "dlq-policy" => Ok(PluginKind::DlqPolicy),
            other => Err(UnknownKind(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in [PluginKind::Filter, PluginKind::DlqPolicy] {
            assert_eq!(kind.as_str().parse(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).expect("json"), format!("\"{kind}\""));
        }
        assert_eq!("map".parse::<PluginKind>(), Err(UnknownKind("map".into())));
    }
}
