// Norm forward reader: constant tiles and dense gamma (LayerNorm: and beta) once per core
// (streamed: one span page per span and tile-row); per tile-row x (and the residual): fit, once
// (with a residual in blocks, to be added into the resident h); block, per block in each pass
// (LayerNorm: mean, variance, y; RMSNorm: Σh², y); for the last pass the gamma (and beta) chunk
// of every tile.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/dataflow_helpers.h"
#include "tile/ops/norm_forward/cbs.h"
#include "tile/ops/norm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = norm_forward_cb;

template <NormForwardVariant V>
void norm_forward_reader(const NormForwardReaderArgs& a) {
  constexpr bool kBeta = V.has_beta();
  constexpr int kPasses = V.has_mean() ? 3 : 2;
  const TileRows& r = a.rows;
  const auto x = tile_addr_gen(a.x_addr, cb::kX);
  InterleavedAddrGenFast<true> residual, beta;  // only with a residual / for LayerNorm
  if constexpr (V.residual) residual = tile_addr_gen(a.residual_addr, cb::kResidual);
  push_mask_page(cb::kMask, r.mask_w);
  push_fill_page(cb::kOnes, 1.0f);
  const auto gamma = tile_addr_gen(a.gamma_addr, cb::kGammaDense);
  if constexpr (kBeta) beta = tile_addr_gen(a.beta_addr, cb::kBetaDense);
  const uint32_t dense_pages = r.stream ? 1 : r.spans;
  read_tiles_into(cb::kGammaDense, gamma, 0, r.stream ? 0 : dense_pages, dense_pages);
  if constexpr (kBeta) {
    read_tiles_into(cb::kBetaDense, beta, 0, r.stream ? 0 : dense_pages, dense_pages);
  }
  noc_async_read_barrier();

  // x (and the residual) of tiles [c0, c0 + cur) of the tile-row, in `pages`-page windows.
  auto read_block = [&](uint32_t row, uint32_t c0, uint32_t cur, uint32_t pages) {
    read_tiles_into(cb::kX, x, row * r.wt + c0, cur, pages);
    if constexpr (V.residual) {
      read_tiles_into(cb::kResidual, residual, row * r.wt + c0, cur, pages);
    }
    noc_async_read_barrier();
    cb_push_back(cb::kX, pages);
    if constexpr (V.residual) cb_push_back(cb::kResidual, pages);
  };

  for (uint32_t i = 0; i < r.count; ++i) {
    const uint32_t row = r.first + i;
    if (r.fit) {
      if constexpr (V.residual) {
        for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block)
          read_block(row, c0, std::min(r.block, r.wt - c0), r.block);
      } else {
        read_block(row, 0, r.wt, r.wt);
      }
    }
    for (int pass = 0; pass < kPasses; ++pass) {
      for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block) {
        const uint32_t cur = std::min(r.block, r.wt - c0);
        if (!r.fit) read_block(row, c0, cur, r.block);
        if (pass + 1 < kPasses) continue;
        if (r.stream && c0 % kSpanTiles == 0) {  // the span's page into the reserved window
          noc_async_read_tile(c0 / kSpanTiles, gamma, get_write_ptr(cb::kGammaDense));
          if constexpr (kBeta) {
            noc_async_read_tile(c0 / kSpanTiles, beta, get_write_ptr(cb::kBetaDense));
          }
          noc_async_read_barrier();
        }
        const uint32_t t0 = r.stream ? c0 % kSpanTiles : c0;
        cb_reserve_back(cb::kGamma, r.block);
        if constexpr (kBeta) cb_reserve_back(cb::kBeta, r.block);
        for (uint32_t j = 0; j < cur; ++j) {
          expand_dense_row(cb::kGammaDense, t0 + j, cb::kGamma, j);
          if constexpr (kBeta) expand_dense_row(cb::kBetaDense, t0 + j, cb::kBeta, j);
        }
        cb_push_back(cb::kGamma, r.block);
        if constexpr (kBeta) cb_push_back(cb::kBeta, r.block);
      }
    }
  }
  cb_push_back(cb::kGammaDense, dense_pages);
  if constexpr (kBeta) cb_push_back(cb::kBetaDense, dense_pages);
}

TILENORM_NORM_FORWARD_VARIANTS(norm_forward_reader, NormForwardReaderArgs)

}  // namespace tilenorm::tile
