# Shared by the benchmark scripts (sourced, from the repository root): builds the release
# binary (or uses the one HAZE names, say an older build to compare with), makes a scratch
# folder, and stops every process listed in PIDS on exit.
# Redis and its tools (the peer of the benchmarks), from Debian, when missing.
need_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
    fi
}
if [ -z "${HAZE:-}" ]; then
    cargo build --release -q -p haze-cli
    HAZE=target/release/haze
fi
WORK="$(mktemp -d)"
PIDS=()
# KEEP_LOGS names a folder to copy the processes' logs to. Nothing in here may fail: under
# `set -e` a failing command would end the trap before the processes are stopped.
cleanup() {
    if [ -n "${KEEP_LOGS:-}" ]; then
        mkdir -p "$KEEP_LOGS" && cp "$WORK"/*.log "$KEEP_LOGS"/ 2>/dev/null || true
    fi
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (up to 30 s) until the file $1 (a process's log) holds the text $2; else shows it and
# fails.
wait_log() {
    for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done
    echo "no \"$2\" in $1" >&2; cat "$1" >&2; exit 1
}
