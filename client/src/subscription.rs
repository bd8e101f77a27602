//! [`Subscription`]: what a consumer group receives from a topic, registered
//! at the broker once so pulls neither resend nor reparse it.

use weir_protocol::{FilterExpression, Message};

/// The property that marks shadow (stress-test) traffic, as brokers are configured by default.
pub const SHADOW_PROPERTY: &str = "shadow";

/// Marks `message` as shadow traffic (property `shadow=true`): production groups never
/// receive it, shadow groups receive only such messages.
pub fn mark_shadow(message: &mut Message) {
    message.properties.retain(|(name, _)| name != SHADOW_PROPERTY);
    message.properties.push((SHADOW_PROPERTY.to_owned(), "true".to_owned()));
}

/// A consumer group's subscription to a topic: every message, a tag
/// expression or a SQL92 expression, and whether the group is a shadow group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    filter: FilterExpression,
    shadow: bool,
    plugin: Option<(String, String)>,
}

impl Subscription {
    /// Every message (`*`).
    pub fn all() -> Self {
        Self::default()
    }

    /// Messages whose tag is listed: `TagA`, `TagA || TagB`; `*` is every message.
    pub fn tag(expression: impl Into<String>) -> Self {
        let expression = expression.into();
        let filter = if expression.trim() == "*" { FilterExpression::All } else { FilterExpression::Tag(expression) };
        Self { filter, ..Self::default() }
    }

    /// Messages whose properties satisfy a SQL92 expression, e.g.
    /// `region = 'SH' AND amount > 100` (the tag is `TAGS`).
    pub fn sql(expression: impl Into<String>) -> Self {
        Self { filter: FilterExpression::Sql(expression.into()), ..Self::default() }
    }

    /// Runs filter plugin `name` (uploaded with `weir plugin upload`) on what the
    /// expression lets through, initialised with `params` (empty for none).
    pub fn plugin(mut self, name: impl Into<String>, params: impl Into<String>) -> Self {
        self.plugin = Some((name.into(), params.into()));
        self
    }

    /// The filter plugin and its parameters, if any.
    pub fn plugin_ref(&self) -> Option<(&str, &str)> {
        self.plugin.as_ref().map(|(name, params)| (name.as_str(), params.as_str()))
    }

    /// Declares the group a shadow group when subscribing: it then receives only
    /// shadow (stress-test) traffic, and production groups never do. A group
    /// subscribed without this keeps the role it has (`weir group create`).
    pub fn shadow(mut self) -> Self {
        self.shadow = true;
        self
    }

    /// The expression sent to the broker.
    pub fn filter(&self) -> &FilterExpression {
        &self.filter
    }

    /// Whether subscribing declares the group shadow.
    pub fn is_shadow(&self) -> bool {
        self.shadow
    }
}
