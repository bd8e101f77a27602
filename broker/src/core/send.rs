//! Sending: [`NewMessage`]s checked against their topics, placed on a queue and
//! appended to the store in one batch.

use std::net::SocketAddr;
use std::num::NonZeroU8;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use weir_storage::{AppendError, AppendResult, AppendStatus};

use super::{Core, CoreError};

/// When a message becomes visible to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// As soon as it is stored.
    #[default]
    Immediate,
    /// After the delay of this RocketMQ delay level (1 = 1 s … 18 = 2 h).
    DelayLevel(NonZeroU8),
    /// At this Unix time in milliseconds.
    DeliverAtMs(u64),
}

/// A message as a producer sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The topic.
    pub topic: String,
    /// The queue the producer chose; the broker picks one round-robin if none.
    pub queue_id: Option<u32>,
    /// The tag, if any.
    pub tag: Option<String>,
    /// Business keys, indexed for lookup.
    pub keys: Vec<String>,
    /// User properties, in order.
    pub properties: Vec<(String, String)>,
    /// The payload.
    pub body: Bytes,
    /// When the producer created it, Unix ms.
    pub born_timestamp_ms: u64,
    /// Flag bits (see `weir_storage::record::flags`).
    pub flags: u32,
    /// When it becomes visible.
    pub delivery: Delivery,
}

impl Core {
    /// Appends `messages` from the producer at `born_host`, all or none. Under sync
    /// flush the answer waits for the fsync that covers the batch (`FlushDiskTimeout`
    /// after `flush_timeout_ms`).
    pub async fn send(
        self: &Arc<Self>,
        messages: Vec<NewMessage>,
        born_host: SocketAddr,
    ) -> Result<Vec<AppendResult>, CoreError> {
        if messages.is_empty() {
            return Err(CoreError::Invalid("empty send batch".into()));
        }
        let mut batch = Vec::with_capacity(messages.len());
        for m in messages {
            batch.push(self.placed(m, born_host)?);
        }
        // A page-cache append takes microseconds: do it on this task.
        let (mut results, durable) = self.store.append_batch_deferred(&batch)?;
        // Under sync flush, wait for the fsync that covers the batch without holding a
        // thread: the flusher wakes this task, and every waiting send shares its flush.
        if let Some(durable) = durable {
            let timeout = Duration::from_millis(self.config.flush_timeout_ms);
            match tokio::time::timeout(timeout, durable).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(AppendError::Failed(why).into()),
                Err(_) => results.iter_mut().for_each(|r| r.status = AppendStatus::FlushDiskTimeout),
            }
        }
        Ok(results)
    }

    /// `m` as a record of its queue, once its topic accepts it.
    fn placed(&self, m: NewMessage, born_host: SocketAddr) -> Result<weir_storage::Message, CoreError> {
        let topic = self.existing_topic(&m.topic)?;
        if !topic.writable {
            return Err(CoreError::Invalid(format!("topic {} is not writable", m.topic)));
        }
        let queue_id = match m.queue_id {
            Some(q) if q < topic.write_queues => q,
            Some(q) => {
                return Err(CoreError::Invalid(format!(
                    "topic {} has {} write queues; no queue {q}",
                    m.topic, topic.write_queues
                )));
            }
            None => self.topics.pick_queue(&topic),
        };
        if m.delivery != Delivery::Immediate {
            return Err(CoreError::Invalid("delayed delivery is not supported by this broker yet".into()));
        }
        Ok(weir_storage::Message {
            topic: m.topic,
            queue_id,
            tag: m.tag.unwrap_or_default(),
            keys: m.keys,
            properties: m.properties,
            body: m.body,
            born_timestamp_ms: i64::try_from(m.born_timestamp_ms).unwrap_or(i64::MAX),
            born_host,
            flags: m.flags,
        })
    }
}
