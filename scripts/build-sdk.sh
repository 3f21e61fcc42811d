#!/usr/bin/env bash
# Builds the browser SDK: haze-device-wasm for wasm32-unknown-unknown, then wasm-bindgen's
# JavaScript glue into sdk/js/dist/ (gitignored: this script is how it is made), and links the
# SDK into the example (examples/web-list/sdk, gitignored) so a static server of that folder
# serves everything the page loads.
#
#   scripts/build-sdk.sh        # installs what is missing, builds, prints the gzipped size
#
# Installs what is missing: Debian's Firefox toolchain (scripts/wasm-toolchain.sh) and
# wasm-bindgen-cli at exactly the version in Cargo.lock (built once into ~/.cache/haze/).
# Size settings are given here, not in the workspace's release profile (host release builds
# keep theirs): opt-level "s", fat LTO, one codegen unit, panic = abort. Cold: about two
# minutes (plus 3.5 for wasm-bindgen-cli, once); warm: seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/wasm-toolchain.sh
need_wasm_bindgen

SIZE=(--config 'profile.release.opt-level="s"' --config 'profile.release.lto="fat"'
      --config 'profile.release.codegen-units=1' --config 'profile.release.panic="abort"'
      --config 'profile.release.debug=false' --config 'profile.release.strip="debuginfo"')
"${WASM_CARGO[@]}" build --locked --release -p haze-device-wasm --lib "${SIZE[@]}" "${WASM_TARGET_ARGS[@]}"

WASM="$WASM_TARGET_DIR/wasm32-unknown-unknown/release/haze_device_wasm.wasm"
DIST=sdk/js/dist
rm -rf "$DIST"
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir "$DIST" --out-name haze_device "$WASM"

# The example loads the SDK from ./sdk/: a symbolic link keeps one copy (and no stale one).
ln -sfn ../../sdk/js examples/web-list/sdk

bytes="$(wc -c <"$DIST/haze_device_bg.wasm")"
gz="$(gzip -9 -c "$DIST/haze_device_bg.wasm" | wc -c)"
echo "built $DIST: haze_device_bg.wasm $((bytes / 1024)) KiB, $((gz / 1024)) KiB gzipped ($gz bytes; target: under 250 KiB)"
