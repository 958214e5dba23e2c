#!/usr/bin/env bash
# Builds the sanitizer presets and runs the whole ctest suite under each, as CI does:
#   dev   AddressSanitizer + UndefinedBehaviorSanitizer, Debug at -O1 -g1 (build/dev)
#   tsan  ThreadSanitizer, Debug at -O1 -g1 (build/tsan)
# Usage: scripts/sanitize.sh [dev|tsan]...   (default: both, in that order)
# The sanitizer options (halt on the first report, leak detection, ...) are the test presets'
# environment in CMakePresets.json, so `ctest --preset dev` alone runs the same. The conformance
# registry runs light (TILENORM_CI_LIGHT=1: its largest shapes dropped, see README) unless the
# caller sets TILENORM_CI_LIGHT=0. Extra ctest arguments: CTEST_ARGS="-R conformance".
set -euo pipefail
cd "$(dirname "$0")/.."
export TILENORM_CI_LIGHT="${TILENORM_CI_LIGHT-1}"
presets=("$@")
((${#presets[@]})) || presets=(dev tsan)
for preset in "${presets[@]}"; do
  case "$preset" in
    dev | tsan) ;;
    *) echo "sanitize.sh: unknown preset '$preset' (dev, tsan)" >&2; exit 2 ;;
  esac
done
for preset in "${presets[@]}"; do
  start=$SECONDS
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  built=$SECONDS
  # shellcheck disable=SC2086
  ctest --preset "$preset" ${CTEST_ARGS:-}
  echo "sanitize.sh: $preset: build $((built - start)) s, suite $((SECONDS - built)) s"
done
