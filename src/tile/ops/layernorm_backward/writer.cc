// LayerNorm backward writer: dx tile by tile, and on the core's last tile-row (streamed: on every
// tile-row) the dense dgamma/dbeta partial spans (fp32), in the order compute produces them.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/layernorm_backward/cbs.h"
#include "tile/ops/layernorm_backward/kernels.h"
#include "tile/ops/layernorm_common.h"

namespace tilenorm::tile {

namespace cb = layernorm_backward_cb;

void layernorm_backward_writer(const LayerNormBackwardWriterArgs& a) {
  const InterleavedAddrGenFast<true> dx = {.bank_base_address = a.dx_addr,
                                           .page_size = get_tile_size(cb::kDx),
                                           .data_format = get_dataformat(cb::kDx)};
  const InterleavedAddrGenFast<true> dgamma = {.bank_base_address = a.dgamma_addr,
                                               .page_size = get_tile_size(cb::kAccOut),
                                               .data_format = get_dataformat(cb::kAccOut)};
  InterleavedAddrGenFast<true> dbeta = dgamma;
  dbeta.bank_base_address = a.dbeta_addr;

  for (uint32_t i = 0; i < a.num_rows; ++i) {
    const uint32_t row = a.start_row + i;
    const bool last_row = i + 1 == a.num_rows;
    for (uint32_t c0 = 0; c0 < a.wt; c0 += a.block) {
      const uint32_t cur = std::min(a.block, a.wt - c0);
      for (uint32_t j = 0; j < cur; ++j) {
        cb_wait_front(cb::kDx, 1);
        noc_async_write_tile(row * a.wt + c0 + j, dx, get_read_ptr(cb::kDx));
        noc_async_write_barrier();
        cb_pop_front(cb::kDx, 1);
      }
      const bool span_done = (c0 + cur) % kSpanTiles == 0 || c0 + cur == a.wt;
      if ((last_row || a.stream) && span_done) {
        const uint32_t page = (a.stream ? row * a.spans : a.first_span_page) + c0 / kSpanTiles;
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
