// Prints the DRAM traffic of the family's tile ops, run as LayerNorm (the member with the most
// tensors), from the machine's counters: bytes moved over the floor (forward: read x + write y;
// backward: read x, dy + write dx) and the estimated Wormhole time (bytes / 288 GB/s), per
// path. A counters tool, not a timed benchmark.
//   norm_tile_traffic [ROWSxC ...]   default: 16384x4096 4096x8462 1024x65536
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tile/ops/norm_backward/norm_backward.h"
#include "tile/ops/norm_forward/norm_forward.h"

namespace tilenorm::tile {
namespace {

Tensor pattern(const Shape& shape, uint64_t seed) {
  Tensor t(shape, DType::kBF16);
  bf16* p = t.data<bf16>();
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = float_to_bf16(float(double(s >> 11) * 0x1.0p-52 - 1.0));
  }
  return t;
}

void print_row(const char* op, int64_t rows, int64_t C, const TileOpInfo& info, double host_s) {
  const Counters& c = info.counters;
  std::printf("%-8s %6lldx%-6lld %-5s %5u %12.1f %12.1f %12.1f %7.3f %10.1f %8.1f\n", op,
              static_cast<long long>(rows), static_cast<long long>(C), info.path.c_str(),
              info.cores, c.dram_bytes_read / 1e6, c.dram_bytes_written / 1e6,
              info.floor_bytes / 1e6, info.traffic_ratio(), c.estimated_device_seconds * 1e6,
              host_s);
}

}  // namespace
}  // namespace tilenorm::tile

int main(int argc, char** argv) {
  using namespace tilenorm;
  using namespace tilenorm::tile;
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (int i = 1; i < argc; ++i) {
    long long r = 0, c = 0;
    if (std::sscanf(argv[i], "%lldx%lld", &r, &c) != 2 || r <= 0 || c <= 0) {
      std::fprintf(stderr, "usage: %s [ROWSxC ...]\n", argv[0]);
      return 2;
    }
    shapes.emplace_back(r, c);
  }
  if (shapes.empty()) shapes = {{16384, 4096}, {4096, 8462}, {1024, 65536}};
  std::printf("%-8s %13s %-5s %5s %12s %12s %12s %7s %10s %8s\n", "op", "shape", "path", "cores",
              "read MB", "written MB", "floor MB", "ratio", "est. us", "host s");
  for (auto [rows, C] : shapes) {
    const Shape shape{rows, C};
    const Tensor x = pattern(shape, 1), dy = pattern(shape, 2), gamma = pattern(Shape{C}, 3);
    Tensor y(shape, DType::kBF16), mean(Shape{rows}, DType::kF32), rstd(Shape{rows}, DType::kF32);
    Tensor dx(shape, DType::kBF16), dgamma(Shape{C}, DType::kF32), dbeta(Shape{C}, DType::kF32);
    for (const char* path : {"fit", "block"}) {
      TileOpConfig config;
      config.device.sanitizer = SanitizerMode::kOff;
      // Only what fits in 1464 KiB: the fit path is reported where the L1 rule picks it.
      const auto plan = norm_backward_plan({}, rows, C, DataFormat::Float16_b, config.device);
      if (std::string(path) == "fit" && !plan.fit) continue;
      config.force_path = path;
      TileOpInfo info;
      auto t0 = std::chrono::steady_clock::now();
      Status s = norm_forward_tile({.x = x.cview(), .gamma = gamma.cview(), .eps = 1e-5},
                                   {.y = y.view(), .mean = mean.view(), .rstd = rstd.view()},
                                   config, &info);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!s.ok()) {
        std::fprintf(stderr, "forward: %s\n", s.to_string().c_str());
        return 1;
      }
      print_row("forward", rows, C, info, secs);
      t0 = std::chrono::steady_clock::now();
      s = norm_backward_tile({.x = x.cview(),
                              .dy = dy.cview(),
                              .gamma = gamma.cview(),
                              .mean = mean.cview(),
                              .rstd = rstd.cview()},
                             {.dx = dx.view(), .dgamma = dgamma.view(), .dbeta = dbeta.view()},
                             config, &info);
      secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!s.ok()) {
        std::fprintf(stderr, "backward: %s\n", s.to_string().c_str());
        return 1;
      }
      print_row("backward", rows, C, info, secs);
    }
  }
  return 0;
}
