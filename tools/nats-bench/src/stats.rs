//! Latency histogram and the summary printed at the end of a run.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// Publish→ack latencies, recorded in microseconds (1 µs to 60 s, 3 significant digits).
pub struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> Self {
        Self(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }

    /// Records one latency; values past the upper bound are clamped to it.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    /// Adds every value recorded by `other`.
    pub fn merge(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("histograms share bounds");
    }

    /// The latency at `quantile` (0.0–1.0) in milliseconds, 0 when nothing was recorded.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.0.is_empty() { 0.0 } else { self.0.value_at_quantile(quantile) as f64 / 1000.0 }
    }
}

/// The end-of-run figures shared by both commands.
pub struct Summary {
    /// `publish` or `consume`.
    pub op: &'static str,
    /// `sent` for publish, `received` for consume.
    pub count_field: &'static str,
    /// Messages acknowledged by the server (publish) or received (consume).
    pub count: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Payload bytes moved, for MB/s (1 MB = 10^6 bytes, as in `weir bench`).
    pub payload_bytes: u64,
    /// Latency percentiles, present for publish only.
    pub latencies: Option<Latencies>,
    /// Run settings echoed in the output (server version, concurrency, ack policy, ...).
    pub settings: Vec<(&'static str, Value)>,
}

impl Summary {
    fn msgs_per_sec(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    /// One JSON object with the same field names as `weir bench --json`.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("peer".into(), json!("nats-jetstream"));
        obj.insert("op".into(), json!(self.op));
        obj.insert(self.count_field.into(), json!(self.count));
        obj.insert("errors".into(), json!(self.errors));
        obj.insert("seconds".into(), json!(self.elapsed.as_secs_f64()));
        obj.insert("msgs_per_sec".into(), json!(self.msgs_per_sec()));
        obj.insert("mb_per_sec".into(), json!(self.mb_per_sec()));
        if let Some(lat) = &self.latencies {
            obj.insert("p50_ms".into(), json!(lat.quantile_ms(0.50)));
            obj.insert("p99_ms".into(), json!(lat.quantile_ms(0.99)));
            obj.insert("p999_ms".into(), json!(lat.quantile_ms(0.999)));
        }
        for (key, value) in &self.settings {
            obj.insert((*key).into(), value.clone());
        }
        Value::Object(obj)
    }

    /// Prints the summary: the JSON object alone with `json`, otherwise a short table.
    pub fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
            return;
        }
        println!(
            "nats-jetstream {}: {} {} in {:.2} s",
            self.op,
            self.count,
            self.count_field,
            self.elapsed.as_secs_f64()
        );
        println!("  {:<14}{:>12}", "errors", self.errors);
        println!("  {:<14}{:>12.0}", "msgs/s", self.msgs_per_sec());
        println!("  {:<14}{:>12.1}", "MB/s", self.mb_per_sec());
        if let Some(lat) = &self.latencies {
            println!("  {:<14}{:>12.3}", "p50 ms", lat.quantile_ms(0.50));
            println!("  {:<14}{:>12.3}", "p99 ms", lat.quantile_ms(0.99));
            println!("  {:<14}{:>12.3}", "p999 ms", lat.quantile_ms(0.999));
        }
        for (key, value) in &self.settings {
            match value {
                Value::String(text) => println!("  {key:<14}{text:>12}"),
                other => println!("  {key:<14}{other:>12}"),
            }
        }
    }
}
