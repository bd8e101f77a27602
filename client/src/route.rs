//! The producer's cache of each topic's write queue count, fetched with ListTopics.
//!
//! One ListTopics response carries every topic of the broker, so a fetch fills the cache
//! with all of them: a producer sending to N topics asks the broker once per
//! [`ROUTE_TTL`], not N times.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use weir_protocol::{ErrorCode, TopicConfig};

use crate::client::Client;
use crate::error::Error;

/// How long a fetched queue count is trusted before it is fetched again, so a topic
/// update reaches running producers.
pub(crate) const ROUTE_TTL: Duration = Duration::from_secs(30);

/// Write queue counts per topic, all from the broker's last topic list, refreshed after
/// [`ROUTE_TTL`] or when a topic is missing from it.
#[derive(Debug)]
pub(crate) struct TopicRoutes {
    state: std::sync::Mutex<State>,
    /// Held while fetching the topic list (never while merely reading the cache), so
    /// lookups that miss during a fetch wait for it and use its answer instead of
    /// fetching the same list again.
    fetching: tokio::sync::Mutex<()>,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// Each listed topic's write queue count (`None`: it has none).
    routes: HashMap<String, Option<NonZeroU32>>,
    /// When the fetch that filled `routes` started; `None` before the first.
    fetched_at: Option<Instant>,
    /// How many fetches have started.
    started: u64,
    /// The number (1-based, in `started` order) of the fetch that filled `routes`.
    filled: u64,
}

impl State {
    /// The topic's route if the list is still trusted and has it.
    fn fresh(&self, topic: &str, ttl: Duration) -> Option<Option<NonZeroU32>> {
        let fetched_at = self.fetched_at?;
        if fetched_at.elapsed() >= ttl {
            return None;
        }
        self.routes.get(topic).copied()
    }
}

impl Default for TopicRoutes {
    fn default() -> Self {
        Self::with_ttl(ROUTE_TTL)
    }
}

impl TopicRoutes {
    fn with_ttl(ttl: Duration) -> Self {
        TopicRoutes { state: std::sync::Mutex::default(), fetching: tokio::sync::Mutex::new(()), ttl }
    }

    /// The topic's write queue count; `None` when it has none (the broker then refuses
    /// sends with its own error); [`ErrorCode::UnknownTopic`] when the broker does not
    /// list the topic.
    pub(crate) async fn write_queues(&self, client: &Client, topic: &str) -> Result<Option<NonZeroU32>, Error> {
        self.write_queues_with(topic, || client.list_topics(true)).await
    }

    /// [`write_queues`](Self::write_queues), with `fetch` listing the broker's topics
    /// (system topics included) on a miss.
    async fn write_queues_with<F, Fut>(&self, topic: &str, fetch: F) -> Result<Option<NonZeroU32>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<TopicConfig>, Error>>,
    {
        // How many fetches had started when this lookup missed: only a list from a later
        // fetch shows the topic is missing (an earlier one may predate a topic created just
        // before the caller sent to it).
        let asked = {
            let state = self.state();
            if let Some(write_queues) = state.fresh(topic, self.ttl) {
                return Ok(write_queues);
            }
            state.started
        };
        let _fetching = self.fetching.lock().await;
        let number = {
            let mut state = self.state();
            // A fetch that was under way while this lookup waited has filled the cache.
            if let Some(write_queues) = state.fresh(topic, self.ttl) {
                return Ok(write_queues);
            }
            // A fetch that started after this lookup did not list the topic: the broker has no such topic.
            if state.filled > asked {
                return state.routes.get(topic).copied().ok_or_else(|| unknown_topic(topic));
            }
            state.started += 1;
            state.started
        };
        let fetched_at = Instant::now();
        let topics = fetch().await?;
        let routes: HashMap<String, Option<NonZeroU32>> =
            topics.into_iter().map(|config| (config.name, NonZeroU32::new(config.write_queues))).collect();
        let found = routes.get(topic).copied();
        let mut state = self.state();
        state.routes = routes;
        state.fetched_at = Some(fetched_at);
        state.filled = number;
        found.ok_or_else(|| unknown_topic(topic))
    }

    /// Forgets the topic's route, so the next send to it fetches the topic list again.
    pub(crate) fn invalidate(&self, topic: &str) {
        self.state().routes.remove(topic);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("route cache lock")
    }
}

/// The error [`Client::topic`] gives for a topic the broker does not list.
fn unknown_topic(topic: &str) -> Error {
    Error::Broker {
        code: ErrorCode::UnknownTopic,
        message: format!("topic `{topic}` is not in the broker's topic list"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use weir_protocol::TopicPermissions;

    use super::*;

    fn topic(name: &str, write_queues: u32) -> TopicConfig {
        TopicConfig {
            name: name.to_owned(),
            read_queues: write_queues,
            write_queues,
            permissions: TopicPermissions::READ_WRITE,
        }
    }

    /// A fake broker: its topic list, and how many times it was fetched.
    #[derive(Default)]
    struct Broker {
        topics: std::sync::Mutex<Vec<TopicConfig>>,
        fetches: AtomicUsize,
        /// When set, each fetch waits for a permit before it answers with the list as it
        /// was when the fetch started.
        gate: Option<tokio::sync::Semaphore>,
    }

    impl Broker {
        fn with_topics(topics: impl IntoIterator<Item = TopicConfig>) -> Arc<Self> {
            Arc::new(Broker { topics: std::sync::Mutex::new(topics.into_iter().collect()), ..Broker::default() })
        }

        fn gated(topics: impl IntoIterator<Item = TopicConfig>) -> Arc<Self> {
            Arc::new(Broker {
                topics: std::sync::Mutex::new(topics.into_iter().collect()),
                gate: Some(tokio::sync::Semaphore::new(0)),
                ..Broker::default()
            })
        }

        async fn list(&self) -> Result<Vec<TopicConfig>, Error> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let topics = self.topics.lock().unwrap().clone();
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            Ok(topics)
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }

        fn set(&self, topics: impl IntoIterator<Item = TopicConfig>) {
            *self.topics.lock().unwrap() = topics.into_iter().collect();
        }
    }

    async fn lookup(routes: &TopicRoutes, broker: &Broker, name: &str) -> Result<Option<NonZeroU32>, Error> {
        routes.write_queues_with(name, || broker.list()).await
    }

    fn queues(n: u32) -> Option<NonZeroU32> {
        NonZeroU32::new(n)
    }

    /// Waits until `broker` has seen `fetches` fetches.
    async fn fetches_reach(broker: &Broker, fetches: usize) {
        let reached = async {
            while broker.fetches() < fetches {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), reached).await.expect("fetches never started");
    }

    #[tokio::test]
    async fn one_fetch_routes_every_listed_topic() {
        let broker = Broker::with_topics((0..200).map(|i| topic(&format!("t{i}"), i % 8)));
        let routes = TopicRoutes::default();
        for i in 0..200 {
            assert_eq!(lookup(&routes, &broker, &format!("t{i}")).await.unwrap(), queues(i % 8));
        }
        assert_eq!(broker.fetches(), 1);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let broker = Broker::gated((0..200).map(|i| topic(&format!("t{i}"), 4)));
        let routes = Arc::new(TopicRoutes::default());
        let mut lookups = tokio::task::JoinSet::new();
        for i in 0..200 {
            let (routes, broker) = (routes.clone(), broker.clone());
            lookups.spawn(async move { lookup(&routes, &broker, &format!("t{i}")).await });
        }
        fetches_reach(&broker, 1).await;
        // Let the other lookups miss and queue up behind the fetch before it answers.
        tokio::time::sleep(Duration::from_millis(50)).await;
        broker.gate.as_ref().unwrap().add_permits(1000);
        while let Some(result) = lookups.join_next().await {
            assert_eq!(result.unwrap().unwrap(), queues(4));
        }
        assert_eq!(broker.fetches(), 1);
    }

    #[tokio::test]
    async fn unlisted_topic_is_unknown_and_fetched_again_next_time() {
        let broker = Broker::with_topics([topic("a", 2)]);
        let routes = TopicRoutes::default();
        assert_eq!(lookup(&routes, &broker, "a").await.unwrap(), queues(2));
        let error = lookup(&routes, &broker, "b").await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::UnknownTopic));
        assert_eq!(error.to_string(), unknown_topic("b").to_string());
        assert_eq!(broker.fetches(), 2);
        // Created on the broker: seen at once, without waiting for the cache to expire.
        broker.set([topic("a", 2), topic("b", 3)]);
        assert_eq!(lookup(&routes, &broker, "b").await.unwrap(), queues(3));
        assert_eq!(lookup(&routes, &broker, "a").await.unwrap(), queues(2));
        assert_eq!(broker.fetches(), 3);
    }

    #[tokio::test]
    async fn a_topic_without_write_queues_has_none() {
        let broker = Broker::with_topics([topic("closed", 0)]);
        let routes = TopicRoutes::default();
        assert_eq!(lookup(&routes, &broker, "closed").await.unwrap(), None);
        assert_eq!(lookup(&routes, &broker, "closed").await.unwrap(), None);
        assert_eq!(broker.fetches(), 1);
    }

    #[tokio::test]
    async fn a_miss_during_a_fetch_trusts_only_a_later_list_for_absence() {
        let broker = Broker::gated([topic("a", 1)]);
        let routes = Arc::new(TopicRoutes::default());
        let first = tokio::spawn({
            let (routes, broker) = (routes.clone(), broker.clone());
            async move { lookup(&routes, &broker, "a").await }
        });
        fetches_reach(&broker, 1).await;
        // Created while the first fetch is under way (its list predates it), then looked up.
        broker.set([topic("a", 1), topic("late", 5)]);
        let mut missing = tokio::task::JoinSet::new();
        for name in ["late", "late", "none", "none"] {
            let (routes, broker) = (routes.clone(), broker.clone());
            missing.spawn(async move { (name, lookup(&routes, &broker, name).await) });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        broker.gate.as_ref().unwrap().add_permits(1000);
        assert_eq!(first.await.unwrap().unwrap(), queues(1));
        while let Some(result) = missing.join_next().await {
            match result.unwrap() {
                ("late", found) => assert_eq!(found.unwrap(), queues(5)),
                (_, found) => assert_eq!(found.unwrap_err().code(), Some(ErrorCode::UnknownTopic)),
            }
        }
        // The first list, then one more that all four lookups share.
        assert_eq!(broker.fetches(), 2);
    }

    #[tokio::test]
    async fn routes_expire_together_and_pick_up_updates() {
        let broker = Broker::with_topics([topic("a", 2), topic("b", 2)]);
        let routes = TopicRoutes::with_ttl(Duration::from_millis(100));
        assert_eq!(lookup(&routes, &broker, "a").await.unwrap(), queues(2));
        broker.set([topic("a", 6), topic("b", 7)]);
        assert_eq!(lookup(&routes, &broker, "b").await.unwrap(), queues(2), "cached until expiry");
        assert_eq!(broker.fetches(), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(lookup(&routes, &broker, "b").await.unwrap(), queues(7));
        assert_eq!(lookup(&routes, &broker, "a").await.unwrap(), queues(6));
        assert_eq!(broker.fetches(), 2);
    }

    #[tokio::test]
    async fn invalidate_refetches_on_the_next_lookup() {
        let broker = Broker::with_topics([topic("a", 2), topic("b", 2)]);
        let routes = TopicRoutes::default();
        assert_eq!(lookup(&routes, &broker, "a").await.unwrap(), queues(2));
        broker.set([topic("b", 4)]);
        routes.invalidate("a");
        assert_eq!(lookup(&routes, &broker, "a").await.unwrap_err().code(), Some(ErrorCode::UnknownTopic));
        assert_eq!(lookup(&routes, &broker, "b").await.unwrap(), queues(4), "the refetch refreshed every topic");
        assert_eq!(broker.fetches(), 2);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_returned_and_the_next_lookup_fetches_again() {
        let routes = TopicRoutes::default();
        let failed =
            routes.write_queues_with("a", || async { Err(Error::Timeout { after: Duration::from_secs(1) }) }).await;
        assert!(matches!(failed, Err(Error::Timeout { .. })));
        let broker = Broker::with_topics([topic("a", 3)]);
        assert_eq!(lookup(&routes, &broker, "a").await.unwrap(), queues(3));
        assert_eq!(broker.fetches(), 1);
    }
}
