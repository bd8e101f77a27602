//! Consumer groups: declaring a group's role, registering its subscriptions, and
//! reading their filter statistics.

use std::sync::Arc;

use weir_filters::{Expression, FilterCounts, TrafficRole};

use super::{Core, CoreError, require_group};
use crate::meta::groups::PluginUse;

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
    /// The filter pipeline's counters.
    pub counts: FilterCounts,
}

impl Core {
    /// Declares `group` shadow or production (recompiling its subscriptions); returns the role stored.
    pub async fn create_group(self: &Arc<Self>, group: String, shadow: bool) -> Result<bool, CoreError> {
        require_group(&group)?;
        self.blocking(move |core| core.groups.set_shadow(&group, shadow)).await
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
                counts: registered.stats.snapshot(),
            })
            .collect()
    }
}
