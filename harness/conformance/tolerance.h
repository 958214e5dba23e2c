// The family's tolerance table: one band per backend, dtype and output group, each row with its
// reason, for the conformance registry (`tilenorm verify`, conformance_test) and for the backends'
// own tests, which take their bands from it (a profile column where a test holds a tighter band).
#pragma once

#include <cstdint>

#include "common/compare.h"
#include "tilenorm/backend.h"
#include "tilenorm/norm.h"
#include "tilenorm/tensor.h"

namespace tilenorm::conformance {

// The outputs compared, grouped as the tolerance table groups them.
enum class Output {
  kY,        // y
  kH,        // h = x + residual
  kStats,    // mean, rstd, rrms
  kDx,       // dx
  kDParams,  // dgamma, dbeta
};

// Which comparisons a band serves.
enum class Profile {
  // The registry's cases: every input kind (offsets, constants), C up to 65537, every path.
  // Compare rule: |got - ref| <= atol * scale + rtol * |ref| per element, where scale =
  // max(1, max |ref|) for y, dx and the parameter gradients (elements near zero beside large
  // ones) and 1 for the per-row statistics.
  kRegistry,
  // A backend's own tests: O(1) random inputs on the backend's paths, compared unscaled
  // (|got - ref| <= atol + rtol * |ref|). A backend without a row of this profile takes its
  // registry row, which is then stricter than in the registry (no scale).
  kBackendTest,
};

struct ToleranceRow {
  Tolerance tol;
  const char* reason;
  double atol_per_row = 0;  // added to atol per row summed (dgamma/dbeta of fp32 chunk sums)
  // The band for a tensor of `rows` rows.
  Tolerance for_rows(int64_t rows) const {
    return {tol.atol + atol_per_row * static_cast<double>(rows), tol.rtol};
  }
};
// Every op of the family shares its backend's bands.
ToleranceRow tolerance(const NormOp& op, Backend backend, DType dtype, Output output,
                       Profile profile = Profile::kRegistry);

}  // namespace tilenorm::conformance
