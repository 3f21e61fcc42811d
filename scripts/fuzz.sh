#!/usr/bin/env bash
# Coverage-guided fuzzing of the decoders for a bounded time: builds every target of fuzz/
# (cargo-fuzz on the stable toolchain, no sanitizer) and runs each for SECONDS_PER_TARGET
# seconds (default 20) from its committed corpus, fuzz/corpus/<target>/. Fails on the first
# crash, panic, timeout or oversized allocation, naming the input that caused it.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        FUZZ_TARGETS="wal value" to run some only
#
# The tool is built once into ~/.cache/haze/tools. Inputs the fuzzer finds interesting go to a
# scratch folder, not the repository (see fuzz/README.md to keep some).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-20}"
CARGO_FUZZ_VERSION=0.13.2
TOOLS="$HOME/.cache/haze/tools"
export PATH="$TOOLS/bin:$PATH"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    cargo install --locked --root "$TOOLS" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

targets=(${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)})
# `-s none`: the sanitizers need a nightly compiler; the targets have no unsafe code of their
# own, and panics, timeouts and allocations past the limit are what they look for.
cargo fuzz build --fuzz-dir fuzz -s none --target-dir "$TARGET_DIR"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target" "fuzz/artifacts/$target"
    log="$scratch/$target.log"
    printf '\n==> fuzz %s for %ss\n' "$target" "$SECONDS_PER_TARGET"
    # New finds go to the scratch folder (first corpus), the committed corpus is only read.
    if cargo fuzz run --fuzz-dir fuzz -s none --target-dir "$TARGET_DIR" "$target" \
        "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=512 -malloc_limit_mb=64 \
        -timeout=2 -max_len=8192 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        echo "$target: ${runs:-?} executions, ${cov:-cov: ?}, corpus $(ls "fuzz/corpus/$target" | wc -l) + $(ls "$scratch/$target" | wc -l) new, 0 crashes"
    else
        failed=1
        tail -n 60 "$log"
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "FAILED: $target crashed on ${crash:-an input (see the log above)}"
        echo "reproduce: cargo fuzz run --fuzz-dir fuzz -s none $target ${crash:-<input>}"
        break
    fi
done
exit "$failed"
