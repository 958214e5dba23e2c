// What a tile op's host side and all three of its kernels share: the dst-section geometry, the
// compute kernels' config, the block and span sizes, and the argument types every kernel's args
// hold. No kernel API: a reader, a compute kernel and the host include it alike.
#pragma once

#include <cstdint>

#include "tile/machine/api/common.h"

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

// The fp32 constants (as bits) with which a compute kernel's row sum s becomes s / C (row_means
// in compute_helpers.h; see divide_by_c in compute_helpers.cc). split = 0: C has more than 20
// significant bits, s * (1/C) only.
struct RowMeanConstants {
  uint32_t inv_c;  // 1/C
  uint32_t c;      // C
  uint32_t split;  // 2^k + 1, k = the significant bits of C
  uint32_t guard;  // 2 max(C, 2^k + 1): a quotient q with q * guard not finite is left as is
};
// Computed on the host, once per op.
RowMeanConstants row_mean_constants(int64_t C);

}  // namespace tilenorm::tile
