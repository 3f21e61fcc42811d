#!/usr/bin/env bash
# Does a node slow down when it holds more keys than its caches? `haze bench` `get` and
# `register-set` spread evenly over SMALL keys, then over LARGE keys, each on a fresh node
# whose keys are written first (registers of 100 bytes, `haze bench`'s preload) and flushed;
# prints requests/s, the ratio large/small, and the node's memory (resident) and disk (its
# data directory) per key.
#
#   scripts/bench-keys.sh [DURATION_SECS [LARGE [SMALL]]]
#
# Defaults: 10 s per case, 10,000,000 and 100,000 keys. redb caches 1 GiB of pages by
# default; 10 million keys take more than that on disk. 50 connections, pipeline 16,
# `--durability periodic`. Needs a few GB of free disk for LARGE = 10 million.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
LARGE="${2:-10000000}"
SMALL="${3:-100000}"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

declare -A RATE
run() { # $1 = keys: prints one line per op, and the node's memory and disk per key
    local keys=$1 dir="$WORK/haze-$1"
    "$HAZE" serve --data "$dir" --listen 127.0.0.1:7961 --http 127.0.0.1:7962 --durability periodic \
        2>"$WORK/haze-$keys.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_log "$WORK/haze-$keys.log" "haze node ready"
    # Every key written first (`get` without --preloaded writes them, then reads for a second),
    # then the flush that follows let finish: the log is cut into segments, and a flush ends by
    # deleting those it covered, so one segment left means no backlog. Measured after that,
    # the node's steady state.
    local started=$SECONDS
    "$HAZE" bench --addr 127.0.0.1:7961 --op get --keys "$keys" --connections 50 --pipeline 16 \
        --duration 1 >/dev/null
    echo "$keys keys: written in $((SECONDS - started)) s"
    for _ in $(seq 600); do
        [ "$(find "$dir" -maxdepth 1 -name 'wal-*.log' | wc -l)" -le 1 ] && break
        sleep 1
    done
    echo "$keys keys: flushed after $((SECONDS - started)) s"
    for op in get register-set; do
        local line
        line=$("$HAZE" bench --addr 127.0.0.1:7961 --op "$op" --keys "$keys" --preloaded \
            --connections 50 --pipeline 16 --duration "$DURATION" | grep '^haze')
        echo "$keys keys: $line"
        RATE[$op-$keys]=$(awk '{for (i = 1; i < NF; i++) if ($(i + 1) == "ops/s") print $i}' <<<"$line")
    done
    local rss disk
    rss=$(awk '/^VmRSS/ {print $2 * 1024}' "/proc/$pid/status")
    disk=$(du -sb "$dir" | cut -f1)
    awk -v k="$keys" -v r="$rss" -v d="$disk" 'BEGIN {
        printf "%d keys: resident %.0f MB (%.0f bytes per key), on disk %.0f MB (%.0f bytes per key)\n",
            k, r / 1e6, r / k, d / 1e6, d / k }'
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
echo "# $(date -u +%Y-%m-%d) $(nproc) cores, get and register-set over $SMALL and $LARGE keys, $DURATION s each"
run "$SMALL"
run "$LARGE"
for op in get register-set; do
    awk -v op="$op" -v s="${RATE[$op-$SMALL]}" -v l="${RATE[$op-$LARGE]}" -v sk="$SMALL" -v lk="$LARGE" \
        'BEGIN {printf "%-12s %d keys %9.0f/s | %d keys %9.0f/s | ratio %.2fx\n", op, sk, s, lk, l, l / s}'
done
