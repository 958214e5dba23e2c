// What the tile ops' kernels share: the dst-section geometry, reading blocks, constant pages, dense
// vector rows, masks, packing a finished section, and the compute kernels' exact row mean.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/device.h"

namespace tilenorm::tile {

// Tiles per 32-tile span of a dense vector (dgamma/dbeta partials, dense gamma/beta).
inline constexpr uint32_t kSpanTiles = 32;
// Tiles of one dst section: 16 bf16 tiles in full-sync, half that per half-sync section, half
// again with fp32_dest_acc_en.
constexpr uint32_t dst_section_tiles(bool fp32_dest_acc_en, bool dst_full_sync_en) {
  return (dst_full_sync_en ? 16u : 8u) / (fp32_dest_acc_en ? 2u : 1u);
}
// The compute kernels' config in every op: fp32 dst (sums and products in fp32), half-sync, and
// fp32 CBs unpacked to dst without the TF32 rounding.
inline constexpr ComputeConfig kTileOpComputeConfig{.fp32_dest_acc_en = true,
                                                    .dst_full_sync_en = false,
                                                    .math_fidelity = MathFidelity::HiFi4,
                                                    .unpack_to_dest_fp32 = true};
// Tiles per block: one dst section of that config (4).
inline constexpr uint32_t kBlockTiles =
    dst_section_tiles(kTileOpComputeConfig.fp32_dest_acc_en, kTileOpComputeConfig.dst_full_sync_en);
static_assert(kSpanTiles % kBlockTiles == 0, "a block never straddles two spans");

// Which tile-rows a core runs and how each is cut; every kernel's args hold one.
struct TileRows {
  uint32_t first, count;  // this core's tile-rows
  uint32_t wt;            // tiles per tile-row
  uint32_t block;         // tiles per block
  uint32_t mask_w;        // valid columns of the last tile, 0: all 32
  uint32_t spans;         // pages of a dense vector (32-tile spans)
  uint32_t fit;           // 1: the whole tile-row stays in L1 (fit path)
  uint32_t stream;        // 1: one dense page, re-read per span and tile-row (streamed path)
};

// ---- Reader side.
// Reserves `pages` (a whole block, so windows never wrap the ring) and reads n <= pages tiles
// from page `first`; the caller barriers and pushes.
void read_tiles_into(uint32_t cb, const InterleavedAddrGenFast<true>& s, uint32_t first, uint32_t n,
                     uint32_t pages);

// Constant tiles (written through l1_ptr into the reserved page).
void fill_page(uint32_t cb, uint32_t page, float value);
// 1.0 in the columns < mask_w of every row, 0 elsewhere.
void fill_mask_page(uint32_t cb, uint32_t page, uint32_t mask_w);
// 32 pages from `page`: page i has row i all 1.0 and every other row 0 (matmul(sel_i, P) puts
// the column sums of P in row i).
void fill_row_selector_pages(uint32_t cb, uint32_t page);
// When mask_w != 0: reserves one page of `cb`, fills it as fill_mask_page and pushes it.
void push_mask_page(uint32_t cb, uint32_t mask_w);
// Reserves one page of `cb`, fills it with `value` and pushes it.
void push_fill_page(uint32_t cb, float value);
// Page `page` of `out_cb` = row (t % 32) of dense page t / 32 of `dense_cb` (the reader's own
// reserved window), replicated over the 32 rows.
void expand_dense_row(uint32_t dense_cb, uint32_t t, uint32_t out_cb, uint32_t page);

// ---- Compute side.
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
// The fp32 constants (as bits) with which a row sum s becomes s / C; see divide_by_c in
// kernel_helpers.cc. split = 0: C has more than 20 significant bits, s * (1/C) only.
struct RowMeanConstants {
  uint32_t inv_c;  // 1/C
  uint32_t c;      // C
  uint32_t split;  // 2^k + 1, k = the significant bits of C
  uint32_t guard;  // 2 max(C, 2^k + 1): a quotient q with q * guard not finite is left as is
};
RowMeanConstants row_mean_constants(int64_t C);
// Pops the n partials, and returns inside an acquired dst section whose slots 0..n-1 hold
// (row sum of partial i) / C in every column, correctly rounded except within 2^-4 ulp of a
// rounding midpoint (so a quotient that is an fp32 value comes out exactly). The caller does
// more math, then commits, packs and releases. A ±Inf partial element gives a ±Inf row sum (not
// Inf - Inf); `partial` is reused for the means.
void row_means(const RowSumCbs& cbs, uint32_t n, const RowMeanConstants& k);
// Slot data = 0 where tile `itile` of `cb` is ±Inf (its hi + lo split would turn NaN there);
// slot data + 1 holds the mask afterwards.
void zero_where_infinite(uint32_t cb, uint32_t itile, uint32_t data);

}  // namespace tilenorm::tile
