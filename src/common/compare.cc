#include "common/compare.h"

#include <fmt/format.h>

#include <cmath>

namespace tilenorm {

std::string CompareResult::to_string() const {
  if (worst < 0) return fmt::format("{} elements, all exact", count);
  return fmt::format(
      "max|err| {:.3g}, {} of {} outside tolerance, worst [{}] got {:.9g} ref {:.9g}", max_abs_err,
      failures, count, worst, worst_got, worst_ref);
}

CompareResult compare_allclose(const ConstTensorView& got, const std::vector<double>& ref,
                               Tolerance tol) {
  CompareResult r;
  r.count = got.shape.numel();
  if (static_cast<size_t>(r.count) != ref.size()) {
    r.pass = false;
    r.failures = r.count;
    return r;
  }
  for (int64_t i = 0; i < r.count; ++i) {
    const double g = tensor_get(got, i), e = ref[static_cast<size_t>(i)];
    double err = std::fabs(g - e);
    if (std::isnan(e) && std::isnan(g)) continue;  // NaN propagated where the reference has NaN
    if (std::isinf(e) && g == e) continue;
    if (std::isnan(err)) err = INFINITY;
    const double bound = tol.atol + tol.rtol * std::fabs(e);
    const double excess = bound > 0 ? err / bound : (err > 0 ? INFINITY : 0);
    if (err > r.max_abs_err) r.max_abs_err = err;
    if (err > bound) ++r.failures;
    if (err > 0 && (r.worst < 0 || excess > r.max_excess)) {
      r.max_excess = excess;
      r.worst = i;
      r.worst_got = g;
      r.worst_ref = e;
    }
  }
  r.pass = r.failures == 0;
  return r;
}

}  // namespace tilenorm
