// Norm forward writer: per tile-row h tile by tile (with a residual), the mean (LayerNorm) and
// rstd (RMSNorm: rrms) tiles, then y tile by tile, in the order compute produces them.
#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/norm_forward/cbs.h"
#include "tile/ops/norm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = norm_forward_cb;

namespace {

// Pages [first, first + n) of `s`, one tile at a time from `cb`.
void write_tiles(uint32_t cb, const InterleavedAddrGenFast<true>& s, uint32_t first, uint32_t n) {
  for (uint32_t t = 0; t < n; ++t) {
    cb_wait_front(cb, 1);
    noc_async_write_tile(first + t, s, get_read_ptr(cb));
    noc_async_write_barrier();
    cb_pop_front(cb, 1);
  }
}

}  // namespace

template <NormForwardVariant V>
void norm_forward_writer(const NormForwardWriterArgs& a) {
  const TileRows& r = a.rows;
  const auto y = tile_addr_gen(a.y_addr, cb::kY), rstd = tile_addr_gen(a.rstd_addr, cb::kStatsOut);
  InterleavedAddrGenFast<true> h, mean;  // only with a residual / for LayerNorm
  if constexpr (V.residual) h = tile_addr_gen(a.h_addr, cb::kHOut);
  if constexpr (V.has_mean()) mean = tile_addr_gen(a.mean_addr, cb::kStatsOut);
  for (uint32_t i = 0; i < r.count; ++i) {
    const uint32_t row = r.first + i;
    if constexpr (V.residual) write_tiles(cb::kHOut, h, row * r.wt, r.wt);
    if constexpr (V.has_mean()) write_tiles(cb::kStatsOut, mean, row, 1);
    write_tiles(cb::kStatsOut, rstd, row, 1);
    write_tiles(cb::kY, y, row * r.wt, r.wt);
  }
}

TILENORM_NORM_FORWARD_VARIANTS(norm_forward_writer, NormForwardWriterArgs)

}  // namespace tilenorm::tile
