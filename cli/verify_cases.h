// The verification matrix of `tilenorm verify`: shapes with the reason each is there, and the
// tolerance table per backend and dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/compare.h"
#include "tilenorm/layernorm.h"

namespace tilenorm::cli {

// The path the tile backend must take on the case's machine, per op and dtype ("fit", "block"
// or "streamed"; the tile plan's rule, restated here so a change of the rule shows).
struct TilePaths {
  const char* forward_bf16;
  const char* forward_f32;
  const char* backward_bf16;
  const char* backward_f32;
  const char* get(bool backward, DType dtype) const;
};
inline constexpr TilePaths kAllFit = {"fit", "fit", "fit", "fit"};

struct VerifyCase {
  std::string name;  // the reason this shape is in the list
  Shape shape;
  bool constant = false;  // the bug report's deterministic inputs
  double x = 0.5, dy = 1, gamma = 1;
  double eps = 1e-5;
  double x_offset = 0;  // random x is uniform in [x_offset - 1, x_offset + 1)
  uint64_t seed = 1;
  TilePaths tile_paths = kAllFit;
  // The tile machine of the case: L1 per core in KiB and the grid's side (0: Wormhole's
  // 1464 KiB and 8x8). The tile backend always runs with the sanitizer on.
  uint32_t tile_l1_kib = 0, tile_grid = 0;
};

std::vector<VerifyCase> verify_cases(Backend backend);

// Compare rule: |got - ref| <= atol * max(1, max|ref|) + rtol * |ref| per output.
struct Tolerances {
  Tolerance y, stats, dx, dparams;
};
Tolerances verify_tolerances(Backend backend, DType dtype);

}  // namespace tilenorm::cli
