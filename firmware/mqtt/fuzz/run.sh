#!/usr/bin/env bash
# Fuzzes fw-mqtt (the networked firmware's MQTT client): every target for SECONDS (default 20)
# from corpus/<target>/; SECONDS=0 runs the seed corpus once. The steps live once, in .ci/fuzz,
# which runs cargo from the repository root so firmware/.cargo/config.toml (thumbv7m target,
# build-std) does not apply to this host build.
#
#   firmware/mqtt/fuzz/run.sh [SECONDS]
exec "$(dirname "$0")/../../../.ci/fuzz" "$(dirname "$0")/.." "$@"
