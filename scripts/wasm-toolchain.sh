# Sourced by the scripts that build Rust for the browser (build-wasm.sh, build-sdk.sh,
# test-sdk.sh), from the repository root: the toolchain, installed when missing, and the
# environment that selects it. ../shared/wasm.md explains each choice.
#
# rustup's toolchain here has no wasm32 target and cannot fetch one, so this uses Debian's
# Firefox toolchain: `rustc-web` and `cargo-web` (Rust 1.96, an LLVM with the WebAssembly
# backend), `rust-web-src` (the matching std source: std is built for the target with -Z
# build-std) and `lld-22` (`wasm-ld-22`, the linker). Never `libstd-rust-dev-wasm32` (Rust
# 1.63, too old, and it writes into the same sysroot). Packages are not pinned: security
# updates replace them, and compiler and std source come from one package version.

# Installs the Debian packages given that are missing (one apt-get for all of them).
need_debs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    echo "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

need_debs rustc-web cargo-web rust-web-src lld-22

# The build, std included, is cached here (HAZE_WASM_TARGET_DIR overrides it), never in the
# workspace's target/ (another compiler's artifacts beside rustup's).
WASM_TARGET_DIR="${HAZE_WASM_TARGET_DIR:-$HOME/.cache/haze/wasm-target}"
mkdir -p "$WASM_TARGET_DIR"

# rustup's ~/.cargo/bin comes first on PATH: name Debian's tools by path, and set RUSTC (or
# the build looks for std's Cargo.lock under rustup's toolchain). Debian has no rust-lld.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22
WASM_CARGO=(/usr/bin/cargo)
WASM_TARGET_ARGS=(--target wasm32-unknown-unknown -Z build-std=std,panic_abort --target-dir "$WASM_TARGET_DIR")

# Puts wasm-bindgen (and its test runner) on PATH at exactly the version of the wasm-bindgen
# crate in Cargo.lock: the two must match, or the generated glue refuses the module. Built once
# with rustup's cargo (in a subshell: the Debian toolchain's variables must not reach it) into
# ~/.cache/haze/wasm-bindgen-VERSION. About 3.5 minutes on 2 cores, then free.
need_wasm_bindgen() {
    local version
    version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)"
    [ -n "$version" ] || { echo "no wasm-bindgen in Cargo.lock" >&2; return 1; }
    local root="$HOME/.cache/haze/wasm-bindgen-$version"
    if [ ! -x "$root/bin/wasm-bindgen" ] || [ ! -x "$root/bin/wasm-bindgen-test-runner" ]; then
        echo "building wasm-bindgen-cli $version into $root (once)"
        (
            unset RUSTC RUSTDOC RUSTC_BOOTSTRAP CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER
            local src
            src="$(mktemp -d)"
            trap 'rm -rf "$src"' EXIT
            # The published lock file pins a webpki-roots the registry here does not serve
            # (wasm.md, pitfall 3): fetch the crate, move that one pin, install from the copy.
            cargo install --locked wasm-bindgen-cli --version "=$version" --root "$root" 2>/dev/null || {
                local crate
                crate="$(find "$HOME/.cargo/registry/cache" -name "wasm-bindgen-cli-$version.crate" | head -n1)"
                if [ -z "$crate" ]; then
                    # `cargo fetch` of a throwaway package that depends on it downloads the .crate.
                    mkdir -p "$src/fetch/src" && touch "$src/fetch/src/lib.rs"
                    printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwasm-bindgen-cli = "=%s"\n' "$version" >"$src/fetch/Cargo.toml"
                    cargo fetch --manifest-path "$src/fetch/Cargo.toml" >/dev/null 2>&1 || true
                    crate="$(find "$HOME/.cargo/registry/cache" -name "wasm-bindgen-cli-$version.crate" | head -n1)"
                fi
                [ -n "$crate" ] || { echo "cannot download wasm-bindgen-cli $version" >&2; exit 1; }
                tar -xzf "$crate" -C "$src"
                cd "$src/wasm-bindgen-cli-$version"
                cargo update -q -p webpki-roots --precise 1.0.10
                cargo install --locked --path . --root "$root"
            }
        )
    fi
    export PATH="$root/bin:$PATH"
}
