// Native CPU norm family: shared types of the SIMD kernels (norm_cpu.cc, compiled once per
// Highway target) and the hooks tests use to run every compiled target.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tilenorm/norm.h"

namespace tilenorm::cpu {

// Statistics and dgamma/dbeta are reduced over fixed-size pieces combined in a fixed order, so
// results never depend on the thread count. Columns: per-row sums are formed per kColChunk
// columns (a multiple of every vector width times the unroll), then combined in chunk order.
inline constexpr int64_t kColChunk = 1024;
// Rows: backward writes one dgamma/dbeta partial per chunk of at most kRowChunk rows.
inline constexpr int64_t kRowChunk = 32;

// Mean and sum of squared deviations of n values (Chan et al. merge in float64).
struct ChunkStats {
  double n = 0, mean = 0, m2 = 0;
};
ChunkStats merge_stats(const ChunkStats& a, const ChunkStats& b);

// The norm's traits say which pointers are set: no mean and no beta for RMSNorm, whose rstd
// holds rrms.
struct ForwardCtx {
  const void* x;
  const void* residual;  // null, or fused: h = x + residual is written and normalized
  const void* gamma;     // float when params_f32, else the dtype of x
  const void* beta;      // may be null
  void* h;               // null iff residual is
  void* y;
  float* mean;  // null where the norm has no mean (RMSNorm)
  float* rstd;
  int64_t rows, C;
  double eps;
  Norm norm;
  bool bf16;
  bool stream;  // non-temporal stores of y and h (the outputs will not be re-read soon)
  bool params_f32;
};

struct BackwardCtx {
  const void* x;  // h when the forward took a residual
  const void* dy;
  const void* dh_in;  // null, or fused: dx += dh_in
  const void* gamma;  // float when params_f32, else the dtype of x
  const float* mean;  // null for RMSNorm
  const float* rstd;
  void* dx;
  float* dgamma;
  float* dbeta;     // null for RMSNorm
  float* partials;  // [row chunks][2][C]: dgamma then dbeta per chunk
  int64_t rows, C, rows_per_chunk;
  Norm norm;
  bool bf16;
  bool stream;
  bool params_f32;
};

// Per-row backward coefficients: dx = (g - a) * rstd - (x - mean) * k, g = dy * gamma
// (RMSNorm: mean = a = 0).
struct RowCoeffs {
  float mean, rstd, a, k;
};
// From the row sums sum(g) and sum(g * (x - mean)).
RowCoeffs backward_coeffs(float mean, float rstd, double sum_g, double sum_gxc, int64_t C);

// The SIMD targets compiled in and supported by this CPU, best first ("AVX3", "AVX2", "SCALAR").
std::vector<std::string> simd_targets();
// Restricts dispatch to the named target ("" = back to the best); false if not available.
// For tests: not thread-safe against concurrent norm calls.
bool force_simd_target(const std::string& name);
// The target dispatch picks now.
std::string active_simd_target();

}  // namespace tilenorm::cpu
