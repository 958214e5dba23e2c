// What the tile ops' compute kernels share: masking the padded columns, packing a finished
// section, and the exact row mean. Compute API only: a reader or writer that includes it does
// not compile.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "tile/machine/api/compute/common.h"
#include "tile/ops/op_args.h"

namespace tilenorm::tile {

// Zeroes the padded columns of slot `data` (the mask page of `mask_cb` goes to slot data + 1).
void mask_columns(uint32_t mask_cb, uint32_t data);
// Ends the acquired dst section: commits, reserves n pages of each CB of `cbs`, packs slots
// 0..n-1 to pages 0..n-1 of each, releases and pushes them.
void pack_out(std::initializer_list<uint32_t> cbs, uint32_t n = 1);

// Exact row sum and correctly rounded row mean.
// The FPU reads fp32 CB data as TF32, so a sum of fp32 partials P is split as P = hi + lo with
// hi = bf16(P) (the packer's rounding) and lo = P - hi (exact in fp32, TF32 keeps it to 2^-19 of
// P); matmul(hi, ones) + matmul(lo, ones) is then the row sum of P to about fp32 accuracy.
struct RowSumCbs {
  uint32_t partial;  // fp32: the n partials, pushed by the caller
  uint32_t hi;       // bf16: the same n partials, pushed by the caller
  uint32_t lo;       // fp32 scratch, n pages
  uint32_t ones;     // bf16 all-ones tile, waited for by the caller
};
// Pops the n partials, and returns inside an acquired dst section whose slots 0..n-1 hold
// (row sum of partial i) / C in every column, correctly rounded except within 2^-4 ulp of a
// rounding midpoint (so a quotient that is an fp32 value comes out exactly). The caller does
// more math, then commits, packs and releases. A ±Inf partial element gives a ±Inf row sum (not
// Inf - Inf); `partial` is reused for the means. `k` comes from row_mean_constants (op_args.h).
void row_means(const RowSumCbs& cbs, uint32_t n, const RowMeanConstants& k);
// Slot data = 0 where tile `itile` of `cb` is ±Inf (its hi + lo split would turn NaN there);
// slot data + 1 holds the mask afterwards.
void zero_where_infinite(uint32_t cb, uint32_t itile, uint32_t data);

}  // namespace tilenorm::tile
