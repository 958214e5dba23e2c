// Circular buffers of the norm backward tile op (one page = one tile). E = the data format
// of x (Float16_b or Float32); statistics and partial sums are Float32.
#pragma once

#include <cstdint>

namespace tilenorm::tile::norm_backward_cb {

inline constexpr uint32_t kX = 0;           // E  x: the whole tile-row (fit) or a block, twice
inline constexpr uint32_t kDy = 1;          // E  dy: as kX
inline constexpr uint32_t kGammaDense = 2;  // E  gamma, dense (reader only; streamed: one page)
inline constexpr uint32_t kGamma = 3;       // E  gamma chunk of one x tile, replicated over rows
inline constexpr uint32_t kMean = 4;        // fp32 mean of the tile-row, replicated (LayerNorm)
inline constexpr uint32_t kRstd = 5;        // fp32 rstd (RMSNorm: rrms), replicated
inline constexpr uint32_t kMask = 6;        // bf16 1 in the first C % 32 columns, else 0
inline constexpr uint32_t kOnes = 7;        // bf16 all ones: matmul(P, ones) = row sums of P
inline constexpr uint32_t kSelect = 8;      // bf16 32 row selectors: matmul(sel_i, P) -> row i
inline constexpr uint32_t kPartial = 9;     // fp32 running Σg and Σg·x, carried between blocks
inline constexpr uint32_t kHi = 10;         // bf16 the final partials rounded (exact row sum)
inline constexpr uint32_t kLo = 11;         // fp32 partial - hi
inline constexpr uint32_t kRowStats = 12;   // fp32 s1 and s2 of the tile-row, replicated
inline constexpr uint32_t kProduct = 13;    // fp32 dy·x̂ of the block's tiles, for dgamma
inline constexpr uint32_t kDyHi = 14;       // bf16 dy rounded, padded columns zeroed (for dβ)
inline constexpr uint32_t kAccCarry = 15;   // fp32 dγ/dβ spans carried across rows (not streamed)
inline constexpr uint32_t kAccSpan = 16;    // fp32 the current span's pair, carried across blocks
inline constexpr uint32_t kAccOut = 17;     // fp32 final dgamma/dbeta span pairs -> writer
inline constexpr uint32_t kDx = 18;         // E  dx -> writer
inline constexpr uint32_t kProductHi = 19;  // bf16 dy·x̂ rounded
inline constexpr uint32_t kProductLo = 20;  // fp32 dy·x̂ - hi
inline constexpr uint32_t kDyLo = 21;       // fp32 dy - hi, padded columns zeroed
inline constexpr uint32_t kDhIn = 22;       // E  dh_in, a block (with dh_in)

}  // namespace tilenorm::tile::norm_backward_cb
