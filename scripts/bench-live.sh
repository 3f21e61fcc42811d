#!/usr/bin/env bash
# Live updates under load: 1,000 devices subscribed over WebSockets, and the time from a write
# to each device hearing of it (crates/node/examples/live_fanout.rs), on one node, then on a
# 3-node cluster (one replica per key) with the devices spread over the nodes and every write
# sent to node 1: most writes are committed on a node the device is not connected to.
#
#   scripts/bench-live.sh [SECONDS [DEVICES [RATE]]]
#
# Every process it starts, it stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN="${1:-10}"
DEVICES="${2:-1000}"
RATE="${3:-50}"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo build --release -q -p haze-node --example live_fanout
FANOUT=target/release/examples/live_fanout

CAPS="--max-connections 4096 --max-connections-per-address 4096"

echo "== one node, $DEVICES devices, $RATE writes/s for ${SECONDS_RUN}s"
# shellcheck disable=SC2086
"$HAZE" serve --data "$WORK/one" --listen 127.0.0.1:7751 --http 127.0.0.1:7752 \
    --durability periodic $CAPS 2>"$WORK/one.log" &
PIDS+=($!)
wait_log "$WORK/one.log" "haze node ready"
"$FANOUT" --http 127.0.0.1:7752 --devices "$DEVICES" --rate "$RATE" --seconds "$SECONDS_RUN"

echo "== a 3-node cluster (N = 1), devices on every node, writes through node 1"
"$HAZE" controller --data "$WORK/controller" --listen 127.0.0.1:7650 --partitions 16 \
    --replicas 1 2>"$WORK/controller.log" &
PIDS+=($!)
wait_log "$WORK/controller.log" "haze controller ready"
HTTPS=()
for i in 1 2 3; do
    # shellcheck disable=SC2086
    "$HAZE" serve --data "$WORK/n$i" --listen "127.0.0.1:776$i" --http "127.0.0.1:778$i" \
        --durability periodic --controller 127.0.0.1:7650 $CAPS 2>"$WORK/n$i.log" &
    PIDS+=($!)
    wait_log "$WORK/n$i.log" "haze node ready"
    HTTPS+=(--http "127.0.0.1:778$i")
done
"$HAZE" cluster add 127.0.0.1:7761 127.0.0.1:7762 127.0.0.1:7763 --wait \
    --controller 127.0.0.1:7650 >/dev/null
"$FANOUT" "${HTTPS[@]}" --devices "$DEVICES" --rate "$RATE" --seconds "$SECONDS_RUN"
