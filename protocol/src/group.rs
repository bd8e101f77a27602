//! Consumer groups: declaring a group (production or shadow), registering a
//! group's subscription to a topic, and reading the filter statistics.

use crate::error::{DecodeError, EncodeError};
use crate::pull::FilterExpression;
use crate::wire::{Reader, Wire, Writer};

/// Declare a consumer group, or change its traffic role or assignment strategy. Answered
/// with the group as stored.
///
/// Format: string name, bool shadow, option\<string\> strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// The group's name.
    pub name: String,
    /// A shadow group receives only shadow (stress-test) traffic; any other group never does.
    pub shadow: bool,
    /// The group's assignment strategy: in a request, sets it (`None` keeps it); in the
    /// response, the broker fills in the current one.
    pub strategy: Option<String>,
}

impl Wire for GroupConfig {
    const MIN_LEN: usize = 2 + 1 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("group.name", &self.name)?;
        w.bool(self.shadow);
        w.opt_str("group.strategy", self.strategy.as_deref())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(GroupConfig {
            name: r.str("group.name")?,
            shadow: r.bool("group.shadow")?,
            strategy: r.opt_str("group.strategy")?,
        })
    }
}

/// Register (or replace) `consumer_group`'s subscription to `topic`. The broker
/// compiles it once; pulls then use it with [`FilterExpression::Subscribed`]. A bad
/// expression is refused with `INVALID_FILTER` and the position of the error.
///
/// Format: string consumer_group, string topic, [`FilterExpression`] (not `Subscribed`),
/// option\<string\> plugin, string plugin_params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// What the group selects.
    pub filter: FilterExpression,
    /// A filter plugin run on what `filter` lets through.
    pub plugin: Option<String>,
    /// The plugin's parameters (passed to its init; empty for none).
    pub plugin_params: String,
}

impl Wire for SubscribeRequest {
    const MIN_LEN: usize = 2 + 2 + FilterExpression::MIN_LEN + 1 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("subscribe.consumer_group", &self.consumer_group)?;
        w.str("subscribe.topic", &self.topic)?;
        self.filter.encode(w)?;
        w.opt_str("subscribe.plugin", self.plugin.as_deref())?;
        w.str("subscribe.plugin_params", &self.plugin_params)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(SubscribeRequest {
            consumer_group: r.str("subscribe.consumer_group")?,
            topic: r.str("subscribe.topic")?,
            filter: FilterExpression::decode(r)?,
            plugin: r.opt_str("subscribe.plugin")?,
            plugin_params: r.str("subscribe.plugin_params")?,
        })
    }
}

/// The registered subscription's version: it grows each time the expression changes.
///
/// Format: `u64` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeResponse {
    /// The subscription's version.
    pub version: u64,
}

impl Wire for SubscribeResponse {
    const MIN_LEN: usize = 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.version);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(SubscribeResponse { version: r.u64("subscribe.version")? })
    }
}

/// Ask for a group's filter statistics, for one topic or all.
///
/// Format: string consumer_group, option\<string\> topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatsRequest {
    /// The consumer group.
    pub consumer_group: String,
    /// Only this topic.
    pub topic: Option<String>,
}

impl Wire for GroupStatsRequest {
    const MIN_LEN: usize = 2 + 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("group_stats.consumer_group", &self.consumer_group)?;
        w.opt_str("group_stats.topic", self.topic.as_deref())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(GroupStatsRequest {
            consumer_group: r.str("group_stats.consumer_group")?,
            topic: r.opt_str("group_stats.topic")?,
        })
    }
}

/// Counters of the read-path pipeline for one (group, topic), since the broker started.
///
/// Format: twelve `u64`, in the order of the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilterCounters {
    /// ConsumeQueue entries the pipeline covered.
    pub examined: u64,
    /// Skipped on the tag hash (or the exact tag).
    pub skipped_by_tag: u64,
    /// Skipped on the message's bloom filter.
    pub skipped_by_bloom: u64,
    /// Skipped with their block, on the block summary.
    pub skipped_by_block: u64,
    /// Kept from the group by its traffic role (shadow or production).
    pub skipped_shadow: u64,
    /// Bodies read from the CommitLog.
    pub body_reads: u64,
    /// SQL92 evaluations.
    pub evaluated_sql: u64,
    /// SQL92 evaluations that were FALSE or NULL.
    pub sql_false: u64,
    /// SQL92 evaluations that failed.
    pub sql_errors: u64,
    /// Rejected by a filter plugin.
    pub plugin_rejected: u64,
    /// Failed filter plugin calls.
    pub plugin_errors: u64,
    /// Messages delivered.
    pub delivered: u64,
}

impl FilterCounters {
    fn fields(&self) -> [u64; 12] {
        [
            self.examined,
            self.skipped_by_tag,
            self.skipped_by_bloom,
            self.skipped_by_block,
            self.skipped_shadow,
            self.body_reads,
            self.evaluated_sql,
            self.sql_false,
            self.sql_errors,
            self.plugin_rejected,
            self.plugin_errors,
            self.delivered,
        ]
    }
}

impl FilterCounters {
    /// The counters from their wire order (the inverse of `fields`).
    pub(crate) fn from_fields(fields: [u64; 12]) -> Self {
        let [
            examined,
            skipped_by_tag,
            skipped_by_bloom,
            skipped_by_block,
            skipped_shadow,
            body_reads,
            evaluated_sql,
            sql_false,
            sql_errors,
            plugin_rejected,
            plugin_errors,
            delivered,
        ] = fields;
        FilterCounters {
            examined,
            skipped_by_tag,
            skipped_by_bloom,
            skipped_by_block,
            skipped_shadow,
            body_reads,
            evaluated_sql,
            sql_false,
            sql_errors,
            plugin_rejected,
            plugin_errors,
            delivered,
        }
    }
}

impl Wire for FilterCounters {
    const MIN_LEN: usize = 12 * 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.fields().into_iter().for_each(|v| w.u64(v));
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let mut v = [0u64; 12];
        for slot in &mut v {
            *slot = r.u64("filter_counters")?;
        }
        Ok(FilterCounters::from_fields(v))
    }
}

/// One (group, topic)'s subscription and its counters.
///
/// Format: string consumer_group, string topic, string expression (as subscribed,
/// e.g. `sql region = 'SH'`), `u64` version, bool shadow, [`FilterCounters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// The consumer group.
    pub consumer_group: String,
    /// The topic.
    pub topic: String,
    /// The subscription, human-readable.
    pub expression: String,
    /// The subscription's version.
    pub version: u64,
    /// The group is a shadow group.
    pub shadow: bool,
    /// The counters.
    pub counters: FilterCounters,
}

impl Wire for SubscriptionStats {
    const MIN_LEN: usize = 2 + 2 + 2 + 8 + 1 + FilterCounters::MIN_LEN;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("subscription_stats.consumer_group", &self.consumer_group)?;
        w.str("subscription_stats.topic", &self.topic)?;
        w.str("subscription_stats.expression", &self.expression)?;
        w.u64(self.version);
        w.bool(self.shadow);
        self.counters.encode(w)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(SubscriptionStats {
            consumer_group: r.str("subscription_stats.consumer_group")?,
            topic: r.str("subscription_stats.topic")?,
            expression: r.str("subscription_stats.expression")?,
            version: r.u64("subscription_stats.version")?,
            shadow: r.bool("subscription_stats.shadow")?,
            counters: FilterCounters::decode(r)?,
        })
    }
}

/// A group's statistics, one entry per subscribed topic.
///
/// Format: list\<[`SubscriptionStats`]\>.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupStatsResponse {
    /// One entry per (group, topic).
    pub subscriptions: Vec<SubscriptionStats>,
}

impl Wire for GroupStatsResponse {
    const MIN_LEN: usize = 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("group_stats.subscriptions", &self.subscriptions)
    }

    fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(GroupStatsResponse { subscriptions: r.list("group_stats.subscriptions")? })
    }
}
