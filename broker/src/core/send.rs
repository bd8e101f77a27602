//! Sending: [`NewMessage`]s checked against their topics, placed on a queue and
//! appended to the store in one batch.

use std::net::SocketAddr;
use std::num::NonZeroU8;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use weir_storage::{AppendError, AppendResult, AppendStatus};

use super::{Core, CoreError};
use crate::delayed::{self, RESERVED_PREFIX};

/// When a message becomes visible to consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// As soon as it is stored.
    #[default]
    Immediate,
    /// After the delay of this level of `delay_levels` (RocketMQ's: 1 = 1 s … 18 = 2 h;
    /// beyond the list, the last level).
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
    ///
    /// A message due later (a delay level, or a delivery time ahead) is stored in the
    /// timer topic until then (see [`crate::delayed`]): its result carries the id of
    /// that record (the id to cancel it with), its real queue, and its offset in the
    /// timer queue. One due now or earlier is stored as usual; one due further ahead
    /// than `max_delay_ms` is refused.
    pub async fn send(
        self: &Arc<Self>,
        messages: Vec<NewMessage>,
        born_host: SocketAddr,
    ) -> Result<Vec<AppendResult>, CoreError> {
        if messages.is_empty() {
            return Err(CoreError::Invalid("empty send batch".into()));
        }
        let mut batch = Vec::with_capacity(messages.len());
        let mut real_queues = Vec::with_capacity(messages.len());
        let now = delayed::now_ms();
        for m in messages {
            let (message, real_queue) = self.placed(m, born_host, now)?;
            batch.push(message);
            real_queues.push(real_queue);
        }
        // A page-cache append takes microseconds: do it on this task.
        let (mut results, durable) = self.store.append_batch_deferred(&batch)?;
        for (result, queue_id) in results.iter_mut().zip(real_queues) {
            result.queue_id = queue_id;
        }
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

    /// `m` as a record of its queue (or of the timer topic, when due after `now_ms`),
    /// once its topic accepts it; and the queue it is for.
    fn placed(
        &self,
        m: NewMessage,
        born_host: SocketAddr,
        now_ms: u64,
    ) -> Result<(weir_storage::Message, u32), CoreError> {
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
        if let Some((name, _)) = m.properties.iter().find(|(name, _)| name.starts_with(RESERVED_PREFIX)) {
            return Err(CoreError::Invalid(format!(
                "property {name:?}: names starting with {RESERVED_PREFIX} are reserved for the broker"
            )));
        }
        let due_ms = self.due_ms(m.delivery, now_ms)?;
        let message = weir_storage::Message {
            topic: m.topic,
            queue_id,
            tag: m.tag.unwrap_or_default(),
            keys: m.keys,
            properties: m.properties,
            body: m.body,
            born_timestamp_ms: i64::try_from(m.born_timestamp_ms).unwrap_or(i64::MAX),
            born_host,
            flags: m.flags,
        };
        Ok(match due_ms {
            Some(due_ms) if due_ms > now_ms => (delayed::to_timer_record(message, due_ms), queue_id),
            _ => (message, queue_id),
        })
    }

    /// When a message is due (`None`: immediate), refused beyond `max_delay_ms` from now.
    fn due_ms(&self, delivery: Delivery, now_ms: u64) -> Result<Option<u64>, CoreError> {
        let max = self.config.max_delay_ms;
        let due_ms = match delivery {
            Delivery::Immediate => return Ok(None),
            Delivery::DelayLevel(level) => {
                let delay = self.delay_levels.delay(u32::from(level.get()));
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                if delay_ms > max {
                    return Err(CoreError::Invalid(format!(
                        "delay level {level} is {delay_ms} ms, beyond the broker's max_delay_ms of {max} ms"
                    )));
                }
                now_ms.saturating_add(delay_ms)
            }
            Delivery::DeliverAtMs(at) => {
                if at.saturating_sub(now_ms) > max {
                    return Err(CoreError::Invalid(format!(
                        "delivery time {at} is {} ms ahead, beyond the broker's max_delay_ms of {max} ms",
                        at - now_ms
                    )));
                }
                at
            }
        };
        Ok(Some(due_ms))
    }
}
