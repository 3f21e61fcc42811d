#!/usr/bin/env bash
# The HTTP API against its contract (GET /v1/openapi.json), with schemathesis: generated requests,
# valid and not, to a real node; no answer may be a server error, and every status, content type
# and body must be one the contract documents. The contract is generated from the code that
# serves it (utoipa: crates/node/src/http/openapi.rs).
#
#   scripts/api-fuzz.sh [EXAMPLES_PER_OPERATION]      # default 50; CI runs it
#
# schemathesis comes from PyPI (installed into ~/.cache/haze/schemathesis when missing). The
# node is the debug build, on loopback; the script stops it by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES="${1:-50}"

VENV="$HOME/.cache/haze/schemathesis"
if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis>=4,<5"
fi
cargo build -q -p haze-cli
WORK="$(mktemp -d)"
target/debug/haze serve --data "$WORK/data" --listen 127.0.0.1:0 --http 127.0.0.1:0 2>"$WORK/node.log" &
NODE=$!
trap 'kill $NODE 2>/dev/null || true; wait $NODE 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q "haze node ready" "$WORK/node.log" && break; sleep 0.1; done
HTTP="$(grep -o 'http=[0-9.:]*' "$WORK/node.log" | head -1 | cut -d= -f2)"
[ -n "$HTTP" ] || { echo "the node did not start:"; cat "$WORK/node.log"; exit 1; }

# `POST /v1/sync` takes the binary protocol's encoding (application/x-haze), which schemathesis
# cannot generate: the protocol's decoders have fuzz targets of their own (scripts/fuzz.sh).
# `GET /v1/ws` is a WebSocket upgrade, whose session crates/node/tests/node/live.rs drives.
"$VENV/bin/schemathesis" run "http://$HTTP/v1/openapi.json" --url "http://$HTTP" --no-color --seed 7 \
    --exclude-path /v1/sync --exclude-path /v1/ws \
    -n "$EXAMPLES" \
    -c not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
if grep -q "panicked" "$WORK/node.log"; then
    echo "the node logged a panic:"; grep panicked "$WORK/node.log"; exit 1
fi
