//! Consumer offsets: commit and fetch, per (group, topic, queue).

use super::{Core, CoreError, require_group};
use crate::meta::offsets::OffsetKey;

impl Core {
    /// Durably records that `group` will next consume `offset` of the queue.
    pub async fn commit_offset(&self, group: &str, topic: &str, queue_id: u32, offset: u64) -> Result<(), CoreError> {
        self.readable_queue(topic, queue_id)?;
        require_group(group)?;
        let key = OffsetKey { group: group.to_owned(), member: String::new(), topic: topic.to_owned(), queue_id };
        self.offsets.commit(vec![(key, offset)]).await
    }

    /// The offset `group` committed for the queue, if any.
    pub fn fetch_offset(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        let key = OffsetKey { group: group.to_owned(), member: String::new(), topic: topic.to_owned(), queue_id };
        self.offsets.fetch(&key).map(|committed| committed.offset)
    }
}
