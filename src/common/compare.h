// Comparing a result against the float64 reference: |got - ref| <= atol + rtol * |ref| per
// element, reporting the worst element. NaN in `got` where `ref` is finite always fails.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tilenorm/tensor.h"

namespace tilenorm {

struct Tolerance {
  double atol = 0;
  double rtol = 0;
};

struct CompareResult {
  bool pass = true;
  int64_t count = 0;
  int64_t failures = 0;
  double max_abs_err = 0;  // over all elements
  double max_excess = 0;   // max of |err| / (atol + rtol*|ref|); <= 1 passes
  int64_t worst = -1;      // index of the element with the largest excess
  double worst_got = 0, worst_ref = 0;
  std::string to_string() const;  // "max|err| 3.1e-06 worst [17] got 0.51 ref 0.5100031"
};

CompareResult compare_allclose(const ConstTensorView& got, const std::vector<double>& ref,
                               Tolerance tol);

}  // namespace tilenorm
