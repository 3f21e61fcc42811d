#!/usr/bin/env bash
# Tests the browser SDK in headless Chromium, as CI runs it:
#
#   scripts/test-sdk.sh            # wasm-bindgen tests of haze-device-wasm, then the SDK end to end
#   scripts/test-sdk.sh --wasm     # only the wasm-bindgen tests
#
# 1. haze-device-wasm's tests (crates/device-wasm/tests) built for wasm32 and run by
#    wasm-bindgen-test-runner in Chromium through chromedriver (capabilities in the crate's
#    webdriver.json): two replicas edit offline and converge through the sync state machine
#    with a fake node, reopen from what they persisted, and refuse bad input with typed errors.
# 2. The SDK's JavaScript and the example (examples/web-list) against a real node, driven by
#    Playwright (sdk/js/test/e2e.cjs): two browser contexts edit offline, one reloads while the
#    node is down, both converge; where the node serves /v1/ws, an edit reaches the other
#    context live. Screenshots go to $SDK_SHOTS (default target/sdk-shots).
# 3. The SDK's WebSocket against a stand-in for /v1/ws in front of the node
#    (sdk/js/test/socket.cjs): auth, subscriptions, sync over the socket, pushed updates, and a
#    session closed as lagging (4000) that reconnects, subscribes again and syncs by digests.
# 4. The example on `haze dev --nodes 3 --web examples/web-list` (sdk/js/test/cluster.cjs): two
#    contexts on different nodes see each other's edits live and converge after offline edits
#    of one list, counter and map; a Rust device (`haze local`) converges with them; after every
#    node's data is wiped, the browsers' next syncs restore it; a token scoped to another
#    prefix is refused and writes nothing.
#
# Installs what is missing: chromium and chromium-driver (Debian), the wasm toolchain and
# wasm-bindgen-cli (scripts/wasm-toolchain.sh), playwright-core and typescript (npm, into
# ~/.cache/haze/npm; Node.js and npm must be installed).
# Node.js runs Playwright only: the SDK itself runs in the browser.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wasm-toolchain.sh
need_debs chromium chromium-driver
need_wasm_bindgen

(
    export CHROMEDRIVER=/usr/bin/chromedriver
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
    "${WASM_CARGO[@]}" test --locked -p haze-device-wasm --lib --tests "${WASM_TARGET_ARGS[@]}"
)
[ "${1:-}" = "--wasm" ] && exit 0

scripts/build-sdk.sh
# The size budget: the wasm a page downloads stays under 250 KiB gzipped.
gz="$(gzip -9 -c sdk/js/dist/haze_device_bg.wasm | wc -c)"
[ "$gz" -le $((250 * 1024)) ] || { echo "the wasm is $gz bytes gzipped: over 250 KiB" >&2; exit 1; }

# The node: HAZE names a binary, or it is built by the host toolchain (rustup's: the Debian
# variables must not reach it). Live updates are tested where the node serves /v1/ws.
if [ -z "${HAZE:-}" ]; then
    (
        unset RUSTC RUSTDOC RUSTC_BOOTSTRAP
        cargo build --locked -q -p haze-cli
    )
    HAZE="${CARGO_TARGET_DIR:-target}/debug/haze"
fi

NPM="$HOME/.cache/haze/npm"
if [ ! -d "$NPM/node_modules/playwright-core" ] || [ ! -x "$NPM/node_modules/.bin/tsc" ]; then
    mkdir -p "$NPM"
    npm install --prefix "$NPM" --no-audit --no-fund --silent playwright-core typescript
fi
# The hand-written types against the API as the README uses it (sdk/js/types-check.ts).
"$NPM/node_modules/.bin/tsc" --noEmit -p sdk/js
NODE_PATH="$NPM/node_modules" node sdk/js/test/e2e.cjs "$HAZE" "${SDK_SHOTS:-target/sdk-shots}"
NODE_PATH="$NPM/node_modules" node sdk/js/test/socket.cjs "$HAZE"
NODE_PATH="$NPM/node_modules" node sdk/js/test/cluster.cjs "$HAZE" "${SDK_SHOTS:-target/sdk-shots}"
