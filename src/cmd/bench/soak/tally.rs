//! What a soak counts while it runs: requests by kind and outcome, connections by how they
//! ended, and problems (answers a healthy broker never gives), with the first few in detail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Something a healthy broker never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// A well-formed request's stream ended without a response frame (a handler that
    /// panicked, a reset) while the connection lived.
    Broken,
    /// A well-formed request got no answer within its wait plus 10 s.
    Hung,
    /// A well-formed request was answered `INTERNAL` or `STORE_UNAVAILABLE`.
    Internal,
    /// A request the broker must refuse was carried out.
    InvalidAccepted,
    /// The broker closed a connection the soak had not given up.
    UnexpectedClose,
    /// A connection could not be opened.
    ConnectFailed,
}

impl Problem {
    /// Every problem, in report order.
    pub const ALL: [Problem; 6] = [
        Problem::Broken,
        Problem::Hung,
        Problem::Internal,
        Problem::InvalidAccepted,
        Problem::UnexpectedClose,
        Problem::ConnectFailed,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Problem::Broken => "broken",
            Problem::Hung => "hung",
            Problem::Internal => "internal",
            Problem::InvalidAccepted => "invalid_accepted",
            Problem::UnexpectedClose => "unexpected_closes",
            Problem::ConnectFailed => "connect_failures",
        }
    }
}

/// How a request ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with a response.
    Answered,
    /// Answered with an error frame.
    Refused,
    /// Reset, stopped, undecodable or given up (bad frames only).
    Dropped,
}

/// Most problems kept in detail.
const DETAILS: usize = 20;

/// The soak's counters, shared by every connection.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests started.
    pub requests: AtomicU64,
    /// Messages in well-formed sends to the checked topics.
    pub sent: AtomicU64,
    /// Of those, acknowledged with `SEND_OK`.
    pub acked: AtomicU64,
    /// Connections opened.
    pub connections: AtomicU64,
    /// Connections closed gracefully once their requests finished.
    pub closed: AtomicU64,
    /// Connections closed while requests were in flight.
    pub closed_abruptly: AtomicU64,
    /// Connections that went silent without closing.
    pub vanished: AtomicU64,
    /// Connections that sent nothing during their life.
    pub idle: AtomicU64,
    /// Per step label: (answered, refused, dropped).
    by_label: Mutex<BTreeMap<&'static str, [u64; 3]>>,
    /// Error codes of refusals.
    codes: Mutex<BTreeMap<String, u64>>,
    problems: Mutex<(BTreeMap<Problem, u64>, Vec<String>)>,
}

impl Tally {
    /// Counts one request of kind `label` ending as `outcome`.
    pub fn record(&self, label: &'static str, outcome: Outcome) {
        let mut by_label = self.by_label.lock();
        by_label.entry(label).or_default()[outcome as usize] += 1;
    }

    /// Counts a refusal with `code`.
    pub fn refused_with(&self, code: &str) {
        *self.codes.lock().entry(code.to_owned()).or_default() += 1;
    }

    /// Counts a problem and keeps its detail if it is among the first.
    pub fn problem(&self, problem: Problem, detail: String) {
        let mut problems = self.problems.lock();
        *problems.0.entry(problem).or_default() += 1;
        if problems.1.len() < DETAILS {
            tracing::warn!(problem = problem.name(), %detail, "soak problem");
            problems.1.push(format!("{}: {detail}", problem.name()));
        }
    }

    /// How many of `problem` were seen.
    pub fn problems(&self, problem: Problem) -> u64 {
        self.problems.lock().0.get(&problem).copied().unwrap_or(0)
    }

    /// The first problems, described.
    pub fn details(&self) -> Vec<String> {
        self.problems.lock().1.clone()
    }

    /// Totals over every label: (answered, refused, dropped).
    pub fn outcomes(&self) -> [u64; 3] {
        self.by_label.lock().values().fold([0; 3], |sum, n| [sum[0] + n[0], sum[1] + n[1], sum[2] + n[2]])
    }

    /// Per label, `{label: {answered, refused, dropped}}`.
    pub fn by_label_json(&self) -> serde_json::Value {
        let by_label = self.by_label.lock();
        by_label
            .iter()
            .map(|(label, n)| {
                (label.to_string(), serde_json::json!({ "answered": n[0], "refused": n[1], "dropped": n[2] }))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Refusals per error code, `{code: count}`.
    pub fn codes_json(&self) -> serde_json::Value {
        self.codes.lock().iter().map(|(code, n)| (code.clone(), (*n).into())).collect::<serde_json::Map<_, _>>().into()
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
