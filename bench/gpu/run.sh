#!/usr/bin/env bash
# GPU verification and benchmark of the CUDA backend, in one run (target: under 6 minutes):
#   1. configure the `cuda` preset and build only layernorm_cuda_test and layernorm_cuda_bench,
#   2. run the CUDA conformance tests against the float64 reference (must pass, none skipped),
#   3. benchmark the copy ceiling and tilenorm forward/backward (layernorm_cuda_bench),
#   4. benchmark PyTorch eager and torch.compile (peers.py) and print one table.
# Needs: an NVIDIA GPU (sm_90: H100/H200), nvcc, CMake >= 3.25, Ninja, PyTorch with CUDA, and the
# project's Debian packages (see deps below). Run from anywhere:  bench/gpu/run.sh
# Results land in $OUT (default build/cuda/bench-gpu): test log, tilenorm.jsonl, peers log,
# results.json. Exit status: non-zero if the build fails, a test fails or skips, or an output
# of the benchmark kept its NaN poison.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
BUILD=$ROOT/build/cuda
OUT=${OUT:-$BUILD/bench-gpu}
START=$(date +%s)
stage() { echo; echo "== [$(( $(date +%s) - START ))s] $*"; }
fail() { echo "run.sh: $*" >&2; exit 1; }

stage "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv ||
  fail "nvidia-smi failed: no usable NVIDIA GPU"
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null || fail "nvcc not found (looked in PATH and /usr/local/cuda/bin)"
nvcc --version | tail -1
python3 -c "import torch; assert torch.cuda.is_available()" || fail "PyTorch with CUDA is required"

stage "dependencies"
cmake_version=$(cmake --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+' | head -1)
printf '3.25\n%s\n' "${cmake_version:-0.0}" | sort -V -C ||
  fail "CMake >= 3.25 is required (found ${cmake_version:-none}; e.g. pip install 'cmake>=3.25' ninja)"
deps=(ninja-build libfmt-dev nlohmann-json3-dev libcli11-dev libhwy-dev libgtest-dev)
missing=()
if command -v dpkg >/dev/null; then  # elsewhere CMake reports what is missing
  for p in "${deps[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  command -v ninja >/dev/null && missing=("${missing[@]/ninja-build}")
  read -r -a missing <<<"${missing[*]}"
fi
if ((${#missing[@]})); then
  echo "missing packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } ||
      fail "could not install: ${missing[*]}"
  else
    fail "install them first: sudo apt-get install ${missing[*]}"
  fi
fi

stage "configure + build (cuda preset, test and benchmark targets only)"
mkdir -p "$OUT"
cmake --preset cuda -DTILENORM_BUILD_BENCHMARKS=OFF -DTILENORM_BUILD_TESTS=ON >"$OUT/configure.log" 2>&1 ||
  { tail -30 "$OUT/configure.log"; fail "configure failed (log: $OUT/configure.log)"; }
cmake --build "$BUILD" --target layernorm_cuda_test layernorm_cuda_bench -j "$(nproc)" >"$OUT/build.log" 2>&1 ||
  { grep -E "error|Error" -A3 "$OUT/build.log" | head -40; fail "build failed (log: $OUT/build.log)"; }
echo "built in $(( $(date +%s) - START ))s"

stage "CUDA conformance tests (float64 reference; fresh random inputs each run)"
status=0
"$BUILD/tests/layernorm_cuda_test" 2>&1 | tee "$OUT/test.log" | grep -E "^\[( +OK|  FAILED|  SKIPPED|  PASSED|==========)"
test_rc=${PIPESTATUS[0]}
if [ "$test_rc" != 0 ]; then
  grep -E -A12 "Failure|error" "$OUT/test.log" | head -80
  echo "CONFORMANCE TESTS FAILED (log: $OUT/test.log); benchmarking anyway"; status=1
elif grep -q "^\[  SKIPPED \]" "$OUT/test.log"; then
  echo "CONFORMANCE TESTS SKIPPED: they must run on this machine"; status=1
fi

stage "tilenorm benchmark (copy ceiling, forward, backward)"
"$BUILD/src/cuda/layernorm_cuda_bench" --iters 50 --warmup 5 | tee "$OUT/tilenorm.jsonl" ||
  { echo "layernorm_cuda_bench reported an error"; status=1; }

stage "PyTorch peers (eager, torch.compile) and the table"
budget=$(( 330 - ($(date +%s) - START) ))  # leave time for the table within 6 minutes
python3 bench/gpu/peers.py --tilenorm "$OUT/tilenorm.jsonl" --out "$OUT" --budget-s "$budget" \
  2>"$OUT/peers.err" | tee "$OUT/peers.log" | grep -v '^{' ||
  { tail -20 "$OUT/peers.err"; echo "peers.py failed"; status=1; }

stage "done in $(( $(date +%s) - START ))s; results in $OUT"
[ "$status" = 0 ] && echo "conformance: PASSED" || echo "conformance or benchmark validation: FAILED (see above)"
exit "$status"
