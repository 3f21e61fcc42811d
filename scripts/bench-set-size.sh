#!/usr/bin/env bash
# Does a set add cost more on a large set? `SADD` to one set of 1 member and to one set of
# 10,000 members (redis-benchmark, 50 connections, pipeline 16, re-adding members the set
# holds so its size stays), against Haze and Redis in one run; prints requests/s and the
# ratio large/small for each.
#
#   scripts/bench-set-size.sh [REQUESTS] [MEMBERS]
#
# Haze runs with `--max-value-bytes 4194304`: 10,000 members of 20 bytes are past the default
# 64 KiB limit.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS="${1:-200000}"
MEMBERS="${2:-10000}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_redis
"$HAZE" serve --data "$WORK/haze" --listen 127.0.0.1:7971 --http 127.0.0.1:7972 --resp 127.0.0.1:7973 \
    --durability periodic --max-value-bytes 4194304 2>"$WORK/haze.log" &
PIDS+=($!)
mkdir -p "$WORK/redis"
redis-server --port 7974 --bind 127.0.0.1 --dir "$WORK/redis" --appendonly yes --appendfsync everysec \
    --save '' --daemonize no --loglevel warning >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_log "$WORK/haze.log" "haze node ready"
for _ in $(seq 50); do redis-cli -p 7974 ping >/dev/null 2>&1 && break; sleep 0.1; done

# The members redis-benchmark's __rand_int__ names: element:000000000000 on.
fill() { # $1 = port, $2 = key, $3 = members
    local i=0
    while [ "$i" -lt "$3" ]; do
        printf 'SADD %s' "$2"
        for j in $(seq "$i" $((i + 499 < $3 - 1 ? i + 499 : $3 - 1))); do printf ' element:%012d' "$j"; done
        printf '\r\n'
        i=$((i + 500))
    done | redis-cli -p "$1" --pipe >/dev/null
}
rps() { # $1 = port, $2 = key, $3 = members
    redis-benchmark -p "$1" -n "$REQUESTS" -c 50 -P 16 -r "$3" --csv SADD "$2" 'element:__rand_int__' 2>/dev/null |
        grep -v '^"test"' | tr -d '"' | cut -d, -f2
}
echo "# $(date -u +%Y-%m-%d) SADD to one set, $REQUESTS requests, 50 connections, pipeline 16"
for server in "haze 7973" "redis 7974"; do
    read -r name port <<<"$server"
    fill "$port" small 1
    fill "$port" large "$MEMBERS"
    echo "$name: $(redis-cli -p "$port" scard small) and $(redis-cli -p "$port" scard large) members"
    small=$(rps "$port" small 1)
    large=$(rps "$port" large "$MEMBERS")
    awk -v n="$name" -v s="$small" -v l="$large" -v m="$MEMBERS" \
        'BEGIN {printf "%-5s 1 member %9.0f/s | %d members %9.0f/s | cost ratio %.1fx\n", n, s, m, l, s/l}'
done
