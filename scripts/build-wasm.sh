#!/usr/bin/env bash
# Builds the device core (haze-device, with haze-crdt under it) for wasm32-unknown-unknown,
# and links its example into a .wasm file, which proves the core links there too.
#
#   scripts/build-wasm.sh            # installs what is missing, then builds (release)
#
# rustup's toolchain here has no wasm32 target and cannot fetch one, so this uses Debian's
# Firefox toolchain instead (../shared/wasm.md): `rustc-web` and `cargo-web` (Rust 1.96, an
# LLVM with the WebAssembly backend), `rust-web-src` (the matching std source: std is built
# for the target with -Z build-std) and `lld-22` (`wasm-ld-22`, the linker). It never installs
# `libstd-rust-dev-wasm32` (Rust 1.63, too old, and it writes into the same sysroot).
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

PACKAGES=(rustc-web cargo-web rust-web-src lld-22)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

TARGET_DIR="${HAZE_WASM_TARGET_DIR:-$HOME/.cache/haze/wasm-target}"
mkdir -p "$TARGET_DIR"

# rustup's ~/.cargo/bin comes first on PATH: name Debian's tools by path, and set RUSTC (or
# the build looks for std's Cargo.lock under rustup's toolchain). Debian has no rust-lld.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22
/usr/bin/rustc --version

/usr/bin/cargo build --locked --release -p haze-device --lib --example offline_then_sync \
    --target wasm32-unknown-unknown -Z build-std=std,panic_abort --target-dir "$TARGET_DIR"

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
