#!/usr/bin/env bash
# Weir with many topics, in one window on one machine (issue 15's figures):
#   - disk bytes per queue (ConsumeQueue and bloom-index files, blocks on disk as `du`
#     counts them) with 1, 1 000 and 1 000 000 messages;
#   - topic creation time for 200 topics on an empty broker and once TOPICS exist;
#   - the broker's memory, mapped queue files, kernel maps and descriptors with
#     TOPICS x QUEUES queues of one message each;
#   - `weir bench produce` over TOPICS topics against 1 topic, alternating, RUNS times;
#   - restart time (until `weir status` answers) after a clean stop, after SIGKILL when
#     idle, and after SIGKILL right after a burst over every queue;
#   - with BASELINE=/path/to/older/weir: one hot queue's produce and drain with that
#     binary and this one, alternating, RUNS times each (before/after figures).
# Stdout: one line per figure. Environment: TOPICS [10000], QUEUES [4], COUNT [200000],
#   SIZE [1024], RUNS [3], PORT [17430], BASELINE [none].
set -euo pipefail
cd "$(dirname "$0")/.."
TOPICS=${TOPICS:-10000}
QUEUES=${QUEUES:-4}
COUNT=${COUNT:-200000}
SIZE=${SIZE:-1024}
RUNS=${RUNS:-3}
PORT=${PORT:-17430}
BASELINE=${BASELINE:-}
cargo build --release --quiet
weir=$PWD/target/release/weir
work=$(mktemp -d)
broker_pid=
stop_broker() {
    if [[ -n $broker_pid ]]; then
        kill "${1:--TERM}" "$broker_pid" 2>/dev/null || true
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
# Starts `$1 broker` on data dir $2; sets `startup` to the seconds until `weir status` answered.
start_broker() {
    local bin=$1 data=$2 started
    export WEIR_CA=$data/tls/cert.pem
    started=$(date +%s.%N)
    "$bin" broker --data-dir "$data" --listen "$WEIR_BROKER" >>"$work/broker.log" 2>&1 &
    broker_pid=$!
    until "$weir" status >/dev/null 2>&1; do sleep 0.02; done
    startup=$(echo "$(date +%s.%N) - $started" | bc)
}
# Waits until every acknowledged message is in the ConsumeQueues.
wait_dispatched() {
    until "$weir" status --json | grep -q '"dispatch_lag_bytes":0[,}]'; do sleep 0.1; done
}
produce() { "$1" bench produce --json "${@:2}" 2>>"$work/bench.log" | tail -n 1; }
echo "# TOPICS=$TOPICS QUEUES=$QUEUES COUNT=$COUNT SIZE=$SIZE RUNS=$RUNS; load: $(uptime)" >&2

if [[ -n $BASELINE ]]; then
    # The brokers differ, the load generator is this one. The machine's first run after
    # a pause is often faster than the rest: one discarded warm-up run first.
    start_broker "$weir" "$work/warm-up"
    produce "$weir" --topic warm-up --count "$COUNT" --size "$SIZE" >/dev/null
    stop_broker
    for run in $(seq "$RUNS"); do
        for bin in "$BASELINE" "$weir"; do
            name=$([[ $bin == "$weir" ]] && echo new || echo baseline)
            start_broker "$bin" "$work/hot-$name-$run"
            "$weir" topic create hot --queues 1 >/dev/null
            echo "hot-queue $name produce $(produce "$weir" --topic hot --count "$COUNT" --size "$SIZE")"
            echo "hot-queue $name drain $("$weir" bench consume --topic hot --group g --count "$COUNT" --json 2>/dev/null | tail -n 1)"
            stop_broker
            rm -rf "$work/hot-$name-$run"
        done
    done
fi

data=$work/data
start_broker "$weir" "$data"
for n in 1 1000 1000000; do
    produce "$weir" --topic "disk-$n" --queues 1 --count "$n" --size 100 >/dev/null
done
wait_dispatched
for n in 1 1000 1000000; do
    echo "disk-per-queue messages=$n consumequeue_bytes=$(du -sB1 "$data/consumequeue/disk-$n" | cut -f1) bloomindex_bytes=$(du -sB1 "$data/bloomindex/disk-$n" | cut -f1)"
done

"$weir" bench produce --topic empty --topics 200 --queues "$QUEUES" --count 200 --size 100 --json >/dev/null 2>"$work/create-first.log"
echo "create-200-topics at=0 $(grep topics: "$work/create-first.log")"
"$weir" bench produce --topic scale --topics "$TOPICS" --queues "$QUEUES" --count $((TOPICS * QUEUES)) --size 100 --json >/dev/null 2>"$work/create-many.log"
echo "create-$TOPICS-topics $(grep topics: "$work/create-many.log")"
"$weir" bench produce --topic late --topics 200 --queues "$QUEUES" --count 200 --size 100 --json >/dev/null 2>"$work/create-late.log"
echo "create-200-topics at=$TOPICS $(grep topics: "$work/create-late.log")"

figures() {
    local status
    wait_dispatched
    status=$("$weir" status --json)
    echo "$1 rss_anon_kib=$(awk '/RssAnon/ {print $2}' /proc/$broker_pid/status) rss_file_kib=$(awk '/RssFile/ {print $2}' /proc/$broker_pid/status) kernel_maps=$(wc -l </proc/$broker_pid/maps) descriptors=$(ls /proc/$broker_pid/fd | wc -l) $(echo "$status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(" ".join(f"{k}={s[k]}" for k in ["queues","mapped_queue_files","mapped_queue_files_limit","queue_file_evictions","consume_queue_bytes","index_bytes","state"]))')"
}
figures "after-loading"

# How long the dispatcher still needed after the last acknowledgement.
dispatch_tail() {
    local started
    started=$(date +%s.%N)
    wait_dispatched
    echo "dispatch_tail_seconds=$(echo "$(date +%s.%N) - $started" | bc)"
}
for run in $(seq "$RUNS"); do
    wait_dispatched
    echo "produce topics=1 $(produce "$weir" --topic single --queues "$QUEUES" --count "$COUNT" --size "$SIZE") $(dispatch_tail)"
    echo "produce topics=$TOPICS $(produce "$weir" --topic scale --topics "$TOPICS" --queues "$QUEUES" --count "$COUNT" --size "$SIZE") $(dispatch_tail)"
done
figures "after-produce"

stop_broker -TERM
start_broker "$weir" "$data"
echo "restart clean seconds=$startup"
figures "after-clean-restart"
stop_broker -KILL
start_broker "$weir" "$data"
echo "restart sigkill-idle seconds=$startup"
# SIGKILL right after a burst over every queue: recovery replays what was not dispatched.
"$weir" bench produce --topic scale --topics "$TOPICS" --queues "$QUEUES" --count $((TOPICS * QUEUES)) --size 100 --json >/dev/null 2>&1
echo "before-sigkill $("$weir" status --json | grep -o '"dispatch_lag_bytes":[0-9]*')"
stop_broker -KILL
start_broker "$weir" "$data"
echo "restart sigkill-after-burst seconds=$startup"
figures "after-sigkill-restart"
stop_broker
