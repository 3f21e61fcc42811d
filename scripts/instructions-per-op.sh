#!/usr/bin/env bash
# Instructions per operation of a node (all its threads together) under callgrind: repeatable
# on a noisy machine, unlike throughput. Compares two builds of `haze`:
#
#   scripts/instructions-per-op.sh OP OLD_BINARY NEW_BINARY [PIPELINE [CONNECTIONS]]
#
# OP is `haze bench`'s (counter-incr, set-add, register-set, get...). Each node serves `haze
# bench` (CONNECTIONS connections, default 8; pipeline PIPELINE, default 16; 1000 keys) for 8 s
# under callgrind. A write's count includes starting and stopping the node, which the
# operations dwarf. `get` reads keys that exist: a first short run writes every key (and
# reads), then callgrind's counters are zeroed and only the reads of the 8 s are counted
# (`callgrind_control`).
set -u
op=$1; old=$2; new=$3; pipeline=${4:-16}; connections=${5:-8}; W=$(mktemp -d)
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
bench() { "$new" bench --addr 127.0.0.1:7995 --op "$op" --connections "$connections" \
    --pipeline "$pipeline" --value-size 100 --keys 1000 "$@" 2>/dev/null | head -1; }
for which in old new; do
  bin=$old; [ $which = new ] && bin=$new
  valgrind --tool=callgrind --callgrind-out-file=$W/cg.$which "$bin" serve --data $W/d-$which --listen 127.0.0.1:7995 --http 127.0.0.1:7996 --durability periodic >/dev/null 2>$W/log.$which &
  pid=$!
  for i in $(seq 100); do grep -q "haze node ready" $W/log.$which 2>/dev/null && break; sleep 0.2; done
  counted=$W/cg.$which
  if [ "$op" = get ]; then
    bench --duration 1 >/dev/null
    callgrind_control --zero $pid >/dev/null 2>&1
    out=$(bench --duration 8 --preloaded)
    callgrind_control --dump $pid >/dev/null 2>&1
    counted=$W/cg.$which.1
  else
    out=$(bench --duration 8)
  fi
  kill -TERM $pid; wait $pid 2>/dev/null
  ops=$(echo "$out" | grep -o "[0-9]* ops/s" | grep -o "[0-9]*")
  ir=$(callgrind_annotate $counted 2>/dev/null | grep "PROGRAM TOTALS" | grep -o "^[0-9,]*" | tr -d ,)
  echo "$op pipeline $pipeline $which ops/s=$ops Ir=$ir Ir/op=$(( ir / (ops * 8) ))"
done
rm -rf $W
