// Writer of the report's LayerNorm backward op: per block of 3, dx and the dgamma/dbeta
// components (full-size bf16, reduced over rows on the host) to their tile positions.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/report_layernorm_backward/cbs.h"
#include "tile/ops/report_layernorm_backward/kernels.h"

namespace tilenorm::tile {

namespace cb = report_layernorm_backward_cb;

void report_backward_writer(const ReportBackwardWriterArgs& a) {
  const uint32_t cbs[3] = {cb::kDx, cb::kDgammaComp, cb::kDbetaComp};
  const InterleavedAddrGenFast<true> out[3] = {tile_addr_gen(a.dx_addr, cb::kDx),
                                               tile_addr_gen(a.dgamma_addr, cb::kDgammaComp),
                                               tile_addr_gen(a.dbeta_addr, cb::kDbetaComp)};
  for (uint32_t i = 0; i < a.num_rows; ++i) {
    for (uint32_t c = 0; c < a.wt; c += cb::kBlock) {
      const uint32_t cur = std::min(cb::kBlock, a.wt - c);
      for (int k = 0; k < 3; ++k) {
        cb_wait_front(cbs[k], cb::kBlock);
        for (uint32_t j = 0; j < cur; ++j)
          noc_async_write_tile((a.start_row + i) * a.wt + c + j, out[k],
                               get_read_ptr(cbs[k]) + j * get_tile_size(cbs[k]));
      }
      noc_async_write_barrier();
      for (uint32_t k : cbs) cb_pop_front(k, cb::kBlock);
    }
  }
}

}  // namespace tilenorm::tile
