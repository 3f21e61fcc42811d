#!/usr/bin/env bash
# The cost of TLS and of token checks, side by side with Redis, in one run (`haze bench`).
#
#   scripts/bench-tls.sh [DURATION_SECS [ROUNDS]]
#
# 50 connections at pipeline 1 and 16, 100-byte values, `periodic` / `everysec` durability.
# Targets: a Haze node in plaintext and one over TLS; a one-node cluster in plaintext and one
# over TLS with tokens required (every request's token checked); Redis in plaintext and over
# TLS (its --tls-port, with a certificate of the same CA). Each `haze bench` line pair is one
# run, so each ratio is measured side by side: Haze/Redis in plaintext and with TLS, Haze TLS /
# Haze plaintext, and TLS with tokens / plaintext in a cluster. Every process it starts, it
# stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
# Each target's DURATION is split into ROUNDS slices taken in turn, the order reversed every
# round (`haze bench --rounds`): drift and run order fall on every target alike.
ROUNDS="${2:-4}"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_redis

CERTS="$WORK/certs"
"$HAZE" certs init --dir "$CERTS" >/dev/null
for name in controller tls cluster redis; do
    "$HAZE" certs issue node "$name" --dir "$CERTS" >/dev/null
done
tls_flags() { echo "--tls-cert $CERTS/$1.pem --tls-key $CERTS/$1.key --tls-ca $CERTS/ca.pem"; }

serve() { # $1 = name, $2 = port, then extra flags
    local name=$1 port=$2; shift 2
    # shellcheck disable=SC2068
    "$HAZE" serve --data "$WORK/$name" --listen "127.0.0.1:$port" --http "127.0.0.1:$((port + 1))" \
        --durability periodic $@ 2>"$WORK/$name.log" &
    PIDS+=($!)
    wait_log "$WORK/$name.log" "haze node ready"
}

# shellcheck disable=SC2046
serve plain 7701
# shellcheck disable=SC2046
serve tls 7711 $(tls_flags tls)
controller() { # $1 = name, $2 = port, then extra flags
    local name=$1 port=$2; shift 2
    # shellcheck disable=SC2068
    "$HAZE" controller --data "$WORK/$name" --listen "127.0.0.1:$port" --partitions 16 \
        --replicas 1 $@ 2>"$WORK/$name.log" &
    PIDS+=($!)
    wait_log "$WORK/$name.log" "haze controller ready"
}
# shellcheck disable=SC2046
controller controller 7600 $(tls_flags controller)
wait_log "$WORK/controller.log" "admin token"
controller plain-controller 7610
# shellcheck disable=SC2046
serve cluster 7721 --controller 127.0.0.1:7600 $(tls_flags cluster)
serve plain-cluster 7731 --controller 127.0.0.1:7610
"$HAZE" cluster add n1 --wait --controller 127.0.0.1:7610 >/dev/null
wait_log "$WORK/plain-cluster.log" "cluster view installed"
ADMIN="$(cat "$WORK/controller/admin.token")"
"$HAZE" cluster add n1 --wait --controller 127.0.0.1:7600 --tls-ca "$CERTS/ca.pem" --token "$ADMIN" >/dev/null
wait_log "$WORK/cluster.log" "cluster view installed"
TOKEN="$("$HAZE" token create --read --write --controller 127.0.0.1:7600 --tls-ca "$CERTS/ca.pem" \
    --token "$ADMIN" 2>/dev/null)"
# A profile for the TLS ports only: the plaintext ones resolve to plaintext, so one `haze bench`
# compares a TLS node with a plaintext one (--baseline).
export HAZE_CONFIG_DIR="$WORK/config"
mkdir -p "$HAZE_CONFIG_DIR/profiles"
cat >"$HAZE_CONFIG_DIR/profiles/bench.json" <<JSON
{"ca": "$CERTS/ca.pem", "token": "$TOKEN", "addresses": ["127.0.0.1:7711", "127.0.0.1:7721"]}
JSON

mkdir -p "$WORK/redis"
redis-server --port 7790 --bind 127.0.0.1 --tls-port 7793 \
    --tls-cert-file "$CERTS/redis.pem" --tls-key-file "$CERTS/redis.key" \
    --tls-ca-cert-file "$CERTS/ca.pem" --tls-auth-clients no \
    --dir "$WORK/redis" --appendonly yes --appendfsync everysec --save '' --daemonize no \
    --loglevel warning &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p 7790 ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(redis-server --version | cut -d' ' -f1-3)"
bench() { "$HAZE" bench --connections 50 --value-size 100 --keys 100000 --duration "$DURATION" --rounds "$ROUNDS" "$@"; }
for op in counter-incr get; do
    for pipeline in 1 16; do
        echo "## $op, pipeline $pipeline"
        echo "### haze plaintext vs redis plaintext"
        bench --op "$op" --pipeline "$pipeline" --addr 127.0.0.1:7701 --redis 127.0.0.1:7790
        echo "### haze TLS vs haze plaintext (base) and redis TLS"
        bench --op "$op" --pipeline "$pipeline" --addr 127.0.0.1:7711 --baseline 127.0.0.1:7701 \
            --redis 127.0.0.1:7793 --redis-tls-ca "$CERTS/ca.pem"
        echo "### a one-node cluster: TLS and tokens vs plaintext (base)"
        bench --op "$op" --pipeline "$pipeline" --addr 127.0.0.1:7721 --baseline 127.0.0.1:7731
    done
done
