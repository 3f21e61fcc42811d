#!/usr/bin/env bash
# Does a node slow down when it holds more keys than its caches? `haze bench` `get` and
# `register-set` spread evenly over SMALL keys, then over LARGE keys, each on a fresh node
# whose keys are written first (registers of 100 bytes, `haze bench`'s preload); prints
# requests/s, the ratio large/small, and the node's memory (resident) and disk (its data
# directory) per key.
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
    local started=$SECONDS
    for op in get register-set; do
        # `get` writes every key first (not timed); `register-set` then overwrites them.
        local line
        line=$("$HAZE" bench --addr 127.0.0.1:7961 --op "$op" --keys "$keys" --connections 50 \
            --pipeline 16 --duration "$DURATION" | grep '^haze')
        echo "$keys keys: $line"
        RATE[$op-$keys]=$(awk '{for (i = 1; i < NF; i++) if ($(i + 1) == "ops/s") print $i}' <<<"$line")
        [ "$op" = get ] && echo "$keys keys: written and read in $((SECONDS - started)) s"
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
