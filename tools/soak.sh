#!/usr/bin/env bash
# Weir under a soak (issue 17, "Durability under load and faults" §3), on one machine:
#   - `weir bench soak`: CONNECTIONS connections for DURATION seconds send a random mix of
#     valid requests, requests the broker must refuse, bad frames, resets and connections
#     that close abruptly or go silent. It fails unless the broker stays up, answers
#     `weir status` (a fresh connection) within 1 s throughout, its anonymous memory grows
#     by at most MAX_GROWTH_MIB over the second half of the run, and every acknowledged
#     message is delivered afterwards. The broker's log must hold no panic and no error.
#   - `weir bench connections`: the broker's memory per idle connection and per held
#     long poll with HELD connections open, RUNS times, each on a fresh broker.
# Stdout: the soak's JSON report, one JSON line per connections run, then the medians.
# Environment: CONNECTIONS [200], DURATION [600], SEED [from the clock], HELD [2000],
#   RUNS [3], MAX_GROWTH_MIB [64], FLUSH [async], PORT [17440].
set -euo pipefail
cd "$(dirname "$0")/.."
CONNECTIONS=${CONNECTIONS:-200}
DURATION=${DURATION:-600}
SEED=${SEED:-$(date +%s%N)}
HELD=${HELD:-2000}
RUNS=${RUNS:-3}
MAX_GROWTH_MIB=${MAX_GROWTH_MIB:-64}
FLUSH=${FLUSH:-async}
PORT=${PORT:-17440}
cargo build --release --quiet
weir=$PWD/target/release/weir
work=$(mktemp -d)
broker_pid=
stop_broker() {
    if [[ -n $broker_pid ]]; then
        kill -INT "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
        broker_pid=
    fi
}
cleanup() {
    stop_broker
    rm -rf "$work"
}
trap cleanup EXIT
export WEIR_BROKER=127.0.0.1:$PORT
# Starts a broker on a new data directory $1.
start_broker() {
    export WEIR_CA=$1/tls/cert.pem
    "$weir" broker --data-dir "$1" --listen "$WEIR_BROKER" --flush "$FLUSH" >>"$work/broker.log" 2>&1 &
    broker_pid=$!
    until "$weir" status >/dev/null 2>&1; do sleep 0.1; done
}
# The median of one numeric field over JSON lines on stdin.
median() {
    local values
    values=$(grep -o "\"$1\":[-0-9.e]*" | cut -d: -f2 | sort -g)
    sed -n "$(( ($(wc -l <<<"$values") + 1) / 2 ))p" <<<"$values"
}
echo "# CONNECTIONS=$CONNECTIONS DURATION=$DURATION SEED=$SEED HELD=$HELD RUNS=$RUNS FLUSH=$FLUSH; load: $(uptime)" >&2

start_broker "$work/soak"
status=0
"$weir" bench soak --json --connections "$CONNECTIONS" --duration "$DURATION" --seed "$SEED" \
    --broker-pid "$broker_pid" --max-rss-growth-mib "$MAX_GROWTH_MIB" | tee "$work/soak.json" || status=$?
stop_broker
if grep -E "panicked|ERROR" "$work/broker.log" >&2; then
    echo "the broker logged errors during the soak" >&2
    status=1
fi

for run in $(seq "$RUNS"); do
    start_broker "$work/held-$run"
    "$weir" bench connections --json --connections "$HELD" --broker-pid "$broker_pid" | tee -a "$work/held.json"
    stop_broker
done
echo "per idle connection: $(median per_idle_connection_kib <"$work/held.json") KiB," \
    "per held long poll: $(median per_held_pull_kib <"$work/held.json") KiB" \
    "(medians of $RUNS runs with $HELD connections)"
exit "$status"
