// LayerNorm forward reader: constant tiles and dense gamma/beta once per core (streamed: one span
// page per span and tile-row); per tile-row x (fit: once; block: per block in each of the three
// passes), and for the last pass the gamma and beta chunks of every tile.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/kernel_helpers.h"
#include "tile/ops/layernorm_forward/cbs.h"
#include "tile/ops/layernorm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_forward_cb;

void layernorm_forward_reader(const LayerNormForwardReaderArgs& a) {
  const auto x = tile_addr_gen(a.x_addr, cb::kX);
  push_mask_page(cb::kMask, a.rows.mask_w);
  push_fill_page(cb::kOnes, 1.0f);
  const auto gamma = tile_addr_gen(a.gamma_addr, cb::kGammaDense),
             beta = tile_addr_gen(a.beta_addr, cb::kBetaDense);
  const uint32_t dense_pages = a.rows.stream ? 1 : a.rows.spans;
  read_tiles_into(cb::kGammaDense, gamma, 0, a.rows.stream ? 0 : dense_pages, dense_pages);
  read_tiles_into(cb::kBetaDense, beta, 0, a.rows.stream ? 0 : dense_pages, dense_pages);
  noc_async_read_barrier();

  for (uint32_t i = 0; i < a.rows.count; ++i) {
    const uint32_t row = a.rows.first + i;
    if (a.rows.fit) {
      read_tiles_into(cb::kX, x, row * a.rows.wt, a.rows.wt, a.rows.wt);
      noc_async_read_barrier();
      cb_push_back(cb::kX, a.rows.wt);
    }
    for (int pass = 0; pass < 3; ++pass) {  // mean, variance, y
      for (uint32_t c0 = 0; c0 < a.rows.wt; c0 += a.rows.block) {
        const uint32_t cur = std::min(a.rows.block, a.rows.wt - c0);
        if (!a.rows.fit) {
          read_tiles_into(cb::kX, x, row * a.rows.wt + c0, cur, a.rows.block);
          noc_async_read_barrier();
          cb_push_back(cb::kX, a.rows.block);
        }
        if (pass == 2) {
          if (a.rows.stream && c0 % kSpanTiles == 0) {  // the span's page into the reserved window
            noc_async_read_tile(c0 / kSpanTiles, gamma, get_write_ptr(cb::kGammaDense));
            noc_async_read_tile(c0 / kSpanTiles, beta, get_write_ptr(cb::kBetaDense));
            noc_async_read_barrier();
          }
          const uint32_t t0 = a.rows.stream ? c0 % kSpanTiles : c0;
          cb_reserve_back(cb::kGamma, a.rows.block);
          cb_reserve_back(cb::kBeta, a.rows.block);
          for (uint32_t j = 0; j < cur; ++j) {
            expand_dense_row(cb::kGammaDense, t0 + j, cb::kGamma, j);
            expand_dense_row(cb::kBetaDense, t0 + j, cb::kBeta, j);
          }
          cb_push_back(cb::kGamma, a.rows.block);
          cb_push_back(cb::kBeta, a.rows.block);
        }
      }
    }
  }
  cb_push_back(cb::kGammaDense, dense_pages);
  cb_push_back(cb::kBetaDense, dense_pages);
}

}  // namespace tilenorm::tile
