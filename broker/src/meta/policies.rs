//! Consumer groups' retry policies, persisted in `<data_dir>/retry_policies.json`
//! (group → dlq-policy plugin and parameters, own `max_reconsume_times`), with the
//! attached plugins instantiated once and every group's retry counters.
//!
//! The plugin attached to a group is a [`WasmDlqPolicy`] handle: replacing the plugin
//! (a new upload) changes its decisions from the next call on; while attached, the
//! registry refuses to remove it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use weir_plugins::{RegistryError, RetryDecision, WasmDlqPolicy};

use super::json;
use crate::core::CoreError;

/// A change to one setting of a group's policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Setting<T> {
    /// Leave it.
    #[default]
    Keep,
    /// Set it.
    Set(T),
    /// Back to the broker's default.
    Clear,
}

/// Instantiates dlq-policy plugin `name` with `params` for a group.
pub type PolicyResolver<'a> = &'a dyn Fn(&str, &str) -> Result<WasmDlqPolicy, RegistryError>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugin: Option<StoredPlugin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_reconsume_times: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredPlugin {
    name: String,
    params: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PoliciesFile {
    groups: BTreeMap<String, StoredPolicy>,
}

/// A group's attached dlq-policy plugin and what it decided.
#[derive(Debug)]
pub struct AttachedPolicy {
    /// The plugin, for this group's parameters.
    pub policy: WasmDlqPolicy,
    /// Its decisions since it was attached: retry, dead letter, discard.
    decisions: [AtomicU64; 3],
}

impl AttachedPolicy {
    fn new(policy: WasmDlqPolicy) -> Self {
        Self { policy, decisions: Default::default() }
    }

    /// Counts one decision the plugin made.
    pub fn count(&self, decision: RetryDecision) {
        let slot = match decision {
            RetryDecision::RetryAfter(_) => 0,
            RetryDecision::DeadLetter => 1,
            RetryDecision::Discard => 2,
        };
        self.decisions[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Its decisions: (retries, dead letters, discards).
    pub fn decisions(&self) -> (u64, u64, u64) {
        let [r, d, x] = &self.decisions;
        (r.load(Ordering::Relaxed), d.load(Ordering::Relaxed), x.load(Ordering::Relaxed))
    }
}

/// What a group's failures became since the broker started.
#[derive(Debug, Default)]
pub struct RetryCounters {
    /// Failed deliveries reported.
    pub failures: AtomicU64,
    /// Decided: retry.
    pub retries: AtomicU64,
    /// Decided: dead letter.
    pub dead_letters: AtomicU64,
    /// Decided: discard.
    pub discards: AtomicU64,
    /// Decided by the default schedule because the plugin failed.
    pub fallbacks: AtomicU64,
    /// Dead letters resent.
    pub resent: AtomicU64,
}

impl RetryCounters {
    /// Counts one decision (by whoever made it).
    pub fn count(&self, decision: RetryDecision) {
        let counter = match decision {
            RetryDecision::RetryAfter(_) => &self.retries,
            RetryDecision::DeadLetter => &self.dead_letters,
            RetryDecision::Discard => &self.discards,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A group's policy as in force.
#[derive(Debug, Clone)]
pub struct GroupPolicy {
    /// The attached plugin (name and parameters are the handle's).
    pub plugin: Option<Arc<AttachedPolicy>>,
    /// The group's own limit, if set.
    pub max_reconsume_times: Option<u32>,
    /// Its counters.
    pub counters: Arc<RetryCounters>,
}

#[derive(Debug, Default)]
struct State {
    file: PoliciesFile,
    attached: BTreeMap<String, Arc<AttachedPolicy>>,
    counters: BTreeMap<String, Arc<RetryCounters>>,
}

/// Every group's retry policy and counters.
#[derive(Debug)]
pub struct RetryPolicies {
    path: PathBuf,
    state: Mutex<State>,
}

impl RetryPolicies {
    /// Loads `retry_policies.json` from `data_dir`, attaching each stored plugin with
    /// `resolve`. A plugin that cannot be attached (removed, broken) is dropped from the
    /// group with an error log: its failures get the default schedule.
    pub fn open(data_dir: &Path, resolve: PolicyResolver<'_>) -> std::io::Result<Self> {
        let path = data_dir.join("retry_policies.json");
        let mut file: PoliciesFile = json::load(&path)?;
        let mut attached = BTreeMap::new();
        for (group, stored) in &mut file.groups {
            let Some(plugin) = &stored.plugin else { continue };
            match resolve(&plugin.name, &plugin.params) {
                Ok(policy) => {
                    attached.insert(group.clone(), Arc::new(AttachedPolicy::new(policy)));
                }
                Err(err) => {
                    tracing::error!(%group, plugin = %plugin.name, %err, "the group's dlq-policy plugin cannot be attached; its failures get the default schedule");
                    stored.plugin = None;
                }
            }
        }
        Ok(Self { path, state: Mutex::new(State { file, attached, counters: BTreeMap::new() }) })
    }

    /// Changes `group`'s plugin and limit, attaching a new plugin with `resolve` first.
    /// Blocks on the file's fsync; on an error nothing changes.
    pub fn set(
        &self,
        group: &str,
        plugin: Setting<(String, String)>,
        max_reconsume_times: Setting<u32>,
        resolve: PolicyResolver<'_>,
    ) -> Result<GroupPolicy, CoreError> {
        let mut state = self.state.lock();
        let mut stored = state.file.groups.get(group).cloned().unwrap_or_default();
        let mut attach = None;
        match plugin {
            Setting::Keep => {}
            Setting::Set((name, params)) => {
                attach = Some(Arc::new(AttachedPolicy::new(resolve(&name, &params)?)));
                stored.plugin = Some(StoredPlugin { name, params });
            }
            Setting::Clear => stored.plugin = None,
        }
        match max_reconsume_times {
            Setting::Keep => {}
            Setting::Set(limit) => stored.max_reconsume_times = Some(limit),
            Setting::Clear => stored.max_reconsume_times = None,
        }
        let mut next = PoliciesFile { groups: state.file.groups.clone() };
        if stored == StoredPolicy::default() {
            next.groups.remove(group);
        } else {
            next.groups.insert(group.to_owned(), stored.clone());
        }
        json::store(&self.path, &next).map_err(|err| CoreError::metadata("cannot persist retry_policies.json", err))?;
        state.file = next;
        match (attach, stored.plugin.is_some()) {
            (Some(policy), _) => {
                state.attached.insert(group.to_owned(), policy);
            }
            (None, false) => {
                state.attached.remove(group);
            }
            (None, true) => {}
        }
        Ok(policy_of(&mut state, group))
    }

    /// `group`'s policy as in force (its counters are created on first use).
    pub fn get(&self, group: &str) -> GroupPolicy {
        policy_of(&mut self.state.lock(), group)
    }

    /// Groups with a stored policy.
    pub fn groups(&self) -> Vec<String> {
        self.state.lock().file.groups.keys().cloned().collect()
    }

    /// The plugins attached now, by group.
    pub fn attached(&self) -> Vec<(String, Arc<AttachedPolicy>)> {
        self.state.lock().attached.iter().map(|(g, p)| (g.clone(), p.clone())).collect()
    }
}

fn policy_of(state: &mut State, group: &str) -> GroupPolicy {
    let counters = state.counters.entry(group.to_owned()).or_default().clone();
    GroupPolicy {
        plugin: state.attached.get(group).cloned(),
        max_reconsume_times: state.file.groups.get(group).and_then(|p| p.max_reconsume_times),
        counters,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_plugins(name: &str, _: &str) -> Result<WasmDlqPolicy, RegistryError> {
        Err(RegistryError::NotFound { name: name.to_owned() })
    }

    #[test]
    fn limits_persist_and_a_missing_plugin_is_refused_without_changing_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = RetryPolicies::open(dir.path(), &no_plugins).expect("open");
        assert_eq!(policies.get("g").max_reconsume_times, None);
        policies.set("g", Setting::Keep, Setting::Set(3), &no_plugins).expect("set limit");
        let refused = policies.set("g", Setting::Set(("nope".into(), String::new())), Setting::Clear, &no_plugins);
        assert!(matches!(refused, Err(CoreError::Plugin(RegistryError::NotFound { .. }))), "{refused:?}");
        drop(policies);

        let policies = RetryPolicies::open(dir.path(), &no_plugins).expect("reopen");
        assert_eq!(policies.get("g").max_reconsume_times, Some(3));
        assert_eq!(policies.groups(), ["g"]);
        policies.set("g", Setting::Keep, Setting::Clear, &no_plugins).expect("clear");
        assert!(policies.groups().is_empty(), "a group back at the defaults is not stored");
    }

    #[test]
    fn counters_live_as_long_as_the_broker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policies = RetryPolicies::open(dir.path(), &no_plugins).expect("open");
        policies.get("g").counters.count(RetryDecision::DeadLetter);
        policies.set("g", Setting::Keep, Setting::Set(1), &no_plugins).expect("set");
        assert_eq!(policies.get("g").counters.dead_letters.load(Ordering::Relaxed), 1);
    }
}
