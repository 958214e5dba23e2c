// LayerNorm backward reader: constant tiles and dense gamma once per core (streamed: the span's
// page per span, pass and tile-row); per tile-row mean and
// rstd, then x and dy (fit: once; block: per block, for each of the two passes) and the gamma
// chunk of every tile in the order the compute kernel consumes them. Blocks always move `block`
// pages (a tail block leaves its last pages unused) so no window wraps the ring.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/layernorm_backward/cbs.h"
#include "tile/ops/layernorm_backward/kernels.h"
#include "tile/ops/layernorm_common.h"

namespace tilenorm::tile {

namespace cb = layernorm_backward_cb;

void layernorm_backward_reader(const LayerNormBackwardReaderArgs& a) {
  const auto x = tile_addr_gen(a.x_addr, cb::kX), dy = tile_addr_gen(a.dy_addr, cb::kDy),
             gamma = tile_addr_gen(a.gamma_addr, cb::kGammaDense),
             mean = tile_addr_gen(a.mean_addr, cb::kMean),
             rstd = tile_addr_gen(a.rstd_addr, cb::kRstd);

  push_mask_page(cb::kMask, a.mask_w);
  cb_reserve_back(cb::kOnes, 1);
  fill_page(cb::kOnes, 0, 1.0f);
  cb_push_back(cb::kOnes, 1);
  cb_reserve_back(cb::kSelect, kTileDim);
  fill_row_selector_pages(cb::kSelect, 0);
  cb_push_back(cb::kSelect, kTileDim);
  // Dense gamma stays in the reader's window for the whole run (streamed: one page, refilled).
  const uint32_t dense_pages = a.stream ? 1 : a.gamma_tiles;
  read_tiles_into(cb::kGammaDense, gamma, 0, a.stream ? 0 : dense_pages, dense_pages);
  noc_async_read_barrier();

  for (uint32_t i = 0; i < a.num_rows; ++i) {
    const uint32_t row = a.start_row + i;
    read_tiles_into(cb::kMean, mean, row, 1, 1);
    read_tiles_into(cb::kRstd, rstd, row, 1, 1);
    if (a.fit) {
      read_tiles_into(cb::kX, x, row * a.wt, a.wt, a.wt);
      read_tiles_into(cb::kDy, dy, row * a.wt, a.wt, a.wt);
    }
    noc_async_read_barrier();
    cb_push_back(cb::kMean, 1);
    cb_push_back(cb::kRstd, 1);
    if (a.fit) {
      cb_push_back(cb::kX, a.wt);
      cb_push_back(cb::kDy, a.wt);
    }
    for (int pass = 0; pass < 2; ++pass) {  // row sums, then dx
      for (uint32_t c0 = 0; c0 < a.wt; c0 += a.block) {
        const uint32_t cur = std::min(a.block, a.wt - c0);
        if (!a.fit) {
          read_tiles_into(cb::kX, x, row * a.wt + c0, cur, a.block);
          read_tiles_into(cb::kDy, dy, row * a.wt + c0, cur, a.block);
          noc_async_read_barrier();
          cb_push_back(cb::kX, a.block);
          cb_push_back(cb::kDy, a.block);
        }
        if (a.stream && c0 % kSpanTiles == 0) {
          noc_async_read_tile(c0 / kSpanTiles, gamma, get_write_ptr(cb::kGammaDense));
          noc_async_read_barrier();
        }
        const uint32_t t0 = a.stream ? c0 % kSpanTiles : c0;
        cb_reserve_back(cb::kGamma, a.block);
        for (uint32_t j = 0; j < cur; ++j) expand_dense_row(cb::kGammaDense, t0 + j, cb::kGamma, j);
        cb_push_back(cb::kGamma, a.block);
      }
    }
  }
  cb_push_back(cb::kGammaDense, dense_pages);
}

}  // namespace tilenorm::tile
