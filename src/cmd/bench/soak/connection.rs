//! One soak connection slot: connections opened one after another until the deadline,
//! each living a random while with a few lanes of requests in flight, then closed
//! gracefully, closed with requests in flight, or silenced without a word (as a client
//! that crashed). Every answer is judged against what its step expects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::Instant;
use weir_protocol::{ErrorCode, Response};

use super::tally::{Outcome, Problem, Tally};
use super::traffic::{Acked, Expect, How, Lane, Names, Rng, Step};
use crate::cmd::bench::raw::{self, Dialer, Exchange};

/// What every slot shares.
#[derive(Debug)]
pub struct Shared {
    /// The names the soak works with.
    pub names: Arc<Names>,
    /// The counters.
    pub tally: Tally,
    /// Every message acknowledged with `SEND_OK`.
    pub acked: Mutex<Vec<Acked>>,
    /// The next message id.
    pub next_id: AtomicU64,
    /// Opens the connections.
    pub dialer: Dialer,
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Its lanes finish their requests, then it closes.
    Graceful,
    /// It closes with requests in flight.
    Abrupt,
    /// Its socket goes silent: the broker hears nothing more, not even a close.
    Vanish,
}

/// Longest life of one connection.
const MAX_LIFETIME_MS: u64 = 10_000;

/// Runs slot `slot`'s connections until `deadline`.
pub async fn run_slot(shared: Arc<Shared>, slot: u32, mut rng: Rng, deadline: Instant) {
    let mut incarnation = 0u64;
    while Instant::now() < deadline {
        incarnation += 1;
        let ending = match rng.below(100) {
            0..80 => Ending::Graceful,
            80..90 => Ending::Abrupt,
            _ => Ending::Vanish,
        };
        let lifetime = Duration::from_millis(200 + rng.below(MAX_LIFETIME_MS))
            .min(deadline.saturating_duration_since(Instant::now()));
        let lanes = if rng.chance(50) { 0 } else { 1 + rng.below(4) };
        let connected = match ending {
            Ending::Vanish => shared.dialer.connect_cuttable().await.map(|(conn, cut)| (conn, Some(cut))),
            _ => shared.dialer.connect().await.map(|conn| (conn, None)),
        };
        let (conn, cut) = match connected {
            Ok(connected) => connected,
            Err(err) => {
                shared.tally.problem(Problem::ConnectFailed, format!("slot {slot}: {err:#}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        Tally::add(&shared.tally.connections, 1);
        if lanes == 0 {
            Tally::add(&shared.tally.idle, 1);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let closing = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for lane in 0..lanes {
            let lane = Lane::new(rng.fork(lane), shared.names.clone(), format!("soak-{slot}-{lane}"));
            tasks.spawn(run_lane(shared.clone(), conn.clone(), lane, stop.clone(), closing.clone()));
        }
        tokio::time::sleep(lifetime).await;
        match ending {
            Ending::Graceful => {
                stop.store(true, Ordering::Relaxed);
                while tasks.join_next().await.is_some() {}
                closing.store(true, Ordering::Relaxed);
                conn.close(0u32.into(), b"soak: done");
                Tally::add(&shared.tally.closed, 1);
            }
            Ending::Abrupt => {
                closing.store(true, Ordering::Relaxed);
                conn.close(1u32.into(), b"soak: abrupt");
                while tasks.join_next().await.is_some() {}
                Tally::add(&shared.tally.closed_abruptly, 1);
            }
            Ending::Vanish => {
                closing.store(true, Ordering::Relaxed);
                if let Some(cut) = cut {
                    cut.cut();
                }
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                Tally::add(&shared.tally.vanished, 1);
            }
        }
        tracing::trace!(slot, incarnation, ?ending, "connection ended");
    }
}

/// Runs one lane's requests, one at a time, until `stop` or the connection closes.
async fn run_lane(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    mut lane: Lane,
    stop: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let step = lane.next_step(&shared.next_id);
        Tally::add(&shared.tally.requests, 1);
        if let Some((_, ids)) = &step.sent {
            Tally::add(&shared.tally.sent, ids.len() as u64);
        }
        let exchange = perform(&conn, &step).await;
        let closed = closing.load(Ordering::Relaxed);
        if !judge(&shared, &mut lane, &step, exchange, closed) {
            break;
        }
    }
}

/// Writes `step` on a new stream and reads the answer.
async fn perform(conn: &quinn::Connection, step: &Step) -> Exchange {
    match step.how {
        How::Whole => raw::exchange(conn, step.bytes.clone(), step.timeout).await,
        How::Split { at, pause } => {
            let (head, tail) = (step.bytes.slice(..at), step.bytes.slice(at..));
            within(step.timeout, async {
                let (mut send, mut recv) = conn.open_bi().await?;
                let _ = send.write_chunk(head).await;
                tokio::time::sleep(pause).await;
                let _ = send.write_chunk(tail).await;
                let _ = send.finish();
                Ok(raw::read_response(&mut recv).await)
            })
            .await
        }
        How::ResetAfter { at } => {
            let head: Bytes = step.bytes.slice(..at);
            within(step.timeout, async {
                let (mut send, mut recv) = conn.open_bi().await?;
                if !head.is_empty() {
                    let _ = send.write_chunk(head).await;
                }
                let _ = send.reset(7u32.into());
                Ok(raw::read_response(&mut recv).await)
            })
            .await
        }
        How::StopReading { after } => {
            let bytes = step.bytes.clone();
            within(step.timeout, async {
                let (mut send, mut recv) = conn.open_bi().await?;
                let _ = send.write_chunk(bytes).await;
                let _ = send.finish();
                match tokio::time::timeout(after, raw::read_response(&mut recv)).await {
                    Ok(exchange) => Ok(exchange),
                    Err(_) => {
                        let _ = recv.stop(0u32.into());
                        Ok(Exchange::TimedOut)
                    }
                }
            })
            .await
        }
    }
}

/// Runs an exchange for at most `timeout`; a connection error opening its stream ends it.
async fn within(
    timeout: Duration,
    exchange: impl Future<Output = Result<Exchange, quinn::ConnectionError>>,
) -> Exchange {
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(exchange)) => exchange,
        Ok(Err(err)) => Exchange::ConnectionLost(err),
        Err(_) => Exchange::TimedOut,
    }
}

/// Counts `exchange` against what `step` expects; false when the connection is gone.
fn judge(shared: &Shared, lane: &mut Lane, step: &Step, exchange: Exchange, closing: bool) -> bool {
    let tally = &shared.tally;
    let label = step.label;
    match exchange {
        Exchange::ConnectionLost(err) => {
            if !closing {
                tally.problem(Problem::UnexpectedClose, format!("during {label}: {err}"));
            }
            return false;
        }
        Exchange::Answered(Response::Error(error)) => {
            tally.record(label, Outcome::Refused);
            tally.refused_with(&error.code.to_string());
            if step.expect == Expect::Answer && matches!(error.code, ErrorCode::Internal | ErrorCode::StoreUnavailable)
            {
                tally.problem(Problem::Internal, format!("{label}: {} {}", error.code, error.message));
            }
        }
        Exchange::Answered(response) => {
            tally.record(label, Outcome::Answered);
            match step.expect {
                Expect::Answer => {
                    let acked = lane.observe(step, &response);
                    if !acked.is_empty() {
                        Tally::add(&tally.acked, acked.len() as u64);
                        shared.acked.lock().extend(acked);
                    }
                }
                Expect::Refusal => tally.problem(Problem::InvalidAccepted, format!("{label}: {response:?}")),
                Expect::Anything => {}
            }
        }
        Exchange::Undecodable(_) | Exchange::Reset(_) | Exchange::TimedOut if step.expect == Expect::Anything => {
            tally.record(label, Outcome::Dropped);
        }
        Exchange::Undecodable(why) => {
            tally.record(label, Outcome::Dropped);
            if !closing {
                tally.problem(Problem::Broken, format!("{label}: no response frame: {why}"));
            }
        }
        Exchange::Reset(code) => {
            tally.record(label, Outcome::Dropped);
            if !closing {
                tally.problem(Problem::Broken, format!("{label}: stream reset with code {code}"));
            }
        }
        Exchange::TimedOut => {
            tally.record(label, Outcome::Dropped);
            if !closing {
                tally.problem(Problem::Hung, format!("{label}: no answer within {:?}", step.timeout));
            }
        }
    }
    true
}
