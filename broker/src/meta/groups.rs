//! Consumer groups and their subscriptions, persisted in
//! `<data_dir>/groups.json` (group → shadow role) and
//! `<data_dir>/subscriptions.json` (group → topic → expression, version).
//!
//! A subscription is compiled once when registered (or when its group's role
//! changes) and shared by every pull; its [`FilterStats`] live as long as the
//! broker runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use weir_filters::{Expression, FilterStats, IndexShape, MessageFilter, Subscription, SubscriptionError, TrafficRole};
use weir_plugins::RegistryError;

use super::json;
use crate::core::CoreError;
use crate::membership::Strategy;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct GroupsFile {
    /// group → declared shadow.
    shadow: BTreeMap<String, bool>,
    /// group → assignment strategy name (groups not listed use the default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    strategy: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSubscription {
    expression: StoredExpression,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugin: Option<StoredPlugin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredPlugin {
    name: String,
    params: String,
}

/// A filter plugin a subscription runs on what its expression lets through.
#[derive(Debug, Clone)]
pub struct PluginUse {
    /// The plugin's name in the registry.
    pub name: String,
    /// Its parameters for this subscription.
    pub params: String,
    /// The plugin, instantiated for this subscription.
    pub filter: Arc<dyn MessageFilter>,
}

/// Instantiates plugin `name` with `params` for a subscription.
pub type PluginResolver<'a> = &'a dyn Fn(&str, &str) -> Result<Arc<dyn MessageFilter>, RegistryError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredExpression {
    All,
    Tag(String),
    Sql(String),
}

impl From<&Expression> for StoredExpression {
    fn from(e: &Expression) -> Self {
        match e {
            Expression::All => Self::All,
            Expression::Tag(t) => Self::Tag(t.clone()),
            Expression::Sql(s) => Self::Sql(s.clone()),
        }
    }
}

impl From<&StoredExpression> for Expression {
    fn from(e: &StoredExpression) -> Self {
        match e {
            StoredExpression::All => Self::All,
            StoredExpression::Tag(t) => Self::Tag(t.clone()),
            StoredExpression::Sql(s) => Self::Sql(s.clone()),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SubscriptionsFile {
    /// group → topic → subscription.
    groups: BTreeMap<String, BTreeMap<String, StoredSubscription>>,
}

/// A registered subscription, compiled, with its counters.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The compiled subscription.
    pub subscription: Arc<Subscription>,
    /// Grows each time the expression changes.
    pub version: u64,
    /// The pipeline's counters for this (group, topic).
    pub stats: Arc<FilterStats>,
    /// The filter plugin after the expression, if any.
    pub plugin: Option<PluginUse>,
}

impl Registered {
    fn same_as(&self, expression: &Expression, plugin: Option<&PluginUse>) -> bool {
        *self.subscription.expression() == *expression
            && self.plugin.as_ref().map(|p| (&p.name, &p.params)) == plugin.map(|p| (&p.name, &p.params))
    }
}

#[derive(Debug, Default)]
struct State {
    groups: GroupsFile,
    subscriptions: SubscriptionsFile,
    compiled: BTreeMap<(String, String), Registered>,
}

/// Every group's role and subscriptions.
#[derive(Debug)]
pub struct Groups {
    groups_path: PathBuf,
    subscriptions_path: PathBuf,
    shape: IndexShape,
    state: Mutex<State>,
}

impl Groups {
    /// Loads both files from `data_dir` and compiles every stored subscription
    /// for blooms of `shape`, instantiating plugins with `resolve`. A stored
    /// subscription that no longer compiles (or whose plugin is gone) is
    /// dropped with an error log (the group re-subscribes).
    pub fn open(data_dir: &std::path::Path, shape: IndexShape, resolve: PluginResolver<'_>) -> std::io::Result<Self> {
        let groups_path = data_dir.join("groups.json");
        let subscriptions_path = data_dir.join("subscriptions.json");
        let mut state = State {
            groups: json::load(&groups_path)?,
            subscriptions: json::load(&subscriptions_path)?,
            compiled: BTreeMap::new(),
        };
        let stored: Vec<_> = state
            .subscriptions
            .groups
            .iter()
            .flat_map(|(g, topics)| topics.iter().map(move |(t, s)| (g.clone(), t.clone(), s.clone())))
            .collect();
        let this = Self { groups_path, subscriptions_path, shape, state: Mutex::new(State::default()) };
        for (group, topic, stored) in stored {
            let role = role_of(&state.groups, &group);
            let plugin = match &stored.plugin {
                None => None,
                Some(StoredPlugin { name, params }) => match resolve(name, params) {
                    Ok(filter) => Some(PluginUse { name: name.clone(), params: params.clone(), filter }),
                    Err(err) => {
                        tracing::error!(%group, %topic, plugin = %name, %err, "dropping a stored subscription whose plugin cannot be loaded");
                        continue;
                    }
                },
            };
            match this.compile(Expression::from(&stored.expression), role, plugin.as_ref()) {
                Ok(sub) => {
                    let registered = Registered {
                        subscription: Arc::new(sub),
                        version: stored.version,
                        stats: Arc::default(),
                        plugin,
                    };
                    state.compiled.insert((group, topic), registered);
                }
                Err(err) => {
                    tracing::error!(%group, %topic, %err, "dropping a stored subscription that no longer compiles")
                }
            }
        }
        *this.state.lock() = state;
        Ok(this)
    }

    /// Declares `group` shadow or production; recompiles its subscriptions. Returns the
    /// role stored. Blocks on the file's fsync; on an error nothing changes.
    pub fn set_shadow(&self, group: &str, shadow: bool) -> Result<bool, CoreError> {
        let mut state = self.state.lock();
        let mut next = state.groups.clone();
        next.shadow.insert(group.to_owned(), shadow);
        let role = role_of(&next, group);
        let mut recompiled = Vec::new();
        for ((g, t), registered) in state.compiled.iter().filter(|((g, _), _)| g == group) {
            let expression = registered.subscription.expression().clone();
            let sub = self.compile(expression, role, registered.plugin.as_ref())?;
            recompiled.push(((g.clone(), t.clone()), Arc::new(sub)));
        }
        json::store(&self.groups_path, &next).map_err(|err| CoreError::metadata("cannot persist groups.json", err))?;
        state.groups = next;
        for (key, sub) in recompiled {
            tracing::debug!(group = %key.0, ?role, "recompiled a subscription for the group's new role");
            if let Some(registered) = state.compiled.get_mut(&key) {
                registered.subscription = sub;
            }
        }
        Ok(shadow)
    }

    /// Sets `group`'s assignment strategy. Blocks on the file's fsync; on an error nothing changes.
    pub fn set_strategy(&self, group: &str, strategy: Strategy) -> Result<(), CoreError> {
        let mut state = self.state.lock();
        if strategy_of(&state.groups, group) == strategy {
            return Ok(());
        }
        let mut next = state.groups.clone();
        next.strategy.insert(group.to_owned(), strategy.as_str().to_owned());
        json::store(&self.groups_path, &next).map_err(|err| CoreError::metadata("cannot persist groups.json", err))?;
        state.groups = next;
        Ok(())
    }

    /// `group`'s assignment strategy.
    pub fn strategy(&self, group: &str) -> Strategy {
        strategy_of(&self.state.lock().groups, group)
    }

    /// Whether `group` is declared shadow.
    pub fn is_shadow(&self, group: &str) -> bool {
        role_of(&self.state.lock().groups, group) == TrafficRole::Shadow
    }

    /// Every group declared or subscribed, by name.
    pub fn names(&self) -> Vec<String> {
        let state = self.state.lock();
        let mut names: std::collections::BTreeSet<String> = state.groups.shadow.keys().cloned().collect();
        names.extend(state.groups.strategy.keys().cloned());
        names.extend(state.compiled.keys().map(|(g, _)| g.clone()));
        names.into_iter().collect()
    }

    fn compile(
        &self,
        expression: Expression,
        role: TrafficRole,
        plugin: Option<&PluginUse>,
    ) -> Result<Subscription, SubscriptionError> {
        let sub = Subscription::compile(expression, role, &self.shape)?;
        Ok(match plugin {
            Some(plugin) => sub.with_plugin(plugin.filter.clone(), &self.shape),
            None => sub,
        })
    }

    /// Registers `expression` (then `plugin`, if any) as `group`'s subscription to
    /// `topic`, replacing a different one (its version grows); the same one keeps
    /// its version. Blocks on the file's fsync; on an error nothing changes.
    pub fn subscribe(
        &self,
        group: &str,
        topic: &str,
        expression: Expression,
        plugin: Option<PluginUse>,
    ) -> Result<Registered, CoreError> {
        let mut state = self.state.lock();
        let key = (group.to_owned(), topic.to_owned());
        if let Some(existing) = state.compiled.get(&key).filter(|r| r.same_as(&expression, plugin.as_ref())) {
            return Ok(existing.clone());
        }
        let role = role_of(&state.groups, group);
        let sub = self.compile(expression, role, plugin.as_ref())?;
        let version = state.compiled.get(&key).map_or(1, |r| r.version + 1);
        let stored = StoredSubscription {
            expression: StoredExpression::from(sub.expression()),
            version,
            plugin: plugin.as_ref().map(|p| StoredPlugin { name: p.name.clone(), params: p.params.clone() }),
        };
        let mut next = SubscriptionsFile { groups: state.subscriptions.groups.clone() };
        next.groups.entry(key.0.clone()).or_default().insert(key.1.clone(), stored);
        self.store_subscriptions(&next)?;
        state.subscriptions = next;
        let stats = state.compiled.get(&key).map(|r| r.stats.clone()).unwrap_or_default();
        let registered = Registered { subscription: Arc::new(sub), version, stats, plugin };
        state.compiled.insert(key, registered.clone());
        Ok(registered)
    }

    /// Drops every group's subscription to a deleted `topic`. Blocks on the file's
    /// fsync; on an error nothing changes.
    pub fn remove_topic(&self, topic: &str) -> Result<(), CoreError> {
        let mut state = self.state.lock();
        if !state.subscriptions.groups.values().any(|topics| topics.contains_key(topic)) {
            return Ok(());
        }
        let mut next = SubscriptionsFile { groups: state.subscriptions.groups.clone() };
        for topics in next.groups.values_mut() {
            topics.remove(topic);
        }
        next.groups.retain(|_, topics| !topics.is_empty());
        self.store_subscriptions(&next)?;
        state.subscriptions = next;
        state.compiled.retain(|(_, t), _| t != topic);
        Ok(())
    }

    fn store_subscriptions(&self, file: &SubscriptionsFile) -> Result<(), CoreError> {
        json::store(&self.subscriptions_path, file)
            .map_err(|err| CoreError::metadata("cannot persist subscriptions.json", err))
    }

    /// The registered subscription of `group` to `topic`.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<Registered> {
        self.state.lock().compiled.get(&(group.to_owned(), topic.to_owned())).cloned()
    }

    /// Every registered subscription as (group, topic, registered), optionally of one group.
    pub fn all(&self, group: Option<&str>) -> Vec<(String, String, Registered)> {
        self.state
            .lock()
            .compiled
            .iter()
            .filter(|((g, _), _)| group.is_none_or(|group| g == group))
            .map(|((g, t), r)| (g.clone(), t.clone(), r.clone()))
            .collect()
    }
}

/// A stored strategy name that no longer parses (written by a newer broker) falls back to the default.
fn strategy_of(groups: &GroupsFile, group: &str) -> Strategy {
    groups.strategy.get(group).and_then(|name| name.parse().ok()).unwrap_or_default()
}

fn role_of(groups: &GroupsFile, group: &str) -> TrafficRole {
    if groups.shadow.get(group).copied().unwrap_or(false) { TrafficRole::Shadow } else { TrafficRole::Production }
}

#[cfg(test)]
mod tests {
    use weir_filters::BloomShape;

    use super::*;

    fn shape() -> IndexShape {
        IndexShape {
            message: BloomShape { bytes: 32, hashes: 4 },
            block_entries: 1024,
            block: BloomShape { bytes: 4096, hashes: 3 },
            shadow_property: "shadow".into(),
            entries_per_file: 1024,
        }
    }

    fn no_plugins(name: &str, _: &str) -> Result<Arc<dyn MessageFilter>, RegistryError> {
        Err(RegistryError::NotFound { name: name.to_owned() })
    }

    #[test]
    fn subscriptions_are_versioned_persisted_and_follow_the_group_role() {
        let dir = tempfile::tempdir().expect("tempdir");
        let groups = Groups::open(dir.path(), shape(), &no_plugins).expect("open");
        let sql = |s: &str| Expression::Sql(s.to_owned());
        assert_eq!(groups.subscribe("g", "t", sql("a = 1"), None).expect("valid").version, 1);
        assert_eq!(groups.subscribe("g", "t", sql("a = 1"), None).expect("valid").version, 1);
        assert_eq!(groups.subscribe("g", "t", sql("a = 2"), None).expect("valid").version, 2);
        assert!(matches!(groups.subscribe("g", "t", sql("a = "), None), Err(CoreError::Filter(_))));
        assert_eq!(groups.subscription("g", "t").expect("kept").version, 2, "a refused expression changes nothing");
        groups.set_shadow("g", true).expect("persist");
        assert_eq!(groups.subscription("g", "t").expect("kept").subscription.role(), TrafficRole::Shadow);
        drop(groups);
        let groups = Groups::open(dir.path(), shape(), &no_plugins).expect("reopen");
        let registered = groups.subscription("g", "t").expect("reloaded");
        assert_eq!((registered.version, registered.subscription.role()), (2, TrafficRole::Shadow));
        assert_eq!(*registered.subscription.expression(), sql("a = 2"));
    }

    /// A write that fails (here: a directory where the temporary file goes) returns an
    /// error and changes nothing, in memory or on disk.
    #[test]
    fn a_failed_write_leaves_memory_and_disk_agreeing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let groups = Groups::open(dir.path(), shape(), &no_plugins).expect("open");
        groups.subscribe("g", "t", Expression::Tag("a".into()), None).expect("valid");
        groups.set_strategy("g", Strategy::Sticky).expect("persist");
        std::fs::create_dir(dir.path().join("groups.json.tmp")).expect("block groups.json");
        std::fs::create_dir(dir.path().join("subscriptions.json.tmp")).expect("block subscriptions.json");
        assert!(matches!(groups.set_strategy("g", Strategy::RoundRobin), Err(CoreError::Metadata { .. })));
        assert!(matches!(groups.set_shadow("g", true), Err(CoreError::Metadata { .. })));
        let refused = groups.subscribe("g", "t", Expression::Tag("b".into()), None);
        assert!(matches!(refused, Err(CoreError::Metadata { .. })));
        let unchanged = |groups: &Groups| {
            let registered = groups.subscription("g", "t").expect("kept");
            assert_eq!(*registered.subscription.expression(), Expression::Tag("a".into()));
            assert_eq!((registered.version, registered.subscription.role()), (1, TrafficRole::Production));
            assert_eq!(groups.strategy("g"), Strategy::Sticky);
        };
        unchanged(&groups);
        drop(groups);
        unchanged(&Groups::open(dir.path(), shape(), &no_plugins).expect("reopen"));
    }

    /// A crash in the middle of a write leaves a partial temporary file beside the
    /// previous version: the previous version is what opens, and the next write works.
    #[test]
    fn a_torn_write_leaves_the_previous_version_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let groups = Groups::open(dir.path(), shape(), &no_plugins).expect("open");
        groups.subscribe("g", "t", Expression::Tag("a".into()), None).expect("valid");
        groups.set_strategy("g", Strategy::Sticky).expect("persist");
        drop(groups);
        std::fs::write(dir.path().join("groups.json.tmp"), b"{\"shadow\": {\"g\": tr").expect("torn");
        std::fs::write(dir.path().join("subscriptions.json.tmp"), b"{\"groups\": {\"g\"").expect("torn");
        let groups = Groups::open(dir.path(), shape(), &no_plugins).expect("reopen");
        assert_eq!(groups.strategy("g"), Strategy::Sticky);
        assert_eq!(
            *groups.subscription("g", "t").expect("kept").subscription.expression(),
            Expression::Tag("a".into())
        );
        groups.subscribe("g", "t", Expression::Tag("b".into()), None).expect("the next write replaces the torn file");
        drop(groups);
        let groups = Groups::open(dir.path(), shape(), &no_plugins).expect("reopen");
        assert_eq!(groups.subscription("g", "t").expect("kept").version, 2);
    }

    #[test]
    fn deleting_a_topic_drops_its_subscriptions_for_good() {
        let dir = tempfile::tempdir().expect("tempdir");
        let groups = Groups::open(dir.path(), shape(), &no_plugins).expect("open");
        groups.subscribe("g", "t", Expression::All, None).expect("valid");
        groups.subscribe("g", "u", Expression::All, None).expect("valid");
        groups.remove_topic("t").expect("persist");
        assert!(groups.subscription("g", "t").is_none());
        drop(groups);
        let groups = Groups::open(dir.path(), shape(), &no_plugins).expect("reopen");
        assert!(groups.subscription("g", "t").is_none() && groups.subscription("g", "u").is_some());
    }
}
