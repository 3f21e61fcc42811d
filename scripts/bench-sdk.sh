#!/usr/bin/env bash
# The browser SDK's sync, measured in headless Chromium against a real node
# (sdk/js/test/bench-sync.cjs): a full sync of KEYS keys, an unchanged one, one with 1% changed.
#
#   scripts/bench-sdk.sh [KEYS]     (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-sdk.sh >/dev/null
cargo build --release -q -p haze-cli
NPM="$HOME/.cache/haze/npm"
[ -d "$NPM/node_modules/playwright-core" ] || npm install --prefix "$NPM" --no-audit --no-fund --silent playwright-core
NODE_PATH="$NPM/node_modules" node sdk/js/test/bench-sync.cjs target/release/haze "${1:-10000}"
gz="$(gzip -9 -c sdk/js/dist/haze_device_bg.wasm | wc -c)"
echo "the SDK's wasm: $gz bytes gzipped"
