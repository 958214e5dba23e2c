#!/usr/bin/env bash
# The CUDA backend on an H100/H200, in one offline call (target: under 8 minutes on 16 cores):
#   1. configure the `cuda` preset (sm_90) and build only norm_cuda_test, conformance_test
#      and norm_cuda_bench,
#   2. the CUDA tests against the float64 reference: norm_cuda_test and the registry's
#      cuda cases of conformance_test (must pass, none skipped),
#   3. compute-sanitizer memcheck, racecheck, synccheck and initcheck on the small-shape tests of
#      every dtype (when installed),
#   4. the benchmark: copy ceiling, tilenorm forward/backward of LayerNorm and RMSNorm, each
#      without and with the fused residual add (norm_cuda_bench),
#   5. Nsight Compute DRAM bytes per call on three shapes (when ncu is installed),
#   6. PyTorch eager and torch.compile (peers.py, when torch sees a GPU), then one table.
# Nothing is installed or downloaded. Packages the build needs and the machine may lack come
# from bench/gpu/deps when present (bench/gpu/fetch_deps.sh fills it; carry it along). Needs
# nvcc, CMake >= 3.25 and a C++20 host compiler. Run from anywhere:  bash bench/gpu/run.sh
# Results in $OUT (default build/cuda/bench-gpu): run.log (everything printed), build.log,
# test.log, sanitizer.log, tilenorm.jsonl, ncu.csv, results.json. Exit status: non-zero if the
# build fails, a test fails or skips, a sanitizer reports an error, or a benchmark output kept
# its NaN poison; the stages after a failed one still run where they can.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
BUILD=${TILENORM_GPU_BUILD:-$ROOT/build/cuda}
OUT=${OUT:-$BUILD/bench-gpu}
DEPS=$ROOT/bench/gpu/deps
START=$(date +%s)
mkdir -p "$OUT" || exit 1
exec > >(tee -a "$OUT/run.log") 2>&1
elapsed() { echo $(($(date +%s) - START)); }
stage() { echo; echo "== [$(elapsed)s] $*"; }
failures=()
failed() { echo "FAILED: $*"; failures+=("$*"); }
finish() {
  stage "done in $(elapsed)s; results in $OUT"
  if ((${#failures[@]})); then
    printf 'FAILED: %s\n' "${failures[@]}"
    exit 1
  fi
  echo "PASSED: build, conformance tests, sanitizers (where installed), benchmark validation"
  exit 0
}

stage "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv ||
  failed "nvidia-smi: no usable NVIDIA GPU"
command -v nvcc >/dev/null || export PATH=$PATH:/usr/local/cuda/bin
command -v nvcc >/dev/null || { failed "nvcc not found (PATH, /usr/local/cuda/bin)"; finish; }
nvcc --version | tail -1

stage "build dependencies"
if [ -d "$DEPS/usr" ]; then
  # The carried prefix wins over the machine's packages: the combination fetch_deps.sh tried.
  echo "carried prefix $DEPS: $(paste -sd, "$DEPS/MANIFEST")"
  export CMAKE_PREFIX_PATH=$DEPS/usr:$DEPS/usr/lib/x86_64-linux-gnu/cmake${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export PKG_CONFIG_PATH=$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$DEPS/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export PKG_CONFIG=$DEPS/bin/pkg-config  # pkgconf with its library path
  export PATH=$DEPS/bin:$PATH
else
  echo "no $DEPS (bench/gpu/fetch_deps.sh makes it): the machine's own packages must do"
fi
cmake_version=$(cmake --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1)
printf '3.25\n%s\n' "${cmake_version:-0}" | sort -V -C ||
  { failed "CMake >= 3.25 is required (found ${cmake_version:-none})"; finish; }
command -v ninja >/dev/null || { failed "ninja not found (bench/gpu/fetch_deps.sh carries it)"; finish; }
echo "cmake $cmake_version ($(command -v cmake)), ninja $(ninja --version) ($(command -v ninja))," \
  "pkg-config ${PKG_CONFIG:-$(command -v pkg-config)}, $(${CXX:-c++} --version | head -1)"

stage "configure + build (cuda preset, sm_90, norm_cuda_test, conformance_test and norm_cuda_bench only)"
cmake --preset cuda -B "$BUILD" -DTILENORM_BUILD_TESTS=ON -DTILENORM_BUILD_BENCHMARKS=ON \
  -DTILENORM_BUILD_PEERS=OFF -DCMAKE_CUDA_ARCHITECTURES=90 >"$OUT/build.log" 2>&1 ||
  { tail -30 "$OUT/build.log"; failed "configure (log: $OUT/build.log)"; finish; }
# Where each package was found (the carried prefix or the machine).
grep -E '^(fmt|nlohmann_json|CLI11|GTest|benchmark)_DIR:|^pkgcfg_lib_HWY_hwy:|^CMAKE_MAKE_PROGRAM:|^PKG_CONFIG_EXECUTABLE:' \
  "$BUILD/CMakeCache.txt"
cmake --build "$BUILD" --target norm_cuda_test conformance_test norm_cuda_bench -j "$(nproc)" \
  >>"$OUT/build.log" 2>&1 ||
  { grep -E "error|Error" -A3 "$OUT/build.log" | head -40; failed "build (log: $OUT/build.log)"; finish; }
echo "built in $(elapsed)s"
TEST=$BUILD/tests/norm_cuda_test
BENCH=$BUILD/bench/gpu/norm_cuda_bench

# The registry's cases (harness/conformance) on the cuda backend, then the backend's own tests.
stage "CUDA conformance tests (float64 reference: the registry's cuda cases, then fresh random inputs each run)"
: >"$OUT/test.log"
run_tests() {  # a test binary and its arguments; appends to test.log
  timeout 300 "$@" 2>&1 | tee -a "$OUT/test.log" |
    grep -E "^\[(  FAILED|  SKIPPED|  PASSED|==========)"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" != 0 ]; then
    grep -E -A12 "Failure|error" "$OUT/test.log" | head -80
    failed "conformance tests: $(basename "$1") (exit $rc; log: $OUT/test.log)"
  fi
}
run_tests "$BUILD/tests/conformance_test" '--gtest_filter=*_cuda_*'
run_tests "$TEST"
if grep -q "^\[  SKIPPED \]" "$OUT/test.log"; then
  grep -m1 -B1 "^\[  SKIPPED \]" "$OUT/test.log" | head -1  # the reason
  failed "conformance tests skipped: they must run on this machine"
fi

stage "compute-sanitizer memcheck, racecheck, synccheck, initcheck (small shapes: every path and member of the family, looping groups, unaligned fp16; f32, bf16, fp16)"
if command -v compute-sanitizer >/dev/null; then
  : >"$OUT/sanitizer.log"
  for tool in memcheck racecheck synccheck initcheck; do
    timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 97 "$TEST" \
      --gtest_filter='LayerNormCuda.LimitedGrid*:LayerNormCuda.PathsByRowLength:LayerNormCuda.UnalignedTensorsF16' \
      --gtest_brief=1 \
      >>"$OUT/sanitizer.log" 2>&1
    rc=$?
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|\[  (PASSED|FAILED|SKIPPED) " "$OUT/sanitizer.log" | tail -3
    [ "$rc" = 0 ] || failed "compute-sanitizer --tool $tool (exit $rc; log: $OUT/sanitizer.log)"
  done
else
  echo "compute-sanitizer not installed: skipped"
fi

stage "tilenorm benchmark (copy ceiling, forward, backward; shapes of docs/performance.md)"
timeout 240 "$BENCH" --iters 50 --warmup 5 | tee "$OUT/tilenorm.jsonl" ||
  failed "norm_cuda_bench (an error, or an output kept its NaN poison)"

stage "Nsight Compute: DRAM bytes per call against the byte model (LayerNorm, bf16)"
if command -v ncu >/dev/null && nvidia-smi >/dev/null 2>&1; then
  for shape in 16384x4096 4096x8462 64x1048576; do
    timeout 90 ncu --clock-control none -k regex:norm_ --print-units base --csv \
      --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
      --log-file "$BUILD/ncu-$shape.csv" "$BENCH" --shapes "$shape" --dtypes bf16 --iters 1 \
      --warmup 0 --norms layernorm --residual off >/dev/null ||
      echo "ncu on $shape failed (exit $?)"
  done
  python3 bench/gpu/ncu_dram.py --out "$OUT/ncu.csv" "$BUILD"/ncu-*.csv ||
    echo "ncu_dram.py failed"
else
  echo "ncu not installed or no GPU: skipped"
fi

stage "PyTorch peers (eager, torch.compile) and the table"
if timeout 120 python3 -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  # torch.compile of new shapes stops once the run reaches 7 minutes; eager timings go on.
  PYTHONUNBUFFERED=1 python3 bench/gpu/peers.py --tilenorm "$OUT/tilenorm.jsonl" --out "$OUT" \
    --budget-s $((420 - $(elapsed))) | grep -v '^{' || failed "peers.py"
else
  echo "python3 has no torch with CUDA: the table without the peers' columns"
  python3 bench/gpu/peers.py --tilenorm "$OUT/tilenorm.jsonl" --out "$OUT" --no-peers ||
    failed "peers.py --no-peers"
fi
finish
