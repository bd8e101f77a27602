#!/usr/bin/env bash
# Weir's broker next to NATS JetStream, in one window on one machine:
#   weir bench transport (the QUIC limit), weir bench produce (acked, CONCURRENCY in
#   flight) RUNS times, a BACKLOG-message backlog drained RUNS times by `weir bench
#   consume`, then tools/nats-bench/run.sh with the same parameters.
# Stdout: one JSON line per run, prefixed with what it measured.
# Environment: COUNT [200000], SIZE [1024], CONCURRENCY [16], BACKLOG [1000000], RUNS [3],
#   FLUSH [async], PORT [17420], THREADS [1] (worker threads of both load generators).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-200000}
SIZE=${SIZE:-1024}
CONCURRENCY=${CONCURRENCY:-16}
BACKLOG=${BACKLOG:-1000000}
RUNS=${RUNS:-3}
FLUSH=${FLUSH:-async}
PORT=${PORT:-17420}
THREADS=${THREADS:-1}
cargo build --release --quiet
weir=$PWD/target/release/weir
work=$(mktemp -d)
broker_pid=
cleanup() {
    [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
export WEIR_BROKER=127.0.0.1:$PORT WEIR_CA=$work/data/tls/cert.pem
"$weir" broker --data-dir "$work/data" --listen "$WEIR_BROKER" --flush "$FLUSH" 2>"$work/broker.log" &
broker_pid=$!
until "$weir" status >/dev/null 2>&1; do sleep 0.2; done
echo "# weir $FLUSH flush, size=$SIZE, concurrency=$CONCURRENCY, threads=$THREADS, load: $(uptime)" >&2

echo "weir transport $("$weir" bench transport --json --mib 1024 --streams "$CONCURRENCY")"
for run in $(seq "$RUNS"); do
    echo "weir produce $("$weir" bench produce --topic produce-$run --count "$COUNT" --size "$SIZE" --concurrency "$CONCURRENCY" --threads "$THREADS" --json 2>/dev/null | tail -n 1)"
done
if (( BACKLOG > 0 )); then
    "$weir" bench produce --topic backlog --count "$BACKLOG" --size "$SIZE" --concurrency "$CONCURRENCY" --threads "$THREADS" --json >/dev/null 2>&1
    for run in $(seq "$RUNS"); do
        echo "weir consume $("$weir" bench consume --topic backlog --group drain-$run --count "$BACKLOG" --threads "$THREADS" --json 2>/dev/null | tail -n 1)"
    done
fi
kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; broker_pid=

COUNT=$COUNT SIZE=$SIZE CONCURRENCY=$CONCURRENCY BACKLOG=$BACKLOG RUNS=$RUNS THREADS=$THREADS tools/nats-bench/run.sh | sed 's/^/nats /'
