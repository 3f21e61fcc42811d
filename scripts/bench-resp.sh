#!/usr/bin/env bash
# Haze's Redis-protocol front end vs Redis, with Redis's own load generator (`redis-benchmark`),
# side by side in one run.
#
#   scripts/bench-resp.sh [REQUESTS]
#
# Haze `--durability periodic` (its RESP port) vs Redis AOF `appendfsync everysec`; SET, GET and
# INCR; 50 connections, pipeline 1 and 16, 100-byte values, keys spread over 100,000. Not SADD:
# redis-benchmark adds every member to one set, which passes Haze's value limit (64 KiB by
# default) within seconds (`haze bench --op set-add` spreads the adds over many sets).
# Prints each figure and the Haze/Redis ratio. Every process it starts, it stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-200000}"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_redis

"$HAZE" serve --data "$WORK/haze" --listen 127.0.0.1:7801 --http 127.0.0.1:7802 --resp 127.0.0.1:7803 \
    --durability periodic 2>"$WORK/haze.log" &
PIDS+=($!)
mkdir -p "$WORK/redis"
redis-server --port 7790 --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes --appendfsync everysec \
    --save '' --daemonize no --loglevel warning &
PIDS+=($!)
for _ in $(seq 50); do
    grep -q "haze node ready" "$WORK/haze.log" 2>/dev/null && redis-cli -p 7790 ping >/dev/null 2>&1 && break
    sleep 0.1
done

echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(redis-server --version | cut -d' ' -f1-3)"
run() { # $1 = port, $2 = pipeline: "TEST rps p50 p99" lines
    redis-benchmark -p "$1" -t set,get,incr -n "$REQUESTS" -c 50 -P "$2" -d 100 -r 100000 --csv 2>/dev/null |
        tail -n +2 | tr -d '"' | awk -F, '{print $1, $2, $5, $7}'
}
for pipeline in 1 16; do
    echo "## pipeline $pipeline (requests/s, p50 ms, p99 ms)"
    # One after the other (never at once: they would share the two cores).
    run 7803 "$pipeline" >"$WORK/haze-$pipeline.txt"
    run 7790 "$pipeline" >"$WORK/redis-$pipeline.txt"
    paste -d' ' "$WORK/haze-$pipeline.txt" "$WORK/redis-$pipeline.txt" |
        awk '{printf "%-5s haze %9.0f p50 %6.3f p99 %6.3f | redis %9.0f p50 %6.3f p99 %6.3f | ratio %.2fx p99 %.2fx\n", $1, $2, $3, $4, $6, $7, $8, $2/$6, $4/$8}'
done
