// What the tile ops' reader and writer kernels share: reading blocks, constant and mask pages,
// and dense vector rows. Dataflow API only: a compute kernel that includes it does not compile.
#pragma once

#include <cstdint>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/op_args.h"

namespace tilenorm::tile {

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

}  // namespace tilenorm::tile
