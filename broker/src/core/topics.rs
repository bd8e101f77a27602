//! Topic operations. Metadata writes run on the blocking pool.

use std::sync::Arc;

use super::{Core, CoreError, Topic};

impl Core {
    /// Creates a topic.
    pub async fn create_topic(self: &Arc<Self>, name: String, topic: Topic) -> Result<Topic, CoreError> {
        self.blocking(move |core| core.topics.create(&name, topic)).await
    }

    /// Replaces a topic's queue counts and permissions.
    pub async fn update_topic(self: &Arc<Self>, name: String, topic: Topic) -> Result<Topic, CoreError> {
        let changed = name.clone();
        let updated = self.blocking(move |core| core.topics.update(&name, topic)).await?;
        self.rebalance_topic(&changed);
        Ok(updated)
    }

    /// Deletes a topic and everything kept for it: its queues and indexes (the store
    /// never serves its records again), its groups' offsets and subscriptions. Held
    /// pulls on it wake up to `UnknownTopic`.
    pub async fn delete_topic(self: &Arc<Self>, name: String) -> Result<(), CoreError> {
        // First the metadata: sends and pulls get UnknownTopic from here on.
        let deleted = name.clone();
        self.blocking(move |core| {
            core.topics.delete(&deleted)?;
            core.store.delete_topic(&deleted).map_err(|err| {
                CoreError::Internal(format!(
                    "topic {deleted} is deleted but its queues could not all be removed: {err}"
                ))
            })
        })
        .await?;
        self.rebalance_topic(&name);
        self.offsets.remove_topic(&name).await?;
        self.blocking(move |core| core.groups.remove_topic(&name)).await
    }

    /// The topic's metadata.
    pub fn topic(&self, name: &str) -> Result<Topic, CoreError> {
        self.existing_topic(name)
    }

    /// Topics in name order; system topics only with `include_system`.
    pub fn list_topics(&self, include_system: bool) -> Vec<(String, Topic)> {
        self.topics.list(include_system)
    }
}
