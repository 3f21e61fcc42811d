#!/usr/bin/env bash
# Haze's Redis-protocol front end vs Redis, with Redis's own load generator (`redis-benchmark`),
# side by side in one run.
#
#   scripts/bench-resp.sh [REQUESTS]
#
# Two pairs: Haze `--durability periodic` vs Redis AOF `appendfsync everysec`, and Haze
# `--durability sync` vs Redis `appendfsync always`. SET, GET, INCR, SADD and HSET; 50
# connections, pipeline 1 and 16, 100-byte values, keys spread over 100,000. redis-benchmark's
# SADD and HSET add to one set and one hash (`myset`, `myhash`): they run with members and
# fields drawn from 300 (`-r 300`), so the hash of 100-byte values stays under Haze's value
# limit (64 KiB by default), and Redis's set and hash are the same size. Prints each figure and the Haze/Redis ratio. Every
# process it starts, it stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-200000}"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_redis

haze_node() { # $1 = name, $2 = RESP port, $3 = durability
    "$HAZE" serve --data "$WORK/$1" --listen "127.0.0.1:$(($2 - 2))" --http "127.0.0.1:$(($2 - 1))" \
        --resp "127.0.0.1:$2" --durability "$3" 2>"$WORK/$1.log" &
    PIDS+=($!)
}
redis_node() { # $1 = name, $2 = port, $3 = appendfsync
    mkdir -p "$WORK/$1"
    redis-server --port "$2" --bind 127.0.0.1 --dir "$WORK/$1" --appendonly yes --appendfsync "$3" \
        --save '' --daemonize no --loglevel warning &
    PIDS+=($!)
}
haze_node haze-periodic 7803 periodic
haze_node haze-sync 7813 sync
redis_node redis-everysec 7790 everysec
redis_node redis-always 7791 always
for name in haze-periodic haze-sync; do
    for _ in $(seq 100); do grep -q "haze node ready" "$WORK/$name.log" 2>/dev/null && break; sleep 0.1; done
done
for port in 7790 7791; do
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(redis-server --version | cut -d' ' -f1-3)"
run() { # $1 = port, $2 = pipeline: "TEST rps p50 p99" lines
    {
        redis-benchmark -p "$1" -t set,get,incr -n "$REQUESTS" -c 50 -P "$2" -d 100 -r 100000 --csv
        redis-benchmark -p "$1" -t sadd,hset -n "$REQUESTS" -c 50 -P "$2" -d 100 -r 300 --csv
    } 2>/dev/null | grep -v '^"test"' | tr -d '"' | awk -F, '{print $1, $2, $5, $7}'
}
for pair in "periodic everysec 7803 7790" "sync always 7813 7791"; do
    read -r haze_mode redis_mode haze_port redis_port <<<"$pair"
    for pipeline in 1 16; do
        echo "## haze $haze_mode vs redis $redis_mode, pipeline $pipeline (requests/s, p50 ms, p99 ms)"
        # One after the other (never at once: they would share the two cores).
        run "$haze_port" "$pipeline" >"$WORK/haze.txt"
        run "$redis_port" "$pipeline" >"$WORK/redis.txt"
        paste -d' ' "$WORK/haze.txt" "$WORK/redis.txt" |
            awk '{printf "%-5s haze %9.0f p50 %6.3f p99 %6.3f | redis %9.0f p50 %6.3f p99 %6.3f | ratio %.2fx p99 %.2fx\n", $1, $2, $3, $4, $6, $7, $8, $2/$6, $4/$8}'
    done
done
