// Norm backward reader: constant tiles and dense gamma once per core (streamed: the span's page
// per span, pass and tile-row); per tile-row mean (LayerNorm) and rstd (RMSNorm: rrms), then x
// and dy (fit: once; block: per block, for each of the two passes), the gamma chunk of every
// tile, and in the second pass dh_in (when given) per block, in the order the compute kernel
// consumes them. Blocks always move `block` pages (a tail block leaves its last pages unused) so
// no window wraps the ring.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/dataflow_helpers.h"
#include "tile/ops/norm_backward/cbs.h"
#include "tile/ops/norm_backward/kernels.h"

namespace tilenorm::tile {

namespace cb = norm_backward_cb;

template <NormBackwardVariant V>
void norm_backward_reader(const NormBackwardReaderArgs& a) {
  const TileRows& r = a.rows;
  const auto x = tile_addr_gen(a.x_addr, cb::kX), dy = tile_addr_gen(a.dy_addr, cb::kDy),
             gamma = tile_addr_gen(a.gamma_addr, cb::kGammaDense),
             rstd = tile_addr_gen(a.rstd_addr, cb::kRstd);
  InterleavedAddrGenFast<true> mean, dh_in;  // LayerNorm / with dh_in only
  if constexpr (V.has_mean()) mean = tile_addr_gen(a.mean_addr, cb::kMean);
  if constexpr (V.dh_in) dh_in = tile_addr_gen(a.dh_in_addr, cb::kDhIn);

  push_mask_page(cb::kMask, r.mask_w);
  push_fill_page(cb::kOnes, 1.0f);
  cb_reserve_back(cb::kSelect, kTileDim);
  fill_row_selector_pages(cb::kSelect, 0);
  cb_push_back(cb::kSelect, kTileDim);
  // Dense gamma stays in the reader's window for the whole run (streamed: one page, refilled).
  const uint32_t dense_pages = r.stream ? 1 : r.spans;
  read_tiles_into(cb::kGammaDense, gamma, 0, r.stream ? 0 : dense_pages, dense_pages);
  noc_async_read_barrier();

  for (uint32_t i = 0; i < r.count; ++i) {
    const uint32_t row = r.first + i;
    if constexpr (V.has_mean()) read_tiles_into(cb::kMean, mean, row, 1, 1);
    read_tiles_into(cb::kRstd, rstd, row, 1, 1);
    if (r.fit) {
      read_tiles_into(cb::kX, x, row * r.wt, r.wt, r.wt);
      read_tiles_into(cb::kDy, dy, row * r.wt, r.wt, r.wt);
    }
    noc_async_read_barrier();
    if constexpr (V.has_mean()) cb_push_back(cb::kMean, 1);
    cb_push_back(cb::kRstd, 1);
    if (r.fit) {
      cb_push_back(cb::kX, r.wt);
      cb_push_back(cb::kDy, r.wt);
    }
    for (int pass = 0; pass < 2; ++pass) {  // row sums, then dx
      for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block) {
        const uint32_t cur = std::min(r.block, r.wt - c0);
        if (!r.fit) {
          read_tiles_into(cb::kX, x, row * r.wt + c0, cur, r.block);
          read_tiles_into(cb::kDy, dy, row * r.wt + c0, cur, r.block);
          noc_async_read_barrier();
          cb_push_back(cb::kX, r.block);
          cb_push_back(cb::kDy, r.block);
        }
        if (r.stream && c0 % kSpanTiles == 0) {
          noc_async_read_tile(c0 / kSpanTiles, gamma, get_write_ptr(cb::kGammaDense));
          noc_async_read_barrier();
        }
        const uint32_t t0 = r.stream ? c0 % kSpanTiles : c0;
        cb_reserve_back(cb::kGamma, r.block);
        for (uint32_t j = 0; j < cur; ++j) expand_dense_row(cb::kGammaDense, t0 + j, cb::kGamma, j);
        cb_push_back(cb::kGamma, r.block);
        if constexpr (V.dh_in) {
          if (pass == 1) {
            read_tiles_into(cb::kDhIn, dh_in, row * r.wt + c0, cur, r.block);
            noc_async_read_barrier();
            cb_push_back(cb::kDhIn, r.block);
          }
        }
      }
    }
  }
  cb_push_back(cb::kGammaDense, dense_pages);
}

TILENORM_NORM_BACKWARD_VARIANTS(norm_backward_reader, NormBackwardReaderArgs)

}  // namespace tilenorm::tile
