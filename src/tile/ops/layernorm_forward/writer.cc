// LayerNorm forward writer: per tile-row the mean and rstd tiles, then y tile by tile.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/layernorm_forward/cbs.h"
#include "tile/ops/layernorm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_forward_cb;

void layernorm_forward_writer(const LayerNormForwardWriterArgs& a) {
  const auto y = tile_addr_gen(a.y_addr, cb::kY), mean = tile_addr_gen(a.mean_addr, cb::kStatsOut),
             rstd = tile_addr_gen(a.rstd_addr, cb::kStatsOut);
  for (uint32_t i = 0; i < a.rows.count; ++i) {
    const uint32_t row = a.rows.first + i;
    for (const auto* stat : {&mean, &rstd}) {
      cb_wait_front(cb::kStatsOut, 1);
      noc_async_write_tile(row, *stat, get_read_ptr(cb::kStatsOut));
      noc_async_write_barrier();
      cb_pop_front(cb::kStatsOut, 1);
    }
    for (uint32_t t = 0; t < a.rows.wt; ++t) {
      cb_wait_front(cb::kY, 1);
      noc_async_write_tile(row * a.rows.wt + t, y, get_read_ptr(cb::kY));
      noc_async_write_barrier();
      cb_pop_front(cb::kY, 1);
    }
  }
}

}  // namespace tilenorm::tile
