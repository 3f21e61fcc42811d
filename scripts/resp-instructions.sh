#!/usr/bin/env bash
# Instructions per request of Haze's RESP port and of Redis under the same `redis-benchmark`
# load, counted by callgrind (all threads of the server): repeatable on a noisy machine, where
# throughput is not, and a measure of the work each does rather than of how the two cores
# were shared.
#
#   scripts/resp-instructions.sh [TESTS] [REQUESTS] [HAZE_BINARY...]
#
# TESTS is redis-benchmark's list (default set,get,incr,sadd,hset); each runs with 8
# connections, pipeline 16, 100-byte values, keys over 100,000 (sadd and hset: one key, 300
# members or fields, as scripts/bench-resp.sh). Haze runs with `--durability periodic`, Redis
# with AOF `everysec`. Each server is started fresh per test under callgrind, served the
# requests, and stopped; the count includes its start and stop, which a run without requests
# measures and which is subtracted (a write's count thus includes what the server does at
# stop for the keys written: Haze flushes them into redb). `get` reads keys that exist: the
# keys are written first (two SETs per key of the range), the counters are zeroed, and only
# the reads are counted (`callgrind_control`); against a fresh server every GET would be a
# miss. Prints one line per server and test.
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS="${1:-set,get,incr,sadd,hset}"
REQUESTS="${2:-20000}"
shift $(($# > 2 ? 2 : $#))
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_redis
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
BINARIES=("$@")
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$HAZE")

# Starts a server under callgrind: $1 = "haze BINARY" or "redis", $2 = output file; sets PID.
start() {
    local dir="$WORK/data.$RANDOM"
    mkdir -p "$dir"
    case $1 in
    redis)
        valgrind --tool=callgrind --callgrind-out-file="$2" redis-server --port 7985 \
            --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync everysec --save '' \
            --daemonize no --loglevel warning >"$dir/log" 2>&1 &
        PID=$!
        for _ in $(seq 300); do redis-cli -p 7985 ping >/dev/null 2>&1 && return; sleep 0.1; done
        ;;
    *)
        valgrind --tool=callgrind --callgrind-out-file="$2" "${1#haze }" serve --data "$dir" \
            --listen 127.0.0.1:7983 --http 127.0.0.1:7984 --resp 127.0.0.1:7985 \
            --durability periodic >/dev/null 2>"$dir/log" &
        PID=$!
        wait_log "$dir/log" "haze node ready"
        ;;
    esac
}
total() { callgrind_annotate "$1" 2>/dev/null | grep "PROGRAM TOTALS" | grep -o "^[0-9,]*" | tr -d ,; }
load() { # $1 = test, $2 = requests, $3 = key range
    redis-benchmark -p 7985 -t "$1" -n "$2" -c 8 -P 16 -d 100 -r "$3" -q >/dev/null 2>&1
}
measure() { # $1 = server, $2 = test or "none": prints the instructions
    local out="$WORK/cg.$RANDOM" range=100000
    case $2 in sadd | hset) range=300 ;; esac
    start "$1" "$out"
    if [ "$2" = get ]; then
        load set $((2 * range)) "$range"
        callgrind_control --zero "$PID" >/dev/null 2>&1
        load get "$REQUESTS" "$range"
        callgrind_control --dump "$PID" >/dev/null 2>&1
        kill -TERM "$PID"
        wait "$PID" 2>/dev/null || true
        total "$out.1"
        return
    fi
    [ "$2" = none ] || load "$2" "$REQUESTS" "$range"
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    total "$out"
}
echo "# $(date -u +%Y-%m-%d) instructions per request, $REQUESTS requests per test, 8 connections, pipeline 16"
SERVERS=(redis)
for b in "${BINARIES[@]}"; do SERVERS+=("haze $b"); done
for server in "${SERVERS[@]}"; do
    idle=$(measure "$server" none)
    for t in ${TESTS//,/ }; do
        busy=$(measure "$server" "$t")
        [ "$t" = get ] && busy=$((busy + idle)) # counted alone: nothing to subtract
        printf '%-40s %-5s %8d instructions/request\n' "${server##*/}" "$t" $(((busy - idle) / REQUESTS))
    done
done
