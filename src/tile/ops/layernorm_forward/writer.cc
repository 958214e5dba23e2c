// LayerNorm forward writer: per tile-row the mean and rstd tiles, then y tile by tile.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/layernorm_forward/cbs.h"
#include "tile/ops/layernorm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_forward_cb;

void layernorm_forward_writer(const LayerNormForwardWriterArgs& a) {
  const InterleavedAddrGenFast<true> y = {.bank_base_address = a.y_addr,
                                          .page_size = get_tile_size(cb::kY),
                                          .data_format = get_dataformat(cb::kY)};
  InterleavedAddrGenFast<true> mean = {.bank_base_address = a.mean_addr,
                                       .page_size = get_tile_size(cb::kStatsOut),
                                       .data_format = get_dataformat(cb::kStatsOut)};
  InterleavedAddrGenFast<true> rstd = mean;
  rstd.bank_base_address = a.rstd_addr;
  for (uint32_t i = 0; i < a.num_rows; ++i) {
    const uint32_t row = a.start_row + i;
    for (const auto* stat : {&mean, &rstd}) {
      cb_wait_front(cb::kStatsOut, 1);
      noc_async_write_tile(row, *stat, get_read_ptr(cb::kStatsOut));
      noc_async_write_barrier();
      cb_pop_front(cb::kStatsOut, 1);
    }
    for (uint32_t t = 0; t < a.wt; ++t) {
      cb_wait_front(cb::kY, 1);
      noc_async_write_tile(row * a.wt + t, y, get_read_ptr(cb::kY));
      noc_async_write_barrier();
      cb_pop_front(cb::kY, 1);
    }
  }
}

}  // namespace tilenorm::tile
