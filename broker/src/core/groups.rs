//! Consumer groups: declaring a group's role, registering its subscriptions, and
//! reading their filter statistics.

use std::sync::Arc;

use weir_filters::{Expression, FilterCounts, TrafficRole};

use super::{Core, CoreError, RetryInfo, require_group};
use crate::membership::{ConsumeMode, GroupInfo, Strategy};
use crate::meta::groups::PluginUse;

/// A consumer group, for operators.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    /// The group's name.
    pub name: String,
    /// Its assignment strategy.
    pub strategy: Strategy,
    /// Whether it receives only shadow traffic.
    pub shadow: bool,
    /// Its registered subscriptions.
    pub subscriptions: Vec<SubscriptionInfo>,
    /// Its live state (generation, members, conflicts), if it has any.
    pub live: Option<GroupInfo>,
    /// Its retry policy and what its failures became.
    pub retry: RetryInfo,
}

impl GroupSummary {
    /// The mode of its live members (clustering when none).
    pub fn mode(&self) -> ConsumeMode {
        self.live.as_ref().map(|live| live.mode).unwrap_or_default()
    }
}

/// A registered subscription and what its filters did.
#[derive(Debug, Clone)]
pub struct SubscriptionInfo {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The expression, as written.
    pub expression: String,
    /// Grows each time the expression changes.
    pub version: u64,
    /// Whether the group receives only shadow traffic.
    pub shadow: bool,
    /// The filter plugin after the expression, if any.
    pub plugin: Option<String>,
    /// The filter pipeline's counters.
    pub counts: FilterCounts,
}

impl Core {
    /// Declares `group` shadow or production (recompiling its subscriptions) and, if
    /// given, sets its assignment strategy (rebalancing live members). Returns the
    /// role and strategy stored.
    pub async fn create_group(
        self: &Arc<Self>,
        group: String,
        shadow: bool,
        strategy: Option<&str>,
    ) -> Result<(bool, Strategy), CoreError> {
        require_group(&group)?;
        let strategy =
            strategy.map(str::parse::<Strategy>).transpose().map_err(|err| CoreError::Invalid(err.to_string()))?;
        let name = group.clone();
        let stored = self
            .blocking(move |core| {
                let shadow = core.groups.set_shadow(&name, shadow)?;
                if let Some(strategy) = strategy {
                    core.groups.set_strategy(&name, strategy)?;
                }
                Ok((shadow, core.groups.strategy(&name)))
            })
            .await?;
        if strategy.is_some() {
            let topics: Vec<String> = self.subscriptions(Some(&group), None).into_iter().map(|s| s.topic).collect();
            for topic in topics {
                self.rebalance_topic(&topic);
            }
        }
        Ok(stored)
    }

    /// Every group declared, subscribed or live.
    pub fn list_groups(&self) -> Vec<GroupSummary> {
        let mut names = self.groups.names();
        names.extend(self.coordinator.lock().group_names());
        names.extend(self.offsets.groups());
        names.extend(self.retry_policies.groups());
        names.sort();
        names.dedup();
        names.into_iter().filter_map(|name| self.describe_group(&name).ok()).collect()
    }

    /// One group: its settings, subscriptions and live state. `UnknownGroup` if the
    /// broker knows nothing of it.
    pub fn describe_group(&self, group: &str) -> Result<GroupSummary, CoreError> {
        self.require_known_group(group)?;
        let subscriptions = self.subscriptions(Some(group), None);
        let live = self.describe_group_state(group);
        Ok(GroupSummary {
            name: group.to_owned(),
            strategy: self.groups.strategy(group),
            shadow: self.groups.is_shadow(group),
            subscriptions,
            live,
            retry: self.retry_info(group),
        })
    }

    /// `UnknownGroup` unless the group was declared, subscribed, has members or
    /// conflicts, or committed an offset.
    pub(super) fn require_known_group(&self, group: &str) -> Result<(), CoreError> {
        let known = self.groups.names().iter().any(|n| n == group)
            || self.coordinator.lock().knows(group)
            || self.offsets.has_group(group)
            || self.retry_policies.groups().iter().any(|n| n == group);
        if known { Ok(()) } else { Err(CoreError::UnknownGroup(group.to_owned())) }
    }

    /// The group's live state, if it has members or recent conflicts.
    pub(super) fn describe_group_state(&self, group: &str) -> Option<GroupInfo> {
        self.coordinator.lock().describe(group, &self.directory(), std::time::Instant::now())
    }

    /// Registers (or replaces) `group`'s subscription to `topic`: `expression`, then
    /// the filter plugin `plugin` with its parameters, if any. Returns its version.
    pub async fn subscribe(
        self: &Arc<Self>,
        group: String,
        topic: String,
        expression: Expression,
        plugin: Option<(String, String)>,
    ) -> Result<u64, CoreError> {
        self.existing_topic(&topic)?;
        require_group(&group)?;
        self.blocking(move |core| {
            let plugin = match plugin {
                Some((name, params)) => {
                    let filter = Arc::new(core.plugins.filter(&name, &params)?);
                    Some(PluginUse { name, params, filter })
                }
                None => None,
            };
            Ok(core.groups.subscribe(&group, &topic, expression, plugin)?.version)
        })
        .await
    }

    /// Every registered subscription, of one group (and topic) or of all.
    pub fn subscriptions(&self, group: Option<&str>, topic: Option<&str>) -> Vec<SubscriptionInfo> {
        self.groups
            .all(group)
            .into_iter()
            .filter(|(_, t, _)| topic.is_none_or(|topic| topic == t))
            .map(|(group, topic, registered)| SubscriptionInfo {
                shadow: registered.subscription.role() == TrafficRole::Shadow,
                group,
                topic,
                expression: registered.subscription.expression().to_string(),
                version: registered.version,
                plugin: registered.plugin.as_ref().map(|p| p.name.clone()),
                counts: registered.stats.snapshot(),
            })
            .collect()
    }
}
