// LayerNorm forward reader: constant tiles and dense gamma/beta once per core (streamed: one span
// page per span and tile-row); per tile-row x (fit: once; block: per block in each of the three
// passes), and for the last pass the gamma and beta chunks of every tile.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/layernorm_common.h"
#include "tile/ops/layernorm_forward/cbs.h"
#include "tile/ops/layernorm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_forward_cb;

void layernorm_forward_reader(const LayerNormForwardReaderArgs& a) {
  const auto x = tile_addr_gen(a.x_addr, cb::kX);
  push_mask_page(cb::kMask, a.mask_w);
  cb_reserve_back(cb::kOnes, 1);
  fill_page(cb::kOnes, 0, 1.0f);
  cb_push_back(cb::kOnes, 1);
  const auto gamma = tile_addr_gen(a.gamma_addr, cb::kGammaDense),
             beta = tile_addr_gen(a.beta_addr, cb::kBetaDense);
  const uint32_t dense_pages = a.stream ? 1 : a.dense_tiles;
  read_tiles_into(cb::kGammaDense, gamma, 0, a.stream ? 0 : dense_pages, dense_pages);
  read_tiles_into(cb::kBetaDense, beta, 0, a.stream ? 0 : dense_pages, dense_pages);
  noc_async_read_barrier();

  for (uint32_t i = 0; i < a.num_rows; ++i) {
    const uint32_t row = a.start_row + i;
    if (a.fit) {
      read_tiles_into(cb::kX, x, row * a.wt, a.wt, a.wt);
      noc_async_read_barrier();
      cb_push_back(cb::kX, a.wt);
    }
    for (int pass = 0; pass < 3; ++pass) {  // mean, variance, y
      for (uint32_t c0 = 0; c0 < a.wt; c0 += a.block) {
        const uint32_t cur = std::min(a.block, a.wt - c0);
        if (!a.fit) {
          read_tiles_into(cb::kX, x, row * a.wt + c0, cur, a.block);
          noc_async_read_barrier();
          cb_push_back(cb::kX, a.block);
        }
        if (pass == 2) {
          if (a.stream && c0 % kSpanTiles == 0) {  // the span's page into the reserved window
            noc_async_read_tile(c0 / kSpanTiles, gamma, get_write_ptr(cb::kGammaDense));
            noc_async_read_tile(c0 / kSpanTiles, beta, get_write_ptr(cb::kBetaDense));
            noc_async_read_barrier();
          }
          const uint32_t t0 = a.stream ? c0 % kSpanTiles : c0;
          cb_reserve_back(cb::kGamma, a.block);
          cb_reserve_back(cb::kBeta, a.block);
          for (uint32_t j = 0; j < cur; ++j) {
            expand_dense_row(cb::kGammaDense, t0 + j, cb::kGamma, j);
            expand_dense_row(cb::kBetaDense, t0 + j, cb::kBeta, j);
          }
          cb_push_back(cb::kGamma, a.block);
          cb_push_back(cb::kBeta, a.block);
        }
      }
    }
  }
  cb_push_back(cb::kGammaDense, dense_pages);
  cb_push_back(cb::kBetaDense, dense_pages);
}

}  // namespace tilenorm::tile
