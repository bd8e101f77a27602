//! The producer's cache of each topic's write queue count, fetched with ListTopics.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::error::Error;

/// How long a fetched queue count is trusted before it is fetched again, so a topic
/// update reaches running producers.
pub(crate) const ROUTE_TTL: Duration = Duration::from_secs(30);

/// Write queue counts per topic, refreshed after [`ROUTE_TTL`].
#[derive(Debug, Default)]
pub(crate) struct TopicRoutes {
    cache: std::sync::Mutex<HashMap<String, Route>>,
    /// Held while fetching, so a burst of sends to a new topic fetches its route once.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Copy)]
struct Route {
    write_queues: Option<NonZeroU32>,
    fetched_at: Instant,
}

impl TopicRoutes {
    /// The topic's write queue count; `None` when it has none (the broker then refuses
    /// sends with its own error).
    pub(crate) async fn write_queues(&self, client: &Client, topic: &str) -> Result<Option<NonZeroU32>, Error> {
        if let Some(write_queues) = self.cached(topic) {
            return Ok(write_queues);
        }
        let _fetching = self.fetching.lock().await;
        if let Some(write_queues) = self.cached(topic) {
            return Ok(write_queues);
        }
        let write_queues = NonZeroU32::new(client.topic(topic).await?.write_queues);
        let route = Route { write_queues, fetched_at: Instant::now() };
        self.cache.lock().expect("route cache lock").insert(topic.to_owned(), route);
        Ok(write_queues)
    }

    /// Forgets the topic's route, so the next send fetches it again.
    pub(crate) fn invalidate(&self, topic: &str) {
        self.cache.lock().expect("route cache lock").remove(topic);
    }

    fn cached(&self, topic: &str) -> Option<Option<NonZeroU32>> {
        let cache = self.cache.lock().expect("route cache lock");
        cache.get(topic).filter(|route| route.fetched_at.elapsed() < ROUTE_TTL).map(|route| route.write_queues)
    }
}
