#!/usr/bin/env bash
# Broker-side filtering, measured in one window (issue: filtering performance):
#   1. append cost of the bloom index: `weir bench produce` of PRODUCE messages with the
#      index off and on (alternating brokers, RUNS each);
#   2. a topic of COUNT messages (SIZE-byte bodies, 100 regions, 5 properties each), and
#      the time to deliver the 1 % matching `region = 'r7'` with pre-filters (bloom index,
#      block summaries) and without (`prefilter = false`: every body read), RUNS each;
#   3. NATS JetStream delivering the same 1 % through a consumer filter subject on a
#      stream of 100 subjects (tools/nats-bench).
# Stdout: one JSON line per run, prefixed with what it measured.
# Environment: COUNT [1000000], SIZE [1024], PRODUCE [200000], CONCURRENCY [16], RUNS [3], PORT [17430].
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-1000000}
SIZE=${SIZE:-1024}
PRODUCE=${PRODUCE:-200000}
CONCURRENCY=${CONCURRENCY:-16}
RUNS=${RUNS:-3}
PORT=${PORT:-17430}
MATCHES=$((COUNT / 100))
PROPS='region=r%100,amount=%1000,currency=CNY,channel=c%7,customer=u%5000'
cargo build --release --quiet
weir=$PWD/target/release/weir
work=$(mktemp -d)
broker_pid=
stop_broker() {
    if [[ -n $broker_pid ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
    broker_pid=
}
trap 'stop_broker; rm -rf "$work"' EXIT
export WEIR_BROKER=127.0.0.1:$PORT
# start_broker DATA_DIR TOML_LINES...
start_broker() {
    local data=$1; shift
    printf '%s\n' "$@" >"$work/broker.toml"
    "$weir" broker --data-dir "$data" --listen "$WEIR_BROKER" --config "$work/broker.toml" 2>>"$work/broker.log" &
    broker_pid=$!
    export WEIR_CA=$data/tls/cert.pem
    until "$weir" status >/dev/null 2>&1; do sleep 0.2; done
}
echo "# count=$COUNT size=$SIZE produce=$PRODUCE concurrency=$CONCURRENCY runs=$RUNS load: $(uptime)" >&2

for run in $(seq "$RUNS"); do
    for index in false true; do
        start_broker "$work/append-$index" "bloom_index = $index"
        echo "weir produce bloom_index=$index $("$weir" bench produce --topic append-$run --count "$PRODUCE" --size "$SIZE" --concurrency "$CONCURRENCY" --props "$PROPS" --json 2>/dev/null | tail -n 1)"
        stop_broker
    done
done

start_broker "$work/data"
echo "weir load $("$weir" bench produce --topic orders --count "$COUNT" --size "$SIZE" --concurrency "$CONCURRENCY" --batch 32 --props "$PROPS" --json 2>/dev/null | tail -n 1)"
stop_broker
for run in $(seq "$RUNS"); do
    for prefilter in true false; do
        start_broker "$work/data" "prefilter = $prefilter"
        echo "weir filtered-consume prefilter=$prefilter $("$weir" bench consume --topic orders --group g-$prefilter-$run --count "$MATCHES" --sql "region = 'r7'" --json 2>/dev/null | tail -n 1)"
        stop_broker
    done
done

# NATS JetStream: 100 subjects orders.0 .. orders.99, consumer filter subject orders.7.
export CARGO_TARGET_DIR=${NATS_TARGET_DIR:-$PWD/target-nats}
cargo build --release --quiet --manifest-path tools/nats-bench/Cargo.toml
nats_bench=$CARGO_TARGET_DIR/release/weir-nats-bench
nats-server -js -sd "$work/nats" -a 127.0.0.1 -p $((PORT + 1)) >"$work/nats.log" 2>&1 &
nats_pid=$!
trap 'stop_broker; kill $nats_pid 2>/dev/null; rm -rf "$work"' EXIT
until grep -qs "Server is ready" "$work/nats.log"; do sleep 0.1; done
url=nats://127.0.0.1:$((PORT + 1))
echo "nats load $("$nats_bench" publish --url "$url" --subject orders --subjects 100 --count "$COUNT" --size "$SIZE" --concurrency "$CONCURRENCY" --json | tail -n 1)"
for run in $(seq "$RUNS"); do
    echo "nats filtered-consume $("$nats_bench" consume --url "$url" --count "$MATCHES" --filter-subject orders.7 --consumer f-$run --json | tail -n 1)"
done
