// .npy read and write GB/s on a 256 MiB f32 tensor (file bytes per second), in a mkdtemp folder
// under $TMPDIR; the files stay in the page cache, so this measures the copy path, not the disk.
//
//   npy_bench --benchmark_repetitions=3
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/npy.h"

namespace tilenorm {
namespace {

const Shape kShape{4096, 16384};

std::string temp_folder() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string t = std::string(tmp && *tmp ? tmp : "/tmp") + "/tilenorm_npy_bench.XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    std::atexit([] { std::filesystem::remove_all(temp_folder()); });
    return t;
  }();
  return dir;
}

void BM_NpyWrite(benchmark::State& state) {
  Tensor t(kShape, DType::kF32);
  t.fill(0.5);
  const std::string path = temp_folder() + "/w.npy";
  for (auto _ : state)
    if (!npy_write(path, t.cview()).ok()) state.SkipWithError("write failed");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * t.nbytes()));
}

void BM_NpyRead(benchmark::State& state) {
  Tensor t(kShape, DType::kF32);
  t.fill(0.5);
  const std::string path = temp_folder() + "/r.npy";
  if (!npy_write(path, t.cview()).ok()) state.SkipWithError("write failed");
  for (auto _ : state) {
    Tensor back;
    if (!npy_read(path, DType::kF32, &back).ok()) state.SkipWithError("read failed");
    benchmark::DoNotOptimize(back.raw());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * t.nbytes()));
}

BENCHMARK(BM_NpyWrite)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_NpyRead)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace tilenorm

BENCHMARK_MAIN();
