#!/usr/bin/env bash
# Consume throughput with a WebAssembly filter plugin, in one window: a topic of COUNT
# messages (SIZE-byte bodies) drained by `weir bench consume` RUNS times without a
# filter and with a trivial filter plugin that delivers everything (WAT, via wabt's
# wat2wasm), alternating. Per-call costs come from the criterion bench
# (`cargo bench -p weir-plugins --bench filter_call`).
# Stdout: one JSON line per run, prefixed with what it measured.
# Environment: COUNT [200000], SIZE [1024], RUNS [3], PORT [17440].
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-200000}
SIZE=${SIZE:-1024}
RUNS=${RUNS:-3}
PORT=${PORT:-17440}
command -v wat2wasm >/dev/null || apt-get install -y -qq wabt >/dev/null
cargo build --release --quiet
weir=${CARGO_TARGET_DIR:-$PWD/target}/release/weir
work=$(mktemp -d)
broker_pid=
trap '[[ -n $broker_pid ]] && kill $broker_pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cat >"$work/deliver_all.wat" <<'WAT'
(module
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) i32.const 1)
  (func (export "weir_alloc") (param i32) (result i32) i32.const 1024)
  (func (export "weir_dealloc") (param i32 i32))
  (func (export "weir_filter") (param i32 i32) (result i32) i32.const 1))
WAT
wat2wasm "$work/deliver_all.wat" -o "$work/deliver_all.wasm"
export WEIR_BROKER=127.0.0.1:$PORT WEIR_CA=$work/data/tls/cert.pem
"$weir" broker --data-dir "$work/data" --listen "$WEIR_BROKER" 2>"$work/broker.log" &
broker_pid=$!
until "$weir" status >/dev/null 2>&1; do sleep 0.2; done
echo "# count=$COUNT size=$SIZE runs=$RUNS load: $(uptime)" >&2
"$weir" plugin upload --name deliver_all --kind filter "$work/deliver_all.wasm" >&2
"$weir" bench produce --topic plugin-bench --count "$COUNT" --size "$SIZE" --batch 32 --props 'region=r%10' --json >/dev/null 2>&1
for run in $(seq "$RUNS"); do
    echo "weir consume unfiltered $("$weir" bench consume --topic plugin-bench --group plain-$run --count "$COUNT" --json 2>/dev/null | tail -n 1)"
    echo "weir consume plugin $("$weir" bench consume --topic plugin-bench --group plugin-$run --count "$COUNT" --filter deliver_all --json 2>/dev/null | tail -n 1)"
done
"$weir" plugin list --json
