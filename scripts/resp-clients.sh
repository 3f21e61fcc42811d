#!/usr/bin/env bash
# A Redis client library against Haze: redis-py (from PyPI, into ~/.cache/haze/python) runs
# scripts/resp/redis_py_check.py against a 3-node `haze dev --insecure` cluster's RESP ports,
# writing through one node and reading through the others. CI runs it. The cluster is stopped
# by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="$HOME/.cache/haze/python"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import redis" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "redis>=5,<7"
fi
cargo build -q -p haze-cli
WORK="$(mktemp -d)"
target/debug/haze dev --nodes 3 --base-port 0 --partitions 16 --insecure --data "$WORK/dev" \
    >"$WORK/dev.out" 2>"$WORK/dev.log" &
DEV=$!
trap 'kill $DEV 2>/dev/null || true; wait $DEV 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 200); do grep -q "^try:" "$WORK/dev.out" && break; sleep 0.1; done
mapfile -t ADDRS < <(awk '/^n[0-9]+ / { for (i = 1; i < NF; i++) if ($i == "resp") print $(i + 1) }' "$WORK/dev.out")
[ "${#ADDRS[@]}" -eq 3 ] || { echo "haze dev did not start:"; cat "$WORK/dev.out" "$WORK/dev.log"; exit 1; }
"$VENV/bin/python" scripts/resp/redis_py_check.py "${ADDRS[@]}"
