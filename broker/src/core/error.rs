//! [`CoreError`]: why a core operation was refused or failed. Front doors map each
//! variant to their own error codes (the QUIC door in `quic::convert`).

use weir_filters::SubscriptionError;
use weir_plugins::RegistryError;
use weir_storage::{AppendError, ReadError};

/// Why a core operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The request is invalid (a bad name, an out-of-range queue, an empty batch…).
    #[error("{0}")]
    Invalid(String),
    /// What was looked up does not exist (or no longer: a delayed message delivered).
    #[error("{0}")]
    NotFound(String),
    /// The topic does not exist.
    #[error("no topic {0}")]
    UnknownTopic(String),
    /// A topic with that name already exists.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// The store refused or failed an append.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The store could not read what was asked for.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A subscription expression is invalid.
    #[error(transparent)]
    Filter(#[from] SubscriptionError),
    /// A pull asked for the group's registered subscription and there is none.
    #[error("group {group} has no subscription to {topic}; subscribe first")]
    SubscriptionNotFound {
        /// The consumer group.
        group: String,
        /// The topic.
        topic: String,
    },
    /// The broker knows nothing of the consumer group.
    #[error("no consumer group {0}")]
    UnknownGroup(String),
    /// A member's subscription differs from the one its group's live members hold.
    #[error(
        "member {member_id} subscribes to {topic} with `{expression}`, but group {group}'s live members hold \
         `{group_expression}`; replace it deliberately (weir group set-subscription) or use another group"
    )]
    SubscriptionConflict {
        /// The group.
        group: String,
        /// The refused member.
        member_id: String,
        /// The topic.
        topic: String,
        /// What the member asked for.
        expression: String,
        /// What the group holds.
        group_expression: String,
    },
    /// Another live session of the group uses this member id.
    #[error("member id {member_id} is in use by another live member of group {group}")]
    MemberIdInUse {
        /// The group.
        group: String,
        /// The member id.
        member_id: String,
    },
    /// The member is not live in the group (it left or expired): heartbeat to rejoin.
    #[error("{member_id} is not a live member of group {group}; heartbeat to rejoin")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id.
        member_id: String,
    },
    /// The member does not own the queue in its generation (a stale owner is fenced).
    #[error("{0}")]
    NotAssigned(String),
    /// The plugin registry refused or failed.
    #[error(transparent)]
    Plugin(#[from] RegistryError),
    /// Metadata (topics, groups, subscriptions, offsets) could not be written; memory
    /// and disk still agree on the state before the change.
    #[error("{what}")]
    Metadata {
        /// What was being written.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A broker task failed unexpectedly.
    #[error("{0}")]
    Internal(String),
}

impl CoreError {
    /// A metadata write failure.
    pub(crate) fn metadata(what: impl Into<String>, source: std::io::Error) -> Self {
        CoreError::Metadata { what: what.into(), source }
    }

    /// The message and each cause after it, joined with `: ` (what a client is told).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let cause_text = cause.to_string();
            if !text.ends_with(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            next = cause.source();
        }
        text
    }
}
