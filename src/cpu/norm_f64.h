// The CPU backend on float64 data (norm_f64.cc): f64 SIMD kernels, entered from the backend's
// norm_forward / norm_backward when x is f64.
#pragma once

#include <cstdint>

#include "norm_args.h"
#include "tilenorm/status.h"

namespace tilenorm::cpu {

// Rows per dgamma/dbeta partial, at least (see rows_per_chunk_f64).
inline constexpr int64_t kRowChunkF64 = 32;

// RMSNorm: no mean (null), no beta, rstd holds rrms.
struct ForwardF64 {
  const double* x;
  const double* residual;  // null, or fused: h = x + residual is written and normalized
  const double* gamma;
  const double* beta;  // may be null
  double* h;           // null iff residual is
  double* y;
  double* mean;  // null for RMSNorm
  double* rstd;
  int64_t rows, C;
  double eps;
  Norm norm;
};

struct BackwardF64 {
  const double* x;  // h when the forward took a residual
  const double* dy;
  const double* dh_in;  // null, or fused: dx += dh_in
  const double* gamma;
  const double* mean;  // null for RMSNorm
  const double* rstd;
  double* dx;
  int64_t rows, C, rows_per_chunk;
  Norm norm;
};

Status norm_forward_f64(const NormForwardArgs& args, const NormForwardOutputs& out,
                        const NormOptions& opt);
Status norm_backward_f64(const NormBackwardArgs& args, const NormBackwardOutputs& out,
                         const NormOptions& opt);

}  // namespace tilenorm::cpu
