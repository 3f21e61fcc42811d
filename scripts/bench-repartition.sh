#!/usr/bin/env bash
# Adds a fourth node to a 3-node cluster (N = 3) holding KEYS keys, under client load, and
# reports: how long the change took, how fast the partitions streamed (against this machine's
# loopback and disk write rates, measured first), and the clients' throughput and p99 latency
# during the move as a ratio to before it.
#
#   scripts/bench-repartition.sh [KEYS] [MOVE_RATE] [LOAD]
#
# KEYS defaults to 1000000 (100-byte registers); MOVE_RATE is the controller's --move-rate
# (default 0: unlimited, to see what streaming reaches; try 64MiB for the default). The load is
# `haze bench --op mixed` through node 1, 16 connections: LOAD "max" (the default) sends as fast
# as the cluster answers (throughput is the measure; on a saturated machine any extra work shows
# as latency), a number sends that fraction of the throughput measured before the move at a fixed
# rate (say 0.5: latency at a steady load below capacity, counted from when each request was
# due), "none" runs no load during the change (what the move costs alone). CONTROLLER_ARGS adds
# controller flags (say "--move-partitions-per-node 1"), SERVE_ARGS node flags (say "--flush-mib 8").
# CHANGE=none adds no node: it runs 16 slices of 5 s of the load instead, to show the stalls the
# cluster has on its own. SLICE_SECS sets the length of the load's slices during the change
# (default 5; 1 shows when latency rises). Every process it starts, it stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS="${1:-1000000}"
RATE="${2:-0}"
LOAD="${3:-max}"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

NODE_PIDS=()
cpu() { # $1 = PID: CPU seconds it has used (user + system)
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"
}
metric() { # $1 = HTTP address, $2 = metric name: its value
    curl -s "http://$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'
}
OPS_RATE=() # --rate OPS once the load is fixed
bench() { # $1 = seconds: one line of `haze bench` results
    "$HAZE" bench --addr 127.0.0.1:7901 --op mixed --connections 16 --keys "$KEYS" \
        --preloaded --duration "$1" "${OPS_RATE[@]}" 2>/dev/null | grep -E "ops/s|first error" | sed 's/  */ /g'
}

echo "# $(date -u +%Y-%m-%d) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# The machine's limits: sequential writes to the disk (fdatasync at the end) and one TCP stream
# over loopback.
DISK=$(dd if=/dev/zero of="$WORK/dd" bs=1M count=512 conv=fdatasync 2>&1 | awk '/copied/ { print $(NF-1), $NF }')
rm -f "$WORK/dd"
LOOPBACK=$(python3 - <<'EOF'
import socket, threading, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
port = srv.getsockname()[1]
def sink():
    c, _ = srv.accept()
    while c.recv(1 << 20): pass
threading.Thread(target=sink, daemon=True).start()
s = socket.create_connection(("127.0.0.1", port)); buf = b"x" * (1 << 20)
t = time.time(); n = 0
while time.time() - t < 2: s.sendall(buf); n += len(buf)
print(f"{n / (time.time() - t) / (1 << 20):.0f} MiB/s")
EOF
)
echo "disk sequential write: $DISK; loopback TCP: $LOOPBACK"

# shellcheck disable=SC2086 # CONTROLLER_ARGS is a list of flags
"$HAZE" controller --data "$WORK/controller" --listen 127.0.0.1:7900 --move-rate "$RATE" ${CONTROLLER_ARGS:-} \
    2>"$WORK/controller.log" &
PIDS+=($!)
wait_log "$WORK/controller.log" "haze controller ready"
for i in 1 2 3 4; do
    # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
    "$HAZE" serve --data "$WORK/n$i" --listen "127.0.0.1:790$i" --http "127.0.0.1:791$i" ${SERVE_ARGS:-} \
        --controller 127.0.0.1:7900 2>"$WORK/n$i.log" &
    PIDS+=($!)
    NODE_PIDS[$i]=$!
    wait_log "$WORK/n$i.log" "registered with the controller"
done
"$HAZE" cluster add n1 n2 n3 --wait --controller 127.0.0.1:7900 >/dev/null
for i in 1 2 3; do wait_log "$WORK/n$i.log" "cluster view installed"; done

START=$(date +%s.%N)
"$HAZE" bench --addr 127.0.0.1:7901 --op get --keys "$KEYS" --connections 1 --duration 1 >/dev/null
echo "loaded $KEYS keys in $(echo "$(date +%s.%N) - $START" | bc) s; data per node: $(du -sh "$WORK/n1" | cut -f1)"

BEFORE=$(bench 10)
if [ "$LOAD" = none ]; then
    bench() { sleep "$1"; echo "(no load)"; }
elif [ "$LOAD" != max ]; then
    CAPACITY=$(echo "$BEFORE" | grep -oE '[0-9]+ ops/s' | cut -d' ' -f1)
    # Up to 32 requests in flight per connection: at a fixed rate a connection must not wait
    # for one answer before it sends the next request due (that would close the loop again).
    OPS_RATE=(--rate "$(echo "$CAPACITY * $LOAD / 1" | bc)" --pipeline 32)
    echo "capacity before the move: $BEFORE"
    echo "fixed load: ${OPS_RATE[1]} requests/s ($LOAD of it)"
    BEFORE=$(bench 10)
fi
echo "before the move: $BEFORE"
if [ "${CHANGE:-add}" = none ]; then
    for slice in $(seq 16); do echo "no change ($slice): $(bench 5)"; done
    exit 0
fi
moving() {
    "$HAZE" cluster status --json --controller 127.0.0.1:7900 >"$WORK/status.json"
    grep -q '"progress"' "$WORK/status.json"
}
CPU_BEFORE=(); for i in 1 2 3 4; do CPU_BEFORE[$i]=$(cpu "${NODE_PIDS[$i]}"); done
START=$(date +%s.%N)
"$HAZE" cluster add n4 --controller 127.0.0.1:7900 >/dev/null
# The change's own duration, polled apart from the load's 5-second slices.
( while moving; do sleep 0.2; done
  for i in 1 2 3 4; do echo "$(cpu "${NODE_PIDS[$i]}")"; done >"$WORK/cpu"
  date +%s.%N >"$WORK/done" ) &
PIDS+=($!)
SLICE=0
DURING=()
while [ ! -s "$WORK/done" ]; do
    SLICE=$((SLICE + 1))
    AT=$(echo "$(date +%s.%N) - $START" | bc | cut -c1-4)
    LINE=$(bench "$([ "$LOAD" = none ] && echo 1 || echo "${SLICE_SECS:-5}")")
    DURING+=("$LINE")
    echo "during the move ($SLICE, from ${AT} s): $LINE"
done
ELAPSED=$(echo "$(cat "$WORK/done") - $START" | bc)
mapfile -t CPU_AFTER <"$WORK/cpu"
USED=""; for i in 1 2 3 4; do USED+=" n$i $(echo "${CPU_AFTER[$((i - 1))]} - ${CPU_BEFORE[$i]}" | bc) s"; done
echo "after the move: $(bench 10)"
BYTES=0; KEYS_SENT=0
for i in 1 2 3; do
    BYTES=$((BYTES + $(metric "127.0.0.1:791$i" haze_handoff_bytes_total)))
    KEYS_SENT=$((KEYS_SENT + $(metric "127.0.0.1:791$i" haze_handoff_keys_total)))
done
echo "adding n4 took ${ELAPSED} s (load included); streamed $KEYS_SENT keys, $((BYTES / 1048576)) MiB: \
$(echo "scale=1; $BYTES / 1048576 / $ELAPSED" | bc) MiB/s over the whole change"
echo "CPU used by the nodes during the change (2 cores: $(echo "2 * $ELAPSED / 1" | bc) s in all):$USED"
if [ "$LOAD" != none ]; then
    # The ratios the issue asks for: each slice's throughput and p99 against before the move.
    ops() { grep -oE '[0-9]+ ops/s' <<<"$1" | head -1 | cut -d' ' -f1; }
    p99() { grep -oE 'p99 [0-9.]+' <<<"$1" | head -1 | cut -d' ' -f2; }
    RATIOS=""
    for line in "${DURING[@]}"; do
        RATIOS+=" $(echo "scale=2; $(ops "$line") / $(ops "$BEFORE")" | bc)x/$(echo "scale=1; $(p99 "$line") / $(p99 "$BEFORE")" | bc)x"
    done
    echo "during the move, per slice, throughput/p99 as a ratio to before:$RATIOS"
fi
