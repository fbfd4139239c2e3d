#!/usr/bin/env bash
# Builds fw-mqtt's fuzz targets and runs each for SECONDS (default 20) from its seed corpus in
# corpus/<target>/ (new inputs go to a temporary directory; a crash leaves its input in
# artifacts/<target>/ and fails). Same contract as crates/tb-core/fuzz/run.sh.
#
#   firmware/mqtt/fuzz/run.sh [SECONDS]      (SECONDS=0: run the seed corpus once, no fuzzing)
#
# cargo runs from the repository root with --fuzz-dir: cargo reads .cargo/config.toml from the
# working directory upwards, and firmware/.cargo/config.toml (thumbv7m target, build-std of
# core and alloc) must not apply to this host build.
set -euo pipefail
FUZZ=$(cd "$(dirname "$0")" && pwd)
cd "$FUZZ/../../.."
SECONDS_PER_TARGET=${1:-20}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets=$(cargo fuzz list --fuzz-dir "$FUZZ")
cargo fuzz build -O --fuzz-dir "$FUZZ"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $targets; do
    mkdir -p "$work/$t"
    if [ "$SECONDS_PER_TARGET" = 0 ]; then
        args=(-runs=0)
    else
        args=(-max_total_time="$SECONDS_PER_TARGET")
    fi
    echo "--> fuzz fw-mqtt $t (${SECONDS_PER_TARGET}s)"
    rc=0
    cargo fuzz run -O --fuzz-dir "$FUZZ" "$t" "$work/$t" "$FUZZ/corpus/$t" -- "${args[@]}" \
        -print_final_stats=1 >"$work/$t.log" 2>&1 || rc=$?
    grep -E '^(Done|stat::number_of_executed_units)' "$work/$t.log" || true
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$work/$t.log"
        exit "$rc"
    fi
done
