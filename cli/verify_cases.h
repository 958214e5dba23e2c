// The verification matrix of `tilenorm verify`: shapes with the reason each is there, and the
// tolerance table per backend and dtype.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/compare.h"
#include "tilenorm/layernorm.h"

namespace tilenorm::cli {

struct VerifyCase {
  std::string name;  // the reason this shape is in the list
  Shape shape;
  bool constant = false;  // the bug report's deterministic inputs
  double x = 0.5, dy = 1, gamma = 1;
  double eps = 1e-5;
  double x_offset = 0;  // random x is uniform in [x_offset - 1, x_offset + 1)
  uint64_t seed = 1;
};

std::vector<VerifyCase> verify_cases(Backend backend);

// Compare rule: |got - ref| <= atol * max(1, max|ref|) + rtol * |ref| per output.
struct Tolerances {
  Tolerance y, stats, dx, dparams;
};
Tolerances verify_tolerances(Backend backend, DType dtype);

}  // namespace tilenorm::cli
