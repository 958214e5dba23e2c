// Reader of the report's LayerNorm backward op (upstream's reader_layernorm_bw_interleaved): the
// mask and scaler pages once, then per tile-row rstd and mean, and either the whole tile-row of
// x and dy (gamma once per core) or three passes in blocks of 3: dy + gamma (s1), x + dy + gamma
// (s2), x + gamma + dy (dx). A block always reserves and pushes 3 pages.
#include <algorithm>

#include "tile/machine/api/dataflow_api.h"
#include "tile/ops/dataflow_helpers.h"
#include "tile/ops/report_layernorm_backward/cbs.h"
#include "tile/ops/report_layernorm_backward/kernels.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile {

namespace cb = report_layernorm_backward_cb;

void report_backward_reader(const ReportBackwardReaderArgs& a) {
  const auto x = tile_addr_gen(a.x_addr, cb::kX), dy = tile_addr_gen(a.dy_addr, cb::kDy),
             gamma = tile_addr_gen(a.gamma_addr, cb::kGamma),
             mean = tile_addr_gen(a.mean_addr, cb::kMean),
             rstd = tile_addr_gen(a.rstd_addr, cb::kRstd);
  push_mask_page(cb::kMask, a.mask_w);
  cb_reserve_back(cb::kScaler, 1);
  fill_page(cb::kScaler, 0, bf16_to_float(bf16{uint16_t(a.scaler_bits)}));
  cb_push_back(cb::kScaler, 1);
  for (uint32_t i = 0; i < a.num_rows; ++i) {
    const uint32_t row = a.start_row + i;
    read_tiles_into(cb::kRstd, rstd, row, 1, 1);
    read_tiles_into(cb::kMean, mean, row, 1, 1);
    noc_async_read_barrier();
    cb_push_back(cb::kRstd, 1);
    cb_push_back(cb::kMean, 1);
    if (a.fit) {
      read_tiles_into(cb::kX, x, row * a.wt, a.wt, a.wt);
      read_tiles_into(cb::kDy, dy, row * a.wt, a.wt, a.wt);
      if (i == 0) read_tiles_into(cb::kGamma, gamma, 0, a.wt, a.wt);
      noc_async_read_barrier();
      cb_push_back(cb::kX, a.wt);
      cb_push_back(cb::kDy, a.wt);
      if (i == 0) cb_push_back(cb::kGamma, a.wt);
      continue;
    }
    for (int pass = 0; pass < 3; ++pass) {
      for (uint32_t c = 0; c < a.wt; c += cb::kBlock) {
        const uint32_t cur = std::min(cb::kBlock, a.wt - c);
        if (pass > 0) read_tiles_into(cb::kX, x, row * a.wt + c, cur, cb::kBlock);
        read_tiles_into(cb::kDy, dy, row * a.wt + c, cur, cb::kBlock);
        read_tiles_into(cb::kGamma, gamma, c, cur, cb::kBlock);
        noc_async_read_barrier();
        if (pass > 0) cb_push_back(cb::kX, cb::kBlock);
        cb_push_back(cb::kDy, cb::kBlock);
        cb_push_back(cb::kGamma, cb::kBlock);
      }
    }
  }
}

}  // namespace tilenorm::tile
