// Norm forward/backward GB/s (byte model in bench_core.h) for tilenorm and the peers built in,
// side by side: for each norm (LayerNorm, RMSNorm, each also with the fused residual add, warm
// caches only), shape, dtype, direction, thread count and cache state every implementation runs
// back to back, so their ratios are taken under the same machine load.
// BM_Copy (STREAM-like, same process) gives the bandwidth ceiling; bench/bench_table.py turns
// the JSON output into the table of docs/performance.md.
//
//   norm_bench --benchmark_repetitions=3 --benchmark_out=run.json
//   python3 bench/bench_table.py run.json
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>

#include "common/thread_pool.h"
#include "harness/bench/bench_core.h"

namespace tilenorm::bench {
namespace {

void BM_Copy(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  copy_once(threads);
  for (auto _ : state) copy_once(threads);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * copy_bytes()));
}

struct Case {
  NormOp op;
  std::string impl;
  BenchShape shape;
  DType dtype;
  Direction dir;
  int threads;
  bool cold;
};

const BenchInputs& inputs_for(const BenchShape& s, DType dtype, const NormOp& op) {
  // One shape at a time: benchmarks are registered shape by shape.
  static BenchInputs cached{{0, 0}, DType::kF32, {}, {}, {}, {}};
  if (cached.shape.rows != s.rows || cached.shape.C != s.C || cached.dtype != dtype ||
      cached.op.norm != op.norm || cached.op.residual != op.residual)
    cached = make_bench_inputs(s, dtype, op);
  return cached;
}

// The accuracy check runs once per implementation, shape, dtype and thread count; its verdict
// becomes the benchmark's label, so a fast wrong answer cannot pass unnoticed.
std::string checked(Impl& impl, const Case& c, const BenchInputs& in) {
  static std::map<std::string, std::string> verdicts;
  const std::string key = op_name(c.op) + "/" + c.impl + "/" + std::to_string(c.shape.rows) + "x" +
                          std::to_string(c.shape.C) + "/" + dtype_name(c.dtype) + "/" +
                          std::to_string(c.threads);
  auto it = verdicts.find(key);
  if (it != verdicts.end()) return it->second;
  double err = 0;
  std::string v = check_outputs(in, impl.outputs(), &err);
  return verdicts[key] = v;
}

void BM_Norm(benchmark::State& state, const Case& c) {
  const BenchInputs& in = inputs_for(c.shape, c.dtype, c.op);
  std::unique_ptr<Impl> impl = make_impl(c.impl);
  std::string why;
  if (!impl->prepare(in, c.threads, &why)) {
    state.SkipWithError(("unsupported: " + why).c_str());
    return;
  }
  state.SetLabel(checked(*impl, c, in));
  for (int i = 0; i < 2; ++i) impl->run(c.dir);
  for (auto _ : state) {
    if (c.cold) {
      state.PauseTiming();
      flush_caches();
      state.ResumeTiming();
    }
    impl->run(c.dir);
  }
  state.SetBytesProcessed(static_cast<int64_t>(static_cast<double>(state.iterations()) *
                                               bytes_moved(c.shape, c.dtype, c.dir, c.op)));
  impl->release();
}

void register_copy() {
  for (int t : {1, 2}) benchmark::RegisterBenchmark("BM_Copy", BM_Copy)->Arg(t)->UseRealTime();
}

// The copy runs first and last: the ceiling is the best of both, as the machine's load drifts.
void register_all() {
  register_copy();
  const int hw = hardware_threads();
  for (const BenchShape& s : default_shapes()) {
    for (const NormOp& op : kNormOps) {
      for (DType dt : {DType::kF32, DType::kBF16}) {
        for (Direction dir : {Direction::kBackward, Direction::kForward}) {
          for (bool cold : {false, true}) {
            if (cold && op.residual) continue;
            for (int t : {1, 2}) {
              if (t > hw) continue;
              for (const std::string& impl : impl_names()) {
                const std::string name = op_name(op) + "/" + impl + "/" + direction_name(dir) +
                                         "/" + dtype_name(dt) + "/" + std::to_string(s.rows) + "x" +
                                         std::to_string(s.C) + "/threads:" + std::to_string(t) +
                                         (cold ? "/cold" : "/warm");
                benchmark::RegisterBenchmark(name.c_str(), BM_Norm,
                                             Case{op, impl, s, dt, dir, t, cold})
                    ->UseRealTime()
                    ->Unit(benchmark::kMillisecond);
              }
            }
          }
        }
      }
    }
  }
  register_copy();
}

}  // namespace
}  // namespace tilenorm::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("machine", tilenorm::bench::machine_description());
  std::string peers;
  for (const auto& v : tilenorm::bench::peer_versions()) peers += (peers.empty() ? "" : ", ") + v;
  benchmark::AddCustomContext("peers", peers.empty()
                                           ? "none " + (tilenorm::bench::peers_status().empty()
                                                            ? std::string("built")
                                                            : tilenorm::bench::peers_status())
                                           : peers);
  tilenorm::bench::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
