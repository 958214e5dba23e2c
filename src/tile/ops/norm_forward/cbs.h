// Circular buffers of the norm forward tile op (one page = one tile). E = the data format of x
// (Float16_b or Float32); statistics and partial sums are Float32. "src" = what the passes
// normalize: x, or h = x + residual (kH) with a residual.
#pragma once

#include <cstdint>

namespace tilenorm::tile::norm_forward_cb {

inline constexpr uint32_t kX = 0;  // E  x: the whole tile-row (fit, no residual) or a block
inline constexpr uint32_t kGammaDense = 1;  // E  gamma, dense (reader only; streamed: one page)
inline constexpr uint32_t kBetaDense = 2;   // E  beta, dense (reader only; LayerNorm)
inline constexpr uint32_t kGamma = 3;       // E  gamma chunk of one x tile, replicated over rows
inline constexpr uint32_t kBeta = 4;        // E  beta chunk, as kGamma (LayerNorm)
inline constexpr uint32_t kMask = 5;        // bf16 1 in the first C % 32 columns, else 0
inline constexpr uint32_t kOnes = 6;        // bf16 all ones: matmul(P, ones) = row sums of P
inline constexpr uint32_t kPartial = 7;     // fp32 running Σsrc or Σ(src - mean)², per block
inline constexpr uint32_t kHi = 8;          // bf16 the final partial rounded (exact row sum)
inline constexpr uint32_t kLo = 9;          // fp32 partial - hi
inline constexpr uint32_t kMeanRow = 10;    // fp32 mean of the tile-row, replicated (LayerNorm)
inline constexpr uint32_t kRstdRow = 11;    // fp32 rstd (RMSNorm: rrms) of the tile-row
inline constexpr uint32_t kStatsOut = 12;   // fp32 mean then rstd (RMSNorm: rrms) -> writer
inline constexpr uint32_t kY = 13;          // E  y -> writer
inline constexpr uint32_t kResidual = 14;   // E  residual, a block (with a residual)
inline constexpr uint32_t kH = 15;          // E  h = x + residual: the tile-row (fit) or a block
inline constexpr uint32_t kHOut = 16;       // E  h -> writer

}  // namespace tilenorm::tile::norm_forward_cb
