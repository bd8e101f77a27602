#!/usr/bin/env bash
# What durability costs: sync flush next to async flush in the same window.
#   storage: `weir bench store`, 1 KiB, 1 / 8 / 64 writers as async tasks (each waiting
#            for its fsync as a future), sync and async; messages per fsync.
#   QUIC:    `weir bench produce`, 1 KiB, 1 / 16 / 64 sends in flight, against a
#            `--flush sync` broker and an `--flush async` one; messages per fsync.
# Each line is the bench's JSON summary (`msgs_per_sec`, `msgs_per_flush`, latencies).
# Usage: tools/durability-bench.sh [DIR]   (DIR on the disk to measure; default ./target/durability-bench)
#        ROUNDS=3 to repeat every figure (quote the median).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/durability-bench}
rounds=${ROUNDS:-1}
mkdir -p "$dir"
cargo build --release --quiet -p weir
weir=target/release/weir
port=${PORT:-17460}
echo "load: $(uptime)"

store() {
    rm -rf "$dir/store"
    echo "== weir bench store $*"
    "$weir" bench store --data-dir "$dir/store" --async-writers --size 1024 --json "$@" | tail -1
}

produce() {
    local flush=$1 in_flight=$2 count=$3
    rm -rf "$dir/broker"
    "$weir" broker --data-dir "$dir/broker" --listen "127.0.0.1:$port" --flush "$flush" >"$dir/broker.log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do [ -f "$dir/broker/tls/cert.pem" ] && break; sleep 0.1; done
    echo "== weir bench produce --concurrency $in_flight against a --flush $flush broker"
    WEIR_BROKER="127.0.0.1:$port" WEIR_CA="$dir/broker/tls/cert.pem" \
        "$weir" bench produce --topic durability --count "$count" --size 1024 --concurrency "$in_flight" --json | tail -1
    kill -INT "$pid"
    wait "$pid" || true
}

for _ in $(seq "$rounds"); do
    for writers in 1 8 64; do
        count=$((writers == 1 ? 4000 : 60000))
        store --flush sync --writers "$writers" --count "$count"
        store --flush async --writers "$writers" --count "$count"
    done
    for in_flight in 1 16 64; do
        count=$((in_flight == 1 ? 5000 : 200000))
        produce sync "$in_flight" "$count"
        produce async "$in_flight" "$count"
    done
done
rm -rf "$dir/store" "$dir/broker"
