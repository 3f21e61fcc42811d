#!/usr/bin/env bash
# Haze vs Redis on this machine, side by side, with the same load generator (`haze bench`).
#
#   scripts/bench-vs-redis.sh [DURATION_SECS [ROUNDS [VALUE_BYTES]]]
#
# Pairs: Haze `periodic` vs Redis AOF `appendfsync everysec`, and Haze `sync` vs Redis AOF
# `appendfsync always`; for counter-incr, set-add, register-set and get; 50 connections,
# pipeline 1 and 16; values (and set members) of VALUE_BYTES (default 100). Every process it
# starts, it stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
# Each target's DURATION is split into ROUNDS slices taken in turn, the order reversed every
# round (`haze bench --rounds`): drift and run order fall on every target alike.
ROUNDS="${2:-4}"
VALUE_BYTES="${3:-100}"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_redis

start_redis() { # $1 = appendfsync policy
    mkdir -p "$WORK/redis-$1"
    redis-server --port 7790 --bind 127.0.0.1 --dir "$WORK/redis-$1" --appendonly yes --appendfsync "$1" \
        --save '' --daemonize no --loglevel warning &
    PIDS+=($!); REDIS_PID=$!
    for _ in $(seq 50); do redis-cli -p 7790 ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "redis did not start" >&2; exit 1
}

start_haze() { # $1 = durability
    "$HAZE" serve --data "$WORK/haze-$1" --listen 127.0.0.1:7791 --http 127.0.0.1:7792 --durability "$1" 2>"$WORK/haze-$1.log" &
    PIDS+=($!); HAZE_PID=$!
    for _ in $(seq 50); do grep -q "haze node ready" "$WORK/haze-$1.log" 2>/dev/null && return; sleep 0.1; done
    echo "haze did not start" >&2; cat "$WORK/haze-$1.log" >&2; exit 1
}

echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(redis-server --version | cut -d' ' -f1-3)"
for pair in "periodic everysec" "sync always"; do
    set -- $pair
    start_haze "$1"; start_redis "$2"
    echo "## haze --durability $1 vs redis appendfsync $2, $VALUE_BYTES-byte values"
    for op in counter-incr set-add register-set get; do
        for pipeline in 1 16; do
            "$HAZE" bench --addr 127.0.0.1:7791 --redis 127.0.0.1:7790 --op "$op" --connections 50 \
                --pipeline "$pipeline" --value-size "$VALUE_BYTES" --keys 100000 --duration "$DURATION" --rounds "$ROUNDS"
        done
    done
    kill "$HAZE_PID" "$REDIS_PID"; wait "$HAZE_PID" "$REDIS_PID" 2>/dev/null || true
done
