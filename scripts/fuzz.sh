#!/usr/bin/env bash
# Builds the `fuzz` preset and fuzzes the .npy parser for SECONDS (default 60; 0 = until stopped),
# starting from the committed seeds in fuzz/corpus/npy. New inputs collect in build/fuzz/corpus;
# a crash is written to build/fuzz/ and the script exits non-zero. Needs install.sh --with-fuzz.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")/.."
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
mkdir -p build/fuzz/corpus
cd build/fuzz
./fuzz/npy_fuzz -max_total_time="$seconds" -print_final_stats=1 corpus ../../fuzz/corpus/npy
