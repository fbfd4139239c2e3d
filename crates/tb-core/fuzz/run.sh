#!/usr/bin/env bash
# Fuzzes tb-core's parsers: every target for SECONDS (default 20) from corpus/<target>/;
# SECONDS=0 runs the seed corpus once. The steps live once, in .ci/fuzz.
#
#   crates/tb-core/fuzz/run.sh [SECONDS]
exec "$(dirname "$0")/../../../.ci/fuzz" "$(dirname "$0")/.." "$@"
