// One row's normalization statistics in float64 by two passes: the float64 reference's loops,
// shared with the backends that fall back to them on rows their fast sums cannot carry
// (non-finite values, overflow; docs/layernorm.md, "Non-finite inputs").
#pragma once

#include <cmath>
#include <cstdint>

#include "tilenorm/norm.h"

namespace tilenorm {

// The mean (where the norm has one, else 0), then the biased variance about it (RMSNorm: the
// mean square, rstd is rrms). *mean and *rstd are written.
inline void row_stats_f64(Norm norm, const double* x, int64_t C, double eps, double* mean,
                          double* rstd) {
  double sum = 0;
  if (norm_traits(norm).has_mean)
    for (int64_t i = 0; i < C; ++i) sum += x[i];
  const double mu = sum / static_cast<double>(C);
  double sq = 0;
  for (int64_t i = 0; i < C; ++i) sq += (x[i] - mu) * (x[i] - mu);
  *mean = mu;
  *rstd = 1.0 / std::sqrt(sq / static_cast<double>(C) + eps);
}

}  // namespace tilenorm
