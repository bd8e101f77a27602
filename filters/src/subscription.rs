//! A consumer group's compiled subscription to one topic: tag expression or
//! SQL92, the group's traffic role (production or shadow), and an optional
//! stage-5 [`MessageFilter`]. Compiled once at subscribe time; every pull
//! reuses it.

use std::sync::Arc;

use weir_sql92::{Filter, ParseError, Properties, TAG_PROPERTY};
use weir_storage::RecordView;

use crate::bloom::BloomCondition;
use crate::index::IndexShape;
use crate::message_filter::MessageFilter;
use crate::tag::{TagFilter, TagFilterError};

/// What a subscription selects, as the consumer wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Expression {
    /// Every message (`*`).
    #[default]
    All,
    /// A tag expression: `TagA || TagB`.
    Tag(String),
    /// A SQL92 expression over properties (the tag is `TAGS`).
    Sql(String),
}

impl std::fmt::Display for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expression::All => f.write_str("*"),
            Expression::Tag(tags) => write!(f, "tag {tags}"),
            Expression::Sql(sql) => write!(f, "sql {sql}"),
        }
    }
}

/// Which traffic a consumer group receives (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficRole {
    /// Production traffic only: shadow messages are never delivered.
    #[default]
    Production,
    /// Shadow (stress-test) traffic only.
    Shadow,
}

impl TrafficRole {
    /// The role that receives a message that is (or is not) shadow traffic.
    pub fn of_message(shadow: bool) -> Self {
        if shadow { Self::Shadow } else { Self::Production }
    }
}

/// Why an expression cannot be subscribed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// A malformed tag expression.
    #[error("invalid tag expression: {0}")]
    Tag(#[from] TagFilterError),
    /// A SQL92 syntax or type error, with its position.
    #[error("invalid SQL92 expression: {0}")]
    Sql(#[from] ParseError),
}

/// A compiled subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    expression: Expression,
    role: TrafficRole,
    tag: TagFilter,
    sql: Option<Filter>,
    plugin: Option<Arc<dyn MessageFilter>>,
    /// The necessary condition against per-message blooms.
    message_condition: BloomCondition,
    /// The same against block summaries.
    block_condition: BloomCondition,
}

impl Subscription {
    /// Compiles `expression` for a group of `role`, against blooms of `shape`.
    pub fn compile(expression: Expression, role: TrafficRole, shape: &IndexShape) -> Result<Self, SubscriptionError> {
        let (tag, sql) = match &expression {
            Expression::All => (TagFilter::ALL, None),
            Expression::Tag(tags) => (TagFilter::parse(tags)?, None),
            Expression::Sql(source) => (TagFilter::ALL, Some(Filter::parse(source)?)),
        };
        let condition = sql.as_ref().map(|f| f.necessary_condition().clone()).unwrap_or(weir_sql92::Condition::Always);
        Ok(Self {
            message_condition: BloomCondition::compile(&condition, shape.message),
            block_condition: BloomCondition::compile(&condition, shape.block),
            expression,
            role,
            tag,
            sql,
            plugin: None,
        })
    }

    /// Adds a stage-5 filter after the expression; its index hints join the bloom conditions.
    pub fn with_plugin(mut self, plugin: Arc<dyn MessageFilter>, shape: &IndexShape) -> Self {
        let hints = plugin.index_hints().to_vec();
        self.message_condition = self.message_condition.and_all(&hints, shape.message);
        self.block_condition = self.block_condition.and_all(&hints, shape.block);
        self.plugin = Some(plugin);
        self
    }

    /// The expression as subscribed.
    pub fn expression(&self) -> &Expression {
        &self.expression
    }
    /// The group's traffic role.
    pub fn role(&self) -> TrafficRole {
        self.role
    }
    pub(crate) fn tag(&self) -> &TagFilter {
        &self.tag
    }
    pub(crate) fn sql(&self) -> Option<&Filter> {
        self.sql.as_ref()
    }
    pub(crate) fn plugin(&self) -> Option<&Arc<dyn MessageFilter>> {
        self.plugin.as_ref()
    }
    pub(crate) fn message_condition(&self) -> &BloomCondition {
        &self.message_condition
    }
    pub(crate) fn block_condition(&self) -> &BloomCondition {
        &self.block_condition
    }

    /// Whether the subscription delivers `view`, evaluated on the record alone
    /// with no pre-filter: the reference the pipeline must agree with.
    pub fn matches(&self, view: &RecordView<'_>, shadow_property: &str) -> bool {
        TrafficRole::of_message(crate::index::is_shadow(view, shadow_property)) == self.role
            && self.tag.matches(view.tag())
            && self.sql.as_ref().is_none_or(|sql| sql.evaluate(&RecordProperties(*view)) == Ok(weir_sql92::Truth::True))
    }
}

/// A stored record's properties as SQL92 sees them, decoded in place (the tag is `TAGS`).
#[derive(Debug, Clone, Copy)]
pub struct RecordProperties<'a>(pub RecordView<'a>);

impl Properties for RecordProperties<'_> {
    fn property(&self, name: &str) -> Option<&str> {
        if name == TAG_PROPERTY { Some(self.0.tag()).filter(|tag| !tag.is_empty()) } else { self.0.property(name) }
    }
}
