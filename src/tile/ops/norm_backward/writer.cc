// Norm backward writer: dx tile by tile, and on the core's last tile-row (streamed: on every
// tile-row) the dense dgamma (LayerNorm: and dbeta) partial spans (fp32), in the order compute
// produces them.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/norm_backward/cbs.h"
#include "tile/ops/norm_backward/kernels.h"
#include "tile/ops/op_args.h"

namespace tilenorm::tile {

namespace cb = norm_backward_cb;

template <NormBackwardVariant V>
void norm_backward_writer(const NormBackwardWriterArgs& a) {
  constexpr uint32_t kAcc = V.accumulators();  // dgamma (and dbeta) pages of a span
  const TileRows& r = a.rows;
  const auto dx = tile_addr_gen(a.dx_addr, cb::kDx),
             dgamma = tile_addr_gen(a.dgamma_addr, cb::kAccOut);
  InterleavedAddrGenFast<true> dbeta;  // LayerNorm only
  if constexpr (V.has_beta()) dbeta = tile_addr_gen(a.dbeta_addr, cb::kAccOut);

  for (uint32_t i = 0; i < r.count; ++i) {
    const uint32_t row = r.first + i;
    const bool last_row = i + 1 == r.count;
    for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block) {
      const uint32_t cur = std::min(r.block, r.wt - c0);
      for (uint32_t j = 0; j < cur; ++j) {
        cb_wait_front(cb::kDx, 1);
        noc_async_write_tile(row * r.wt + c0 + j, dx, get_read_ptr(cb::kDx));
        noc_async_write_barrier();
        cb_pop_front(cb::kDx, 1);
      }
      const bool span_done = (c0 + cur) % kSpanTiles == 0 || c0 + cur == r.wt;
      if ((last_row || r.stream) && span_done) {
        const uint32_t page = (r.stream ? row * r.spans : a.first_span_page) + c0 / kSpanTiles;
        cb_wait_front(cb::kAccOut, kAcc);
        const uint32_t base = get_read_ptr(cb::kAccOut);
        noc_async_write_tile(page, dgamma, base);
        if constexpr (V.has_beta())
          noc_async_write_tile(page, dbeta, base + get_tile_size(cb::kAccOut));
        noc_async_write_barrier();
        cb_pop_front(cb::kAccOut, kAcc);
      }
    }
  }
}

TILENORM_NORM_BACKWARD_VARIANTS(norm_backward_writer, NormBackwardWriterArgs)

}  // namespace tilenorm::tile
