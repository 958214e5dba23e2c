// Circular buffers of the report's LayerNorm backward op: the bug report's list c_0 .. c_14
// (upstream tt-train layernorm_bw before its fix), plus the accumulator CB that the report's own
// second fix proposal adds. One page = one tile; bf16 unless marked.
#pragma once

#include <cstdint>

namespace tilenorm::tile::report_layernorm_backward_cb {

inline constexpr uint32_t kScaler = 0;     // 1 page: bf16 1/C in every element (full fix: 1.0)
inline constexpr uint32_t kMask = 1;       // 1 page: 1.0 in the first C % 32 columns (C % 32 != 0)
inline constexpr uint32_t kGamma = 2;      // fit: Wt pages, read once per core; block: 6
inline constexpr uint32_t kXhat = 3;       // fit: Wt rounded up to whole blocks of 3; block: 6
inline constexpr uint32_t kRstd = 4;       // 1 page: rstd of the tile-row, column 0
inline constexpr uint32_t kDy = 5;         // fit: Wt pages; block: 6
inline constexpr uint32_t kX = 6;          // fit: Wt pages; block: 6
inline constexpr uint32_t kMean = 7;       // 1 page: mean of the tile-row, column 0
inline constexpr uint32_t kMeanBcast = 8;  // 1 page: mean replicated over the columns
inline constexpr uint32_t kDx = 9;         // 6 pages -> writer
inline constexpr uint32_t kDgammaComp = 10;  // 6 pages: dy·x̂ per element -> writer
inline constexpr uint32_t kDbetaComp = 11;   // 6 pages: dy per element -> writer
inline constexpr uint32_t kRstdBcast = 12;   // 1 page: rstd replicated over the columns
inline constexpr uint32_t kS1 = 13;          // fp32, 1 page: mean(dy·γ) of the tile-row
inline constexpr uint32_t kS2 = 14;  // fp32, 1 page: mean(dy·γ·x̂); the fixed block path
                                     // carries its running partial here
inline constexpr uint32_t kAccumulate = 15;  // fp32, 1 page: the report's option 2 only

inline constexpr uint32_t kBlock = 3;  // tiles per block, as the report's kernel

}  // namespace tilenorm::tile::report_layernorm_backward_cb
