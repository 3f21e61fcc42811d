#!/usr/bin/env bash
# Builds the device core (haze-device, with haze-crdt under it) for wasm32-unknown-unknown,
# and links its example into a .wasm file, which proves the core links there too.
#
#   scripts/build-wasm.sh            # installs what is missing, then builds (release)
#
# The toolchain (Debian's Firefox Rust, installed when missing) comes from
# scripts/wasm-toolchain.sh, which build-sdk.sh shares.
#
# Idempotent: packages are installed only when missing (not pinned: security updates replace
# them, and compiler and std source come from one package version). The build, std included,
# is cached in ~/.cache/haze/wasm-target (HAZE_WASM_TARGET_DIR overrides it), never in the
# workspace's target/ (another compiler's artifacts beside rustup's). Cold: about a minute
# and a half on 2 cores; warm: seconds.
#
# haze-protocol does not build for this target (tokio's `net` brings mio, which refuses
# wasm32-unknown-unknown): the core has its own messages, which haze-client maps onto the
# protocol's.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/wasm-toolchain.sh
TARGET_DIR="$WASM_TARGET_DIR"
/usr/bin/rustc --version

"${WASM_CARGO[@]}" build --locked --release -p haze-device --lib --example offline_then_sync \
    "${WASM_TARGET_ARGS[@]}"

OUT="$TARGET_DIR/wasm32-unknown-unknown/release"
ls -l "$OUT/libhaze_device.rlib" "$OUT/examples/offline_then_sync.wasm"
echo "built: $OUT/libhaze_device.rlib and $OUT/examples/offline_then_sync.wasm"

# Where Node.js is installed, run the example: it has no imports, and its main returns 0 when
# its assertions hold (a failed one traps: panic = abort).
if command -v node >/dev/null; then
    node -e '
        const bytes = require("fs").readFileSync(process.argv[1]);
        const { main } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports;
        const code = main(0, 0);
        console.log("the example ran in WebAssembly: main returned " + code);
        process.exit(code);
    ' "$OUT/examples/offline_then_sync.wasm"
fi
