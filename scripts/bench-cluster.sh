#!/usr/bin/env bash
# A 3-node cluster (N = 3, one process per node) beside a single node on this machine, with the
# same load generator (`haze bench --baseline`), once per write-acknowledgement setting; then a
# 3-node cluster with N = 1 (forwarding only, no copies), which separates the latency added by
# forwarding from the latency added by replication.
#
#   scripts/bench-cluster.sh [DURATION_SECS [ROUNDS]]
#
# The load goes to node 1 of the cluster, so about two thirds of the keys are forwarded to
# their primary, and every write is copied to the two other replicas; with `--ack quorum` it
# runs again with `--direct` (each key's requests straight to its primary, as a smart client
# routes). Both sides use
# `--durability sync`. Every process it starts, it stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
# Each target's DURATION is split into ROUNDS slices taken in turn, the order reversed every
# round (`haze bench --rounds`): drift and run order fall on every target alike.
ROUNDS="${2:-4}"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

"$HAZE" serve --data "$WORK/single" --listen 127.0.0.1:7891 --http 127.0.0.1:7892 2>"$WORK/single.log" &
PIDS+=($!)
wait_log "$WORK/single.log" "haze node ready"
"$HAZE" controller --data "$WORK/controller" --listen 127.0.0.1:7800 2>"$WORK/controller.log" &
PIDS+=($!)
wait_log "$WORK/controller.log" "haze controller ready"

# Starts nodes 1-3 named $1<i>, on 127.0.0.1:$2<i> (HTTP $3<i>), registered with the controller
# at $4; further arguments go to `haze serve`. Sets NODE_PIDS.
start_nodes() {
    local name=$1 port=$2 http=$3 controller=$4
    shift 4
    NODE_PIDS=()
    for i in 1 2 3; do
        "$HAZE" serve --data "$WORK/$name$i" --listen "127.0.0.1:$port$i" --http "127.0.0.1:$http$i" \
            --controller "$controller" "$@" 2>"$WORK/$name$i.log" &
        PIDS+=($!); NODE_PIDS+=($!)
        wait_log "$WORK/$name$i.log" "registered with the controller"
    done
}

wait_views() { # $1 = name
    for i in 1 2 3; do wait_log "$WORK/$1$i.log" "cluster view installed"; done
}

bench_against() { # $1 = a cluster node's address; further arguments go to `haze bench`
    local addr=$1
    shift
    for op in counter-incr get; do
        for pipeline in 1 16; do
            "$HAZE" bench --addr "$addr" --baseline 127.0.0.1:7891 --op "$op" --connections 50 \
                --pipeline "$pipeline" --keys 100000 --duration "$DURATION" --rounds "$ROUNDS" "$@"
        done
    done
}

echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
FIRST=1
for ack in primary quorum all; do
    start_nodes n 780 788 127.0.0.1:7800 --ack "$ack"
    if [ "$FIRST" = 1 ]; then
        "$HAZE" cluster add 127.0.0.1:7801 127.0.0.1:7802 127.0.0.1:7803 --controller 127.0.0.1:7800 >/dev/null
        FIRST=0
    fi
    wait_views n
    echo "## cluster --ack $ack (node 1) vs single node"
    bench_against 127.0.0.1:7801
    if [ "$ack" = quorum ]; then
        # A smart client's routing: each key straight to its primary (`haze bench --direct`).
        echo "## cluster --ack quorum, direct to each key's primary, vs single node"
        bench_against 127.0.0.1:7801 --direct
    fi
    kill "${NODE_PIDS[@]}"; wait "${NODE_PIDS[@]}" 2>/dev/null || true
done

"$HAZE" controller --data "$WORK/controller1" --listen 127.0.0.1:7810 --replicas 1 2>"$WORK/controller1.log" &
PIDS+=($!)
wait_log "$WORK/controller1.log" "haze controller ready"
start_nodes m 781 795 127.0.0.1:7810
"$HAZE" cluster add 127.0.0.1:7811 127.0.0.1:7812 127.0.0.1:7813 --controller 127.0.0.1:7810 >/dev/null
wait_views m
echo "## cluster N=1 (node 1: forwarding only, no copies) vs single node"
bench_against 127.0.0.1:7811
kill "${NODE_PIDS[@]}"; wait "${NODE_PIDS[@]}" 2>/dev/null || true
