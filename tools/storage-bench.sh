#!/usr/bin/env bash
# Storage-engine figures next to the raw limits of the same disk, in one run:
#   raw sequential write (dd, 1 GiB, fdatasync), raw fsync rate (dd oflag=dsync),
#   then `weir bench store` for 1 KiB async, 128 B async, and sync with 1 vs 64 writers.
# Usage: tools/storage-bench.sh [DIR]   (DIR on the disk to measure; default ./target/storage-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/storage-bench}
mkdir -p "$dir"
cargo build --release --quiet
weir=target/release/weir
echo "load: $(uptime)"

echo "== raw sequential write: dd bs=1M count=1024 conv=fdatasync"
dd if=/dev/zero of="$dir/dd.bin" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1
rm -f "$dir/dd.bin"
echo "== raw fsync rate: dd bs=4k count=2000 oflag=dsync (one synchronous write each)"
dd if=/dev/zero of="$dir/dsync.bin" bs=4k count=2000 oflag=dsync 2>&1 | tail -1
rm -f "$dir/dsync.bin"

run() {
    rm -rf "$dir/store"
    echo "== weir bench store $*"
    "$weir" bench store --data-dir "$dir/store" --json "$@" | tail -1
}
run --flush async --size 1024 --count 1000000
run --flush async --size 128 --count 3000000
run --flush async --size 128 --count 3000000 --writers 4
run --flush async --size 128 --count 3000000 --batch 32
run --flush sync --size 1024 --count 2000 --writers 1
run --flush sync --size 1024 --count 64000 --writers 64
rm -rf "$dir/store"
