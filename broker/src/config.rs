//! Broker configuration: one typed struct, read from a TOML file and
//! overridden by command-line flags. Every field has a production default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_filters::{BloomShape, IndexShape};
use weir_plugins::Limits;
use weir_storage::{FlushMode, StoreConfig};

use crate::delay::DelayLevels;
use crate::error::BrokerError;

/// When a send is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FlushKind {
    /// After the page cache; flushed every `flush_interval_ms`.
    #[default]
    Async,
    /// After fsync, with group commit.
    Sync,
}

/// Everything that tunes a broker. TOML keys are the field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Data directory (default `./weir-data`).
    pub data_dir: PathBuf,
    /// UDP address to listen on (default `127.0.0.1:7420`).
    pub listen: SocketAddr,
    /// Flush policy (default `async`).
    pub flush: FlushKind,
    /// Background flush interval under async flush, in ms (default 500).
    pub flush_interval_ms: u64,
    /// How long a sync-flush send waits for its fsync before answering `FLUSH_DISK_TIMEOUT`, in ms (default 5000).
    pub flush_timeout_ms: u64,
    /// CommitLog segment size in bytes (default 1 GiB; fixed when the store is created).
    pub segment_size: u64,
    /// Largest message body in bytes (default 4 MiB).
    pub max_message_size: usize,
    /// Retention of sealed CommitLog segments, in hours (default 72).
    pub retention_hours: u64,
    /// Disk-usage fraction above which sends are refused (default 0.90).
    pub disk_high_water: f64,
    /// Free bytes kept on the data directory's file system: sends are refused below
    /// it, so the queue and index files of accepted messages can still grow (default 64 MiB).
    pub disk_reserve_bytes: u64,
    /// Most ConsumeQueue and bloom-index files kept open and mapped; the least recently
    /// used close beyond it and reopen on demand (0, the default: half of what
    /// `vm.max_map_count` and the descriptor limit allow).
    pub max_mapped_queue_files: usize,
    /// PEM certificate chain to present; default: `<data_dir>/tls/cert.pem`, generated self-signed on first start.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`; default `<data_dir>/tls/key.pem`.
    pub tls_key: Option<PathBuf>,
    /// Concurrent request streams per connection (QUIC stream credit, default 1024).
    pub max_streams_per_connection: u32,
    /// Concurrent client connections (default 10 000); more are refused.
    pub max_connections: usize,
    /// Longest a pull may be held by long polling, in ms (default 30 000).
    pub max_pull_wait_ms: u32,
    /// Most messages one pull returns (default 1024).
    pub max_pull_messages: u32,
    /// How often consumer group members heartbeat, in ms (default 5 000; members are told).
    pub heartbeat_interval_ms: u64,
    /// A member silent this long is removed from its group and its queues go to the
    /// others, in ms (default 15 000: three heartbeats).
    pub member_timeout_ms: u64,
    /// How long an orderly consumer's queue lock lasts unless renewed, in ms (default 60 000).
    pub queue_lock_expiry_ms: u64,
    /// A connection with no traffic is closed after this many ms (default 60 000; clients keep it alive).
    pub idle_timeout_ms: u64,
    /// Async worker threads serving connections and requests; 0 (the default) means one
    /// fewer than the machine's cores, at least one. The storage engine runs its own
    /// threads (dispatcher, flusher, segment pre-allocator) and needs the core left over:
    /// on 2 cores, one worker served 17 % more acknowledged sends and 10 % faster drains
    /// than two.
    pub worker_threads: usize,
    /// Send and receive buffer of the UDP socket, in bytes (default 4 MiB). Bursts of
    /// pull responses overflow the kernel's default (about 200 KiB) and every drop costs a
    /// QUIC loss recovery; the kernel caps the size at `net.core.rmem_max`/`wmem_max`.
    pub udp_buffer_bytes: usize,
    /// Largest UDP payload the broker sends and accepts, in bytes (default 4 400; 1 200 to
    /// 6 500). Path MTU discovery searches up to it, so on an Ethernet path packets stay
    /// near 1 452 bytes. Fewer, larger packets cost less per message; above 6 500 a
    /// ten-datagram GSO write passes 64 KiB and Linux drops it.
    pub max_udp_payload: u16,
    /// Build the bloom index at dispatch (default true). Off saves its disk space
    /// (about 44 bytes per message) and dispatch time; SQL92 subscriptions then read every body.
    pub bloom_index: bool,
    /// Use the read path's pre-filters: block summaries, tag hashes and blooms (default true).
    /// `false` reads and evaluates every message: only for comparisons.
    pub prefilter: bool,
    /// Bytes of each message's bloom filter (default 32; a multiple of 8).
    pub bloom_bytes: usize,
    /// Hash functions per term in message blooms (default 6).
    pub bloom_hashes: u32,
    /// Queue entries per block summary (default 1024).
    pub bloom_block_entries: u64,
    /// Bytes of each block summary's bloom filter (default 4096; a multiple of 8).
    pub bloom_block_bytes: usize,
    /// Hash functions per term in block summaries (default 3).
    pub bloom_block_hashes: u32,
    /// The property that marks shadow (stress-test) traffic when `true` (default `shadow`).
    pub shadow_property: String,
    /// Largest plugin module accepted at upload, in bytes (default 10 MiB).
    pub plugin_max_module_bytes: usize,
    /// Fuel for one plugin call, set before every call (default 10 000 000, about 10 ms).
    pub plugin_fuel_per_call: u64,
    /// Largest linear memory of one plugin instance, in bytes (default 16 MiB).
    pub plugin_max_memory_bytes: usize,
    /// Consecutive failed calls after which a subscription's plugin is disabled (default 5).
    pub plugin_max_consecutive_failures: u32,
    /// Delay levels for delayed sends and retries, durations separated by spaces
    /// (default RocketMQ's `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`;
    /// a level beyond the list uses the last one).
    pub delay_levels: String,
    /// Failed deliveries of a message before it goes to the group's dead-letter queue
    /// (default 16; groups may override it).
    pub max_reconsume_times: u32,
    /// Longest delay a send may ask for, in ms (default 3 days).
    pub max_delay_ms: u64,
    /// Tick of the delayed-delivery timer, in ms (default 1 000): a delayed message is
    /// delivered within about one tick after it is due. Fixed when the timer store is
    /// created (by the first delayed message).
    pub timer_precision_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self::new("weir-data")
    }
}

impl BrokerConfig {
    /// The defaults with `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7420)),
            flush: FlushKind::Async,
            flush_interval_ms: 500,
            flush_timeout_ms: 5000,
            segment_size: 1 << 30,
            max_message_size: 4 << 20,
            retention_hours: 72,
            disk_high_water: 0.90,
            disk_reserve_bytes: 64 << 20,
            max_mapped_queue_files: 0,
            tls_cert: None,
            tls_key: None,
            max_streams_per_connection: 1024,
            max_connections: 10_000,
            max_pull_wait_ms: 30_000,
            max_pull_messages: 1024,
            heartbeat_interval_ms: 5_000,
            member_timeout_ms: 15_000,
            queue_lock_expiry_ms: 60_000,
            idle_timeout_ms: 60_000,
            worker_threads: 0,
            udp_buffer_bytes: 4 << 20,
            max_udp_payload: weir_protocol::DEFAULT_MAX_UDP_PAYLOAD,
            bloom_index: true,
            prefilter: true,
            bloom_bytes: 32,
            bloom_hashes: 6,
            bloom_block_entries: 1024,
            bloom_block_bytes: 4096,
            bloom_block_hashes: 3,
            shadow_property: "shadow".to_owned(),
            plugin_max_module_bytes: Limits::default().max_module_bytes,
            plugin_fuel_per_call: Limits::default().fuel_per_call,
            plugin_max_memory_bytes: Limits::default().max_memory_bytes,
            plugin_max_consecutive_failures: Limits::default().max_consecutive_failures,
            delay_levels: crate::delay::DEFAULT_DELAY_LEVELS.to_owned(),
            max_reconsume_times: 16,
            max_delay_ms: 3 * 24 * 3_600_000,
            timer_precision_ms: 1000,
        }
    }

    /// Reads a TOML file; missing keys take their defaults, unknown keys are an error.
    pub fn load(path: &Path) -> Result<Self, BrokerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BrokerError::Io { what: format!("reading {}", path.display()), source })?;
        toml::from_str(&text).map_err(|err| BrokerError::Config(format!("{}: {err}", path.display())))
    }

    /// The async worker threads to start: `worker_threads`, or for 0 one fewer than the
    /// available cores (at least one).
    pub fn async_workers(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1)).max(1),
            n => n,
        }
    }

    /// `max_udp_payload`, refused outside 1 200 to 6 500 bytes.
    pub fn checked_max_udp_payload(&self) -> Result<u16, BrokerError> {
        weir_protocol::checked_udp_payload(self.max_udp_payload).map_err(|err| BrokerError::Config(err.to_string()))
    }

    /// The storage engine's configuration.
    pub fn store_config(&self) -> StoreConfig {
        let flush = match self.flush {
            FlushKind::Async => FlushMode::Async { interval: Duration::from_millis(self.flush_interval_ms) },
            FlushKind::Sync => FlushMode::Sync { timeout: Duration::from_millis(self.flush_timeout_ms) },
        };
        StoreConfig {
            segment_size: self.segment_size,
            max_message_size: self.max_message_size,
            flush,
            retention: Duration::from_secs(self.retention_hours * 3600),
            disk_high_water: self.disk_high_water,
            disk_clean_forcibly: self.disk_high_water.min(0.85),
            disk_reserve_bytes: self.disk_reserve_bytes,
            max_mapped_queue_files: self.max_mapped_queue_files,
            ..StoreConfig::new(&self.data_dir)
        }
    }

    /// The bloom index's shape; refuses one the index cannot open (sizes not in whole
    /// 64-bit words or too large, too many hashes, zero counts).
    pub fn index_shape(&self) -> Result<IndexShape, BrokerError> {
        if self.bloom_bytes == 0 || self.bloom_block_bytes == 0 {
            return Err(BrokerError::Config("bloom_bytes and bloom_block_bytes must be positive".into()));
        }
        if self.bloom_hashes == 0 || self.bloom_block_hashes == 0 {
            return Err(BrokerError::Config("bloom hash counts must be positive".into()));
        }
        if self.shadow_property.is_empty() {
            return Err(BrokerError::Config("shadow_property must not be empty".into()));
        }
        let shape = IndexShape {
            message: BloomShape { bytes: self.bloom_bytes, hashes: self.bloom_hashes },
            block_entries: self.bloom_block_entries,
            block: BloomShape { bytes: self.bloom_block_bytes, hashes: self.bloom_block_hashes },
            shadow_property: self.shadow_property.clone(),
            entries_per_file: self.store_config().consume_queue_entries_per_file,
        };
        shape.validate().map_err(|err| BrokerError::Config(err.to_string()))?;
        Ok(shape)
    }

    /// The parsed `delay_levels`.
    pub fn delay_levels(&self) -> Result<DelayLevels, BrokerError> {
        self.delay_levels.parse().map_err(|err: crate::delay::DelayLevelsError| BrokerError::Config(err.to_string()))
    }

    /// `max_delay_ms` and `timer_precision_ms`, checked: both positive.
    pub fn checked_timer(&self) -> Result<(), BrokerError> {
        if self.max_delay_ms == 0 || self.timer_precision_ms == 0 {
            return Err(BrokerError::Config("max_delay_ms and timer_precision_ms must be positive".into()));
        }
        if self.max_delay_ms > self.retention_hours.saturating_mul(3_600_000) {
            tracing::warn!(
                max_delay_ms = self.max_delay_ms,
                retention_hours = self.retention_hours,
                "max_delay_ms exceeds retention_hours: a message delayed that long may lose its CommitLog record \
                 to retention before it is due"
            );
        }
        Ok(())
    }

    /// The plugin sandbox's limits.
    pub fn plugin_limits(&self) -> Limits {
        Limits {
            max_module_bytes: self.plugin_max_module_bytes,
            fuel_per_call: self.plugin_fuel_per_call,
            max_memory_bytes: self.plugin_max_memory_bytes,
            max_consecutive_failures: self.plugin_max_consecutive_failures,
            ..Limits::default()
        }
    }

    /// Membership timings, checked: all positive, and a member timeout longer than the
    /// heartbeat interval.
    pub fn membership_timings(&self) -> Result<crate::membership::Timings, BrokerError> {
        let positive = self.heartbeat_interval_ms > 0 && self.queue_lock_expiry_ms > 0;
        if !positive || self.member_timeout_ms <= self.heartbeat_interval_ms {
            return Err(BrokerError::Config(
                "heartbeat_interval_ms and queue_lock_expiry_ms must be positive, and member_timeout_ms longer than \
                 heartbeat_interval_ms"
                    .into(),
            ));
        }
        Ok(crate::membership::Timings {
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            member_timeout: Duration::from_millis(self.member_timeout_ms),
            lock_expiry: Duration::from_millis(self.queue_lock_expiry_ms),
        })
    }

    /// Certificate and key paths, defaulting into the data directory.
    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        let dir = self.data_dir.join("tls");
        (
            self.tls_cert.clone().unwrap_or_else(|| dir.join("cert.pem")),
            self.tls_key.clone().unwrap_or_else(|| dir.join("key.pem")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let config: BrokerConfig = toml::from_str("flush = \"sync\"\nlisten = \"0.0.0.0:9000\"\n").expect("parse");
        assert_eq!(config.flush, FlushKind::Sync);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.max_message_size, 4 << 20);
        assert!(toml::from_str::<BrokerConfig>("flsuh = \"sync\"").is_err());
        assert!(matches!(config.store_config().flush, FlushMode::Sync { .. }));
    }

    #[test]
    fn delay_levels_and_reconsume_limits_are_keys() {
        let config: BrokerConfig = toml::from_str("delay_levels = \"1s\"\nmax_reconsume_times = 2\n").expect("parse");
        assert_eq!(config.delay_levels().expect("levels").retry_delay(0), Duration::from_secs(1));
        assert_eq!(config.max_reconsume_times, 2);
        assert_eq!(BrokerConfig::default().delay_levels().expect("default").len(), 18);
        let bad = BrokerConfig { delay_levels: "1s soon".into(), ..BrokerConfig::default() };
        assert!(matches!(bad.delay_levels(), Err(BrokerError::Config(why)) if why.contains("soon")));
    }

    #[test]
    fn a_bloom_shape_the_index_cannot_open_is_a_configuration_error() {
        assert!(BrokerConfig::default().index_shape().is_ok());
        for tune in [
            |c: &mut BrokerConfig| c.bloom_bytes = 0,
            |c: &mut BrokerConfig| c.bloom_bytes = 12,
            |c: &mut BrokerConfig| c.bloom_block_bytes = 1 << 30,
            |c: &mut BrokerConfig| c.bloom_hashes = 65,
            |c: &mut BrokerConfig| c.bloom_block_hashes = 0,
            |c: &mut BrokerConfig| c.bloom_block_entries = 0,
        ] {
            let mut config = BrokerConfig::default();
            tune(&mut config);
            assert!(matches!(config.index_shape(), Err(BrokerError::Config(_))), "{config:?}");
        }
    }

    #[test]
    fn max_udp_payload_outside_what_quic_and_gso_allow_is_refused() {
        let mut config = BrokerConfig::default();
        assert_eq!(config.checked_max_udp_payload().expect("default"), weir_protocol::DEFAULT_MAX_UDP_PAYLOAD);
        for bad in [1199, 6501, 9000] {
            config.max_udp_payload = bad;
            let err = config.checked_max_udp_payload().expect_err("out of range");
            assert!(err.to_string().contains("max_udp_payload"), "{err}");
        }
    }

    #[test]
    fn async_workers_leave_a_core_to_the_storage_threads_unless_set() {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let mut config = BrokerConfig::default();
        assert_eq!(config.async_workers(), (cores - 1).max(1));
        config.worker_threads = 3;
        assert_eq!(config.async_workers(), 3);
    }
}
