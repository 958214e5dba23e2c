// Kernels of the LayerNorm backward tile op and their typed arguments.
#pragma once

#include <cstdint>

#include "tile/ops/layernorm_common.h"

namespace tilenorm::tile {

struct LayerNormBackwardReaderArgs {
  uint32_t x_addr, dy_addr, gamma_addr, mean_addr, rstd_addr;
  uint32_t start_row, num_rows;  // this core's tile-rows
  uint32_t wt, block, mask_w, fit;
  uint32_t gamma_tiles;  // dense gamma pages
  uint32_t stream;       // 1: keep one dense page, read per span
};

struct LayerNormBackwardComputeArgs {
  uint32_t num_rows, wt, block, mask_w, fit;
  RowMeanConstants mean;  // row sums -> means
  uint32_t stream;        // 1: every tile-row's spans go to the writer (no carry across rows)
};

struct LayerNormBackwardWriterArgs {
  uint32_t dx_addr, dgamma_addr, dbeta_addr;
  uint32_t start_row, num_rows, wt, block;
  uint32_t first_span_page;  // this core's first page in the dgamma/dbeta partial buffers
  uint32_t spans;            // pages per partial
  uint32_t stream;           // 1: one partial per tile-row, at page row * spans
};

void layernorm_backward_reader(const LayerNormBackwardReaderArgs& args);
void layernorm_backward_compute(const LayerNormBackwardComputeArgs& args);
void layernorm_backward_writer(const LayerNormBackwardWriterArgs& args);

}  // namespace tilenorm::tile
