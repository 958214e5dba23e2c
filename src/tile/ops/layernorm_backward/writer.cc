// LayerNorm backward writer: dx tile by tile, and on the core's last tile-row (streamed: on every
// tile-row) the dense dgamma/dbeta partial spans (fp32), in the order compute produces them.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/kernel_helpers.h"
#include "tile/ops/layernorm_backward/cbs.h"
#include "tile/ops/layernorm_backward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_backward_cb;

void layernorm_backward_writer(const LayerNormBackwardWriterArgs& a) {
  const auto dx = tile_addr_gen(a.dx_addr, cb::kDx),
             dgamma = tile_addr_gen(a.dgamma_addr, cb::kAccOut),
             dbeta = tile_addr_gen(a.dbeta_addr, cb::kAccOut);

  for (uint32_t i = 0; i < a.rows.count; ++i) {
    const uint32_t row = a.rows.first + i;
    const bool last_row = i + 1 == a.rows.count;
    for (uint32_t c0 = 0; c0 < a.rows.wt; c0 += a.rows.block) {
      const uint32_t cur = std::min(a.rows.block, a.rows.wt - c0);
      for (uint32_t j = 0; j < cur; ++j) {
        cb_wait_front(cb::kDx, 1);
        noc_async_write_tile(row * a.rows.wt + c0 + j, dx, get_read_ptr(cb::kDx));
        noc_async_write_barrier();
        cb_pop_front(cb::kDx, 1);
      }
      const bool span_done = (c0 + cur) % kSpanTiles == 0 || c0 + cur == a.rows.wt;
      if ((last_row || a.rows.stream) && span_done) {
        const uint32_t page =
            (a.rows.stream ? row * a.rows.spans : a.first_span_page) + c0 / kSpanTiles;
        cb_wait_front(cb::kAccOut, 2);
        const uint32_t base = get_read_ptr(cb::kAccOut);
        noc_async_write_tile(page, dgamma, base);
        noc_async_write_tile(page, dbeta, base + get_tile_size(cb::kAccOut));
        noc_async_write_barrier();
        cb_pop_front(cb::kAccOut, 2);
      }
    }
  }
}

}  // namespace tilenorm::tile
