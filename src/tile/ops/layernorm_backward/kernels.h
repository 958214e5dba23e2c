// Kernels of the LayerNorm backward tile op and their typed arguments.
#pragma once

#include <cstdint>

#include "tile/ops/kernel_helpers.h"

namespace tilenorm::tile {

struct LayerNormBackwardReaderArgs {
  TileRows rows;
  uint32_t x_addr, dy_addr, gamma_addr, mean_addr, rstd_addr;
};

struct LayerNormBackwardComputeArgs {
  TileRows rows;          // stream: every tile-row's spans go to the writer (no carry across rows)
  RowMeanConstants mean;  // row sums -> means
};

struct LayerNormBackwardWriterArgs {
  TileRows rows;  // stream: one partial per tile-row, at page row * spans
  uint32_t dx_addr, dgamma_addr, dbeta_addr;
  uint32_t first_span_page;  // this core's first page in the dgamma/dbeta partial buffers
};

void layernorm_backward_reader(const LayerNormBackwardReaderArgs& args);
void layernorm_backward_compute(const LayerNormBackwardComputeArgs& args);
void layernorm_backward_writer(const LayerNormBackwardWriterArgs& args);

}  // namespace tilenorm::tile
