#!/usr/bin/env bash
# A 3-node cluster (N = 3, one process per node) beside a single node on this machine, with the
# same load generator (`haze bench --baseline`), once per write-acknowledgement setting; then a
# 3-node cluster with N = 1 (forwarding only, no copies), which separates the latency added by
# forwarding from the latency added by replication.
#
#   scripts/bench-cluster.sh [DURATION_SECS]
#
# The load goes to node 1 of the cluster, so about two thirds of the keys are forwarded to
# their primary, and every write is copied to the two other replicas. Both sides use
# `--durability sync`. Every process it starts, it stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"

cargo build --release -q -p haze-cli
HAZE=target/release/haze
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

wait_log() { # $1 = file, $2 = text
    for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done
    echo "no \"$2\" in $1" >&2; cat "$1" >&2; exit 1
}

"$HAZE" serve --data "$WORK/single" --listen 127.0.0.1:7891 --http 127.0.0.1:7892 2>"$WORK/single.log" &
PIDS+=($!)
wait_log "$WORK/single.log" "haze node ready"
"$HAZE" controller --data "$WORK/controller" --listen 127.0.0.1:7800 2>"$WORK/controller.log" &
PIDS+=($!)
wait_log "$WORK/controller.log" "haze controller ready"

echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
FIRST=1
for ack in primary quorum all; do
    NODE_PIDS=()
    for i in 1 2 3; do
        "$HAZE" serve --data "$WORK/n$i" --listen "127.0.0.1:780$i" --http "127.0.0.1:788$i" \
            --controller 127.0.0.1:7800 --ack "$ack" 2>"$WORK/n$i-$ack.log" &
        PIDS+=($!); NODE_PIDS+=($!)
        wait_log "$WORK/n$i-$ack.log" "registered with the controller"
    done
    if [ "$FIRST" = 1 ]; then
        "$HAZE" cluster add 127.0.0.1:7801 127.0.0.1:7802 127.0.0.1:7803 --controller 127.0.0.1:7800 >/dev/null
        FIRST=0
    fi
    for i in 1 2 3; do wait_log "$WORK/n$i-$ack.log" "cluster view installed"; done
    echo "## cluster --ack $ack (node 1) vs single node"
    for op in counter-incr get; do
        for pipeline in 1 16; do
            "$HAZE" bench --addr 127.0.0.1:7801 --baseline 127.0.0.1:7891 --op "$op" --connections 50 \
                --pipeline "$pipeline" --keys 100000 --duration "$DURATION"
        done
    done
    kill "${NODE_PIDS[@]}"; wait "${NODE_PIDS[@]}" 2>/dev/null || true
done

"$HAZE" controller --data "$WORK/controller1" --listen 127.0.0.1:7810 --replicas 1 2>"$WORK/controller1.log" &
PIDS+=($!)
wait_log "$WORK/controller1.log" "haze controller ready"
NODE_PIDS=()
for i in 1 2 3; do
    "$HAZE" serve --data "$WORK/m$i" --listen "127.0.0.1:781$i" --http "127.0.0.1:795$i" \
        --controller 127.0.0.1:7810 2>"$WORK/m$i.log" &
    PIDS+=($!); NODE_PIDS+=($!)
    wait_log "$WORK/m$i.log" "registered with the controller"
done
"$HAZE" cluster add 127.0.0.1:7811 127.0.0.1:7812 127.0.0.1:7813 --controller 127.0.0.1:7810 >/dev/null
for i in 1 2 3; do wait_log "$WORK/m$i.log" "cluster view installed"; done
echo "## cluster N=1 (node 1: forwarding only, no copies) vs single node"
for op in counter-incr get; do
    for pipeline in 1 16; do
        "$HAZE" bench --addr 127.0.0.1:7811 --baseline 127.0.0.1:7891 --op "$op" --connections 50 \
            --pipeline "$pipeline" --keys 100000 --duration "$DURATION"
    done
done
kill "${NODE_PIDS[@]}"; wait "${NODE_PIDS[@]}" 2>/dev/null || true
