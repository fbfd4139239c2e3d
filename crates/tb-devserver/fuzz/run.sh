#!/usr/bin/env bash
# Fuzzes tb-devserver (the MQTT session, the lenient JSON parser): every target for SECONDS
# (default 20) from corpus/<target>/, made from the conformance tests by seeds.sh; SECONDS=0
# runs the seed corpus once. The steps live once, in .ci/fuzz.
#
#   crates/tb-devserver/fuzz/run.sh [SECONDS]
exec "$(dirname "$0")/../../../.ci/fuzz" "$(dirname "$0")/.." "$@"
