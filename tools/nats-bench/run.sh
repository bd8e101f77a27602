#!/usr/bin/env bash
# Peer benchmark: NATS JetStream (file storage, one node) on loopback.
#
# Starts a throw-away nats-server with JetStream storing in a temp dir, runs
# `weir-nats-bench publish` (acked, CONCURRENCY in flight) RUNS times, then
# publishes a BACKLOG-message backlog and drains it with `consume` RUNS times,
# and stops the server. Stdout carries only the JSON summaries, one per run;
# progress and notes go to stderr.
#
# Environment (defaults in brackets):
#   COUNT [200000]        messages per publish run
#   SIZE [1024]           payload bytes
#   CONCURRENCY [16]      publishes in flight
#   BACKLOG [1000000]     backlog size for the consume runs (0 skips them)
#   BATCH [500]           messages per pull request
#   ACK [all]             consumer ack policy: all (one ack per batch) or none
#   RUNS [1]              repetitions of each measurement
#   THREADS [1]           worker threads of the load generator's runtime
#   SYNC [default]        default, or `always` to fsync every write
#                         (`jetstream { sync_interval: always }`, needs nats-server >= 2.10)
#   PORT [14222]          loopback port for the server
#   NATS_SERVER [nats-server]  server binary
#   CARGO_TARGET_DIR [<repo>/target-nats]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

COUNT=${COUNT:-200000}
SIZE=${SIZE:-1024}
CONCURRENCY=${CONCURRENCY:-16}
BACKLOG=${BACKLOG:-1000000}
BATCH=${BATCH:-500}
ACK=${ACK:-all}
RUNS=${RUNS:-1}
THREADS=${THREADS:-1}
SYNC=${SYNC:-default}
PORT=${PORT:-14222}
NATS_SERVER=${NATS_SERVER:-nats-server}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target-nats}

command -v "$NATS_SERVER" >/dev/null || { echo "run.sh: $NATS_SERVER not found (apt-get install nats-server)" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
bench="$CARGO_TARGET_DIR/release/weir-nats-bench"
url="nats://127.0.0.1:$PORT"

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

case $SYNC in
    default) server_args=(-js -sd "$work/store") ;;
    always)
        printf 'jetstream {\n  store_dir: "%s"\n  sync_interval: always\n}\n' "$work/store" >"$work/server.conf"
        server_args=(-c "$work/server.conf")
        ;;
    *) echo "run.sh: SYNC must be default or always" >&2; exit 2 ;;
esac
"$NATS_SERVER" "${server_args[@]}" -a 127.0.0.1 -p "$PORT" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    if grep -q "Server is ready" "$work/server.log"; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run.sh: nats-server exited:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
grep -q "Server is ready" "$work/server.log" || { echo "run.sh: nats-server not ready after 10 s" >&2; exit 1; }

echo "# $("$NATS_SERVER" --version), sync=$SYNC, size=$SIZE, concurrency=$CONCURRENCY, load: $(uptime)" >&2

for _ in $(seq "$RUNS"); do
    "$bench" --threads "$THREADS" publish --url "$url" --count "$COUNT" --size "$SIZE" --concurrency "$CONCURRENCY" --json | tail -n 1
done

if ((BACKLOG > 0)); then
    echo "# publishing a $BACKLOG-message backlog" >&2
    "$bench" --threads "$THREADS" publish --url "$url" --count "$BACKLOG" --size "$SIZE" --concurrency "$CONCURRENCY" --json >/dev/null
    for _ in $(seq "$RUNS"); do
        "$bench" --threads "$THREADS" consume --url "$url" --count "$BACKLOG" --batch "$BATCH" --ack "$ACK" --json | tail -n 1
    done
fi
