//! The broker core: the one state every front door (QUIC today, gRPC next) calls.
//!
//! [`Core`] owns the store, topic metadata, consumer groups and their
//! subscriptions, consumer offsets, the plugin registry and the long-poll
//! wake-ups, and exposes typed async operations with typed errors
//! ([`CoreError`]). It knows no wire format. Each family of operations lives in
//! its own file:
//!
//! - `topics`: create, update, delete and list topics.
//! - `send`: [`NewMessage`]s into the store.
//! - `pull`: a filtered page of a queue, held while nothing matches.
//! - `lookup`: messages by id or key, queue offsets, offsets by time.
//! - `offsets`: commit and fetch consumer offsets, lag, reset.
//! - `groups`: declare groups, register subscriptions, read filter statistics,
//!   list and describe groups.
//! - `membership`: heartbeats, leaving, queue locks, fencing of stale owners.
//! - `plugins`: the plugin registry.
//! - `delayed`: cancelling a pending delayed message.
//! - `retry`: failed deliveries (nacks) into retry copies, dead letters or discards, and
//!   groups' retry policies (dlq-policy plugins, redelivery limits).
//! - `dlq`: listing and resending dead letters.
//! - `status`: what the broker and its store are doing.
//!
//! Nothing here writes a file or waits on the disk on an async worker: metadata
//! writes and blocking store calls go through [`Core::blocking`] or a writer thread.

mod delayed;
mod dlq;
mod error;
mod groups;
mod lookup;
mod membership;
mod offsets;
mod plugins;
mod pull;
mod retry;
mod send;
mod status;
mod topics;

use std::sync::Arc;
use std::time::Instant;

pub use delayed::CancelledDelay;
pub use dlq::{DeadLetterEntry, DeadLetterPage, MAX_RESEND, Resend, ResendResult};
pub use error::CoreError;
pub use groups::{GroupSummary, SubscriptionInfo};
pub use membership::{HeartbeatArgs, MemberRef, MemberSubscription};
pub use offsets::{OffsetTarget, QueueLag};
pub use pull::{PullArgs, PullFilter, PullPage, PullStatus};
pub use retry::{Nack, NackOutcome, PolicyUse, RetryInfo};
pub use send::{Delivery, NewMessage};
pub use status::CoreStatus;
use weir_filters::{BloomIndex, IndexShape};
use weir_storage::Store;

use crate::config::BrokerConfig;
use crate::delay::DelayLevels;
use crate::delayed::{DeliveryThread, Timers};
use crate::error::BrokerError;
use crate::long_poll::ArrivalNotifier;
use crate::membership::Coordinator;
use crate::meta::groups::Groups;
use crate::meta::offsets::OffsetStore;
use crate::meta::policies::RetryPolicies;
pub use crate::meta::policies::Setting;
use crate::meta::resent::ResentLog;
pub use crate::meta::topics::Topic;
use crate::meta::topics::TopicTable;

/// The broker's state and operations, independent of any transport.
#[derive(Debug)]
pub struct Core {
    config: BrokerConfig,
    store: Arc<Store>,
    topics: TopicTable,
    offsets: OffsetStore,
    groups: Groups,
    blooms: Option<Arc<BloomIndex>>,
    index_shape: IndexShape,
    plugins: weir_plugins::Registry,
    /// Groups' retry policies and counters.
    retry_policies: RetryPolicies,
    /// Dead letters resent, and the lock that makes each resend happen once.
    resent: ResentLog,
    resending: parking_lot::Mutex<()>,
    arrivals: Arc<ArrivalNotifier>,
    delay_levels: DelayLevels,
    /// Delayed messages' timers (a dispatch hook) and the thread delivering them.
    timers: Arc<Timers>,
    delivery: parking_lot::Mutex<Option<DeliveryThread>>,
    coordinator: parking_lot::Mutex<Coordinator>,
    /// Grows on every membership or assignment change: held heartbeats and pulls re-check.
    membership_changes: tokio::sync::watch::Sender<u64>,
    started: Instant,
    /// Flips to true on shutdown: held pulls return at once.
    shutting_down: tokio::sync::watch::Sender<bool>,
}

impl Core {
    /// Opens the store (recovering after a crash), the metadata and the plugin
    /// registry under `config.data_dir`.
    pub async fn open(config: BrokerConfig) -> Result<Arc<Self>, BrokerError> {
        let io = |what: &'static str| move |source| BrokerError::Io { what: what.to_owned(), source };
        let shape = config.index_shape()?;
        let delay_levels = config.delay_levels()?;
        config.checked_timer()?;
        let timings = config.membership_timings()?;
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&config.data_dir).map_err(io("creating the data directory"))?;
            let arrivals = Arc::new(ArrivalNotifier::default());
            let timers = Arc::new(Timers::new(&config.data_dir, config.timer_precision_ms, config.max_delay_ms));
            let store_config = config.store_config();
            // The ConsumeQueues and the bloom index share one budget of mapped files, sized
            // from the descriptor limit: raise it first, as far as the process may.
            raise_descriptor_limit();
            let budget = weir_storage::MapBudget::for_config(&store_config);
            let blooms = if config.bloom_index {
                let dir = config.data_dir.join("bloomindex");
                let index =
                    BloomIndex::open(&dir, shape.clone(), budget.clone()).map_err(io("opening the bloom index"))?;
                Some(Arc::new(index))
            } else {
                None
            };
            // The bloom index writes before each ConsumeQueue entry, wake-ups come after it.
            let mut hooks: Vec<Arc<dyn weir_storage::DispatchHook>> = Vec::new();
            if let Some(blooms) = &blooms {
                hooks.push(blooms.clone());
            }
            hooks.push(arrivals.clone());
            hooks.push(timers.clone());
            let store = Store::open_with_hooks(store_config, budget, hooks)?;
            let topics = TopicTable::open(&config.data_dir).map_err(io("loading topics"))?;
            let offsets = OffsetStore::open(&config.data_dir).map_err(io("opening consumer offsets"))?;
            let host = weir_plugins::PluginHost::new(config.plugin_limits())?;
            let plugins = weir_plugins::Registry::open(&config.data_dir, host)?;
            let resolve = |name: &str, params: &str| {
                plugins.filter(name, params).map(|f| Arc::new(f) as Arc<dyn weir_filters::MessageFilter>)
            };
            let groups =
                Groups::open(&config.data_dir, shape.clone(), &resolve).map_err(io("loading consumer groups"))?;
            let resolve_policy = |name: &str, params: &str| plugins.dlq_policy(name, params);
            let retry_policies =
                RetryPolicies::open(&config.data_dir, &resolve_policy).map_err(io("loading retry policies"))?;
            let resent = ResentLog::open(&config.data_dir, |msg_id| store.message_by_id(msg_id).is_ok())
                .map_err(io("opening the resent dead letters"))?;
            let first_generation = offsets.epoch() << 32;
            let core = Arc::new(Core {
                config,
                store: Arc::new(store),
                topics,
                offsets,
                groups,
                blooms,
                index_shape: shape,
                plugins,
                retry_policies,
                resent,
                resending: parking_lot::Mutex::new(()),
                arrivals,
                delay_levels,
                timers: timers.clone(),
                delivery: parking_lot::Mutex::new(None),
                // Generations of this run start above every generation of an earlier one.
                coordinator: parking_lot::Mutex::new(Coordinator::new(timings, first_generation)),
                membership_changes: tokio::sync::watch::channel(0).0,
                started: Instant::now(),
                shutting_down: tokio::sync::watch::channel(false).0,
            });
            let delivery = DeliveryThread::spawn(Arc::downgrade(&core), timers)
                .map_err(io("starting the delayed-delivery thread"))?;
            *core.delivery.lock() = Some(delivery);
            Ok(core)
        })
        .await
        .map_err(|err| BrokerError::Task(err.to_string()))?
    }

    /// The configuration the broker started with.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The store (for the delayed-delivery thread).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The store's id (part of every message id).
    pub fn store_id(&self) -> u32 {
        self.store.store_id()
    }

    /// A receiver that turns true when the broker starts shutting down.
    pub fn shutting_down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutting_down.subscribe()
    }

    /// Answers every held request and refuses to hold new ones.
    pub fn begin_shutdown(&self) {
        self.shutting_down.send_replace(true);
        self.arrivals.wake_all();
    }

    /// Stops delayed delivery and the offset writer, closes the store (flushing it), then
    /// the timer store.
    pub async fn close(self: &Arc<Self>) -> Result<(), BrokerError> {
        self.begin_shutdown();
        let core = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(mut delivery) = core.delivery.lock().take() {
                delivery.stop();
            }
            core.offsets.close();
            core.store.close()?;
            core.timers.close()
        })
        .await
        .map_err(|err| BrokerError::Task(err.to_string()))?
        .map_err(|source| BrokerError::Io { what: "closing the store".into(), source })
    }

    /// Runs `work` on the blocking pool: for anything that writes a file or may
    /// wait on the disk.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Core) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, CoreError> {
        let core = self.clone();
        tokio::task::spawn_blocking(move || work(&core))
            .await
            .map_err(|err| CoreError::Internal(format!("broker task failed: {err}")))?
    }

    /// The topic, or `UnknownTopic`.
    fn existing_topic(&self, name: &str) -> Result<Topic, CoreError> {
        self.topics.get(name).ok_or_else(|| CoreError::UnknownTopic(name.to_owned()))
    }

    /// Checks that `queue_id` is a readable queue of `topic`.
    fn readable_queue(&self, topic: &str, queue_id: u32) -> Result<(), CoreError> {
        let t = self.existing_topic(topic)?;
        if !t.readable {
            return Err(CoreError::Invalid(format!("topic {topic} is not readable")));
        }
        if queue_id >= t.read_queues {
            return Err(CoreError::Invalid(format!(
                "topic {topic} has {} read queues; no queue {queue_id}",
                t.read_queues
            )));
        }
        Ok(())
    }
}

/// Checks that a consumer group name was given.
fn require_group(group: &str) -> Result<(), CoreError> {
    if group.is_empty() { Err(CoreError::Invalid("consumer group must not be empty".into())) } else { Ok(()) }
}

/// Raises the soft limit on open files to the hard limit: every mapped queue file
/// holds a descriptor, and the default soft limit (often 1024) would cap the broker
/// at a few hundred queues before it has to close and reopen their files.
fn raise_descriptor_limit() {
    // SAFETY: `rlimit` is plain old data and `getrlimit` only writes into it.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid resource id and out-pointer; `setrlimit` reads what `getrlimit` wrote.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if raised {
        tracing::debug!(open_files = limit.rlim_cur, "raised the open-file limit");
    }
}
