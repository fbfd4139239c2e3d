#!/usr/bin/env bash
# Builds every fuzz target of tb-devserver (the MQTT session, the lenient JSON parser) and runs
# each for SECONDS (default 20), starting from the seed corpus in corpus/<target>/ (made from
# the conformance tests by seeds.sh). New inputs go to a temporary directory, so the seeds in the
# repository stay as they are; a crash leaves its input in artifacts/<target>/ and fails.
#
#   crates/tb-devserver/fuzz/run.sh [SECONDS]      (SECONDS=0: run the seed corpus once, no fuzzing)
#
# cargo-fuzz passes nightly flags; RUSTC_BOOTSTRAP=1 lets a stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-20}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets=$(cargo fuzz list)
cargo fuzz build -O
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in $targets; do
    mkdir -p "$work/$t"
    if [ "$SECONDS_PER_TARGET" = 0 ]; then
        args=(-runs=0)
    else
        args=(-max_total_time="$SECONDS_PER_TARGET")
    fi
    echo "--> fuzz $t (${SECONDS_PER_TARGET}s)"
    rc=0
    cargo fuzz run -O "$t" "$work/$t" "corpus/$t" -- "${args[@]}" -print_final_stats=1 \
        >"$work/$t.log" 2>&1 || rc=$?
    grep -E '^(Done|stat::number_of_executed_units)' "$work/$t.log" || true
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$work/$t.log"
        exit "$rc"
    fi
done
