// Speed of the tile machine itself: elements per second through reader -> compute -> writer on
// 64 cores (8x8), copy and binary element-wise, sanitizer off and on.
#include <benchmark/benchmark.h>

#include <thread>
#include <vector>

#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/device.h"
#include "tilenorm/status.h"

namespace tilenorm::tile {
namespace {

constexpr uint32_t kA = 0, kB = 1, kOut = 16;

struct ReadArgs {
  uint32_t a, b, start, count;
};
template <bool kTwoInputs>
void reader(const ReadArgs& r) {
  const InterleavedAddrGenFast<true> sa = tile_addr_gen(r.a, kA);
  const InterleavedAddrGenFast<true> sb = tile_addr_gen(r.b, kB);
  for (uint32_t i = 0; i < r.count; ++i) {
    cb_reserve_back(kA, 1);
    noc_async_read_tile(r.start + i, sa, get_write_ptr(kA));
    if constexpr (kTwoInputs) {
      cb_reserve_back(kB, 1);
      noc_async_read_tile(r.start + i, sb, get_write_ptr(kB));
    }
    noc_async_read_barrier();
    cb_push_back(kA, 1);
    if constexpr (kTwoInputs) cb_push_back(kB, 1);
  }
}

struct ComputeArgs {
  uint32_t count;
};
template <bool kTwoInputs>
void compute(const ComputeArgs& c) {
  binary_op_init_common(kA, kB, kOut);
  for (uint32_t i = 0; i < c.count; ++i) {
    cb_wait_front(kA, 1);
    if constexpr (kTwoInputs) cb_wait_front(kB, 1);
    tile_regs_acquire();
    if constexpr (kTwoInputs) {
      add_tiles(kA, kB, 0, 0, 0);
    } else {
      copy_tile(kA, 0, 0);
    }
    tile_regs_commit();
    tile_regs_wait();
    cb_reserve_back(kOut, 1);
    pack_tile(0, kOut);
    cb_push_back(kOut, 1);
    tile_regs_release();
    cb_pop_front(kA, 1);
    if constexpr (kTwoInputs) cb_pop_front(kB, 1);
  }
}

struct WriteArgs {
  uint32_t out, start, count;
};
void writer(const WriteArgs& w) {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(w.out, kOut);
  for (uint32_t i = 0; i < w.count; ++i) {
    cb_wait_front(kOut, 1);
    noc_async_write_tile(w.start + i, s, get_read_ptr(kOut));
    noc_async_write_barrier();
    cb_pop_front(kOut, 1);
  }
}

// Args: sanitizer (0 off, 1 error mode), tiles per core, host threads (0: all CPUs).
template <bool kTwoInputs>
void BM_Pipeline(benchmark::State& state) {
  DeviceConfig cfg;  // 8x8 cores, faithful numerics
  cfg.sanitizer = state.range(0) != 0 ? SanitizerMode::kError : SanitizerMode::kOff;
  cfg.host_threads = state.range(2) > 0 ? static_cast<int>(state.range(2))
                                        : static_cast<int>(std::thread::hardware_concurrency());
  Device d(cfg);
  const uint32_t per_core = static_cast<uint32_t>(state.range(1)), cores = 64;
  const uint32_t n = per_core * cores;
  Buffer a, b, out;
  TN_CHECK(d.create_buffer(n, DataFormat::Float16_b, &a).ok(), "buffer");
  TN_CHECK(d.create_buffer(n, DataFormat::Float16_b, &b).ok(), "buffer");
  TN_CHECK(d.create_buffer(n, DataFormat::Float16_b, &out).ok(), "buffer");
  std::vector<float> ones(size_t{n} * kTileElems, 1.0f);
  std::vector<uint16_t> bytes(ones.size());
  encode(ones.data(), ones.size(), DataFormat::Float16_b, bytes.data());
  TN_CHECK(d.write_buffer(a, bytes.data(), bytes.size() * 2).ok(), "write");
  TN_CHECK(d.write_buffer(b, bytes.data(), bytes.size() * 2).ok(), "write");

  Program p(d);
  const CoreRange all({0, 0}, {7, 7});
  TN_CHECK(p.create_circular_buffer(all, kA, DataFormat::Float16_b, 2).ok(), "cb");
  TN_CHECK(p.create_circular_buffer(all, kB, DataFormat::Float16_b, 2).ok(), "cb");
  TN_CHECK(p.create_circular_buffer(all, kOut, DataFormat::Float16_b, 2).ok(), "cb");
  auto r = p.create_kernel(KernelKind::kReader, all, &reader<kTwoInputs>);
  auto c = p.create_kernel(KernelKind::kCompute, all, &compute<kTwoInputs>);
  auto w = p.create_kernel(KernelKind::kWriter, all, &writer);
  p.set_common_runtime_args(c, ComputeArgs{per_core});
  for (uint32_t i = 0; i < cores; ++i) {
    const CoreCoord core{i % 8, i / 8};
    p.set_runtime_args(r, core, ReadArgs{a.address, b.address, i * per_core, per_core});
    p.set_runtime_args(w, core, WriteArgs{out.address, i * per_core, per_core});
  }
  // Validate once before timing: every output element is 1 (copy) or 2 (add).
  TN_CHECK(d.run(p).ok(), "pipeline run failed");
  std::vector<uint16_t> check(bytes.size());
  TN_CHECK(d.read_buffer(out, check.data(), check.size() * 2).ok(), "read");
  const uint16_t expect = kTwoInputs ? 0x4000 : 0x3f80;
  for (uint16_t h : check) TN_CHECK(h == expect, "wrong pipeline output");

  for (auto _ : state) {
    const Status s = d.run(p);
    benchmark::DoNotOptimize(s.ok());
  }
  const int64_t elements = int64_t{n} * kTileElems;
  state.SetItemsProcessed(state.iterations() * elements);
  state.SetBytesProcessed(state.iterations() * elements * 2 * (kTwoInputs ? 3 : 2));
  state.counters["tiles/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * n, benchmark::Counter::kIsRate);
  state.counters["host_threads"] = cfg.host_threads;
}

// Both pipelines: without and with the sanitizer, and on one host thread.
void pipeline_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"sanitizer", "tiles_per_core", "threads"})
      ->Args({0, 64, 0})
      ->Args({1, 64, 0})
      ->Args({0, 64, 1})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}
BENCHMARK(BM_Pipeline<false>)->Name("copy_pipeline")->Apply(pipeline_args);
BENCHMARK(BM_Pipeline<true>)->Name("eltwise_add_pipeline")->Apply(pipeline_args);

}  // namespace
}  // namespace tilenorm::tile

BENCHMARK_MAIN();
