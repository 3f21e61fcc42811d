#!/usr/bin/env bash
# Instructions per operation of a node (all its threads together) under callgrind: repeatable
# on a noisy machine, unlike throughput. Compares two builds of `haze`:
#
#   scripts/instructions-per-op.sh OP OLD_BINARY NEW_BINARY     (OP: counter-incr, set-add, get...)
#
# Each node serves `haze bench` (8 connections, pipeline 16, 1000 keys) for 8 s under callgrind;
# the count includes starting and stopping the node, which the operations dwarf.
set -u
op=$1; old=$2; new=$3; W=$(mktemp -d)
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
for which in old new; do
  bin=$old; [ $which = new ] && bin=$new
  valgrind --tool=callgrind --callgrind-out-file=$W/cg.$which "$bin" serve --data $W/d-$which --listen 127.0.0.1:7995 --http 127.0.0.1:7996 --durability periodic >/dev/null 2>$W/log.$which &
  pid=$!
  for i in $(seq 100); do grep -q "haze node ready" $W/log.$which 2>/dev/null && break; sleep 0.2; done
  out=$("$new" bench --addr 127.0.0.1:7995 --op $op --connections 8 --pipeline 16 --value-size 100 --keys 1000 --duration 8 2>/dev/null | head -1)
  kill -TERM $pid; wait $pid 2>/dev/null
  ops=$(echo "$out" | grep -o "[0-9]* ops/s" | grep -o "[0-9]*")
  ir=$(callgrind_annotate $W/cg.$which 2>/dev/null | grep "PROGRAM TOTALS" | grep -o "^[0-9,]*" | tr -d ,)
  echo "$op $which ops/s=$ops Ir=$ir Ir/op=$(( ir / (ops * 8) ))"
done
rm -rf $W
