// Kernels of the LayerNorm forward tile op and their typed arguments.
#pragma once

#include <cstdint>

#include "tile/ops/layernorm_common.h"

namespace tilenorm::tile {

struct LayerNormForwardReaderArgs {
  uint32_t x_addr, gamma_addr, beta_addr;
  uint32_t start_row, num_rows;  // this core's tile-rows
  uint32_t wt, block, mask_w, fit;
  uint32_t dense_tiles;  // dense gamma / beta pages
  uint32_t stream;       // 1: keep one dense page, read per span (block path, any C)
};

struct LayerNormForwardComputeArgs {
  uint32_t num_rows, wt, block, mask_w, fit;
  RowMeanConstants mean;  // row sums -> means
  uint32_t eps_bits;      // fp32 bits of eps
};

struct LayerNormForwardWriterArgs {
  uint32_t y_addr, mean_addr, rstd_addr;
  uint32_t start_row, num_rows, wt;
};

void layernorm_forward_reader(const LayerNormForwardReaderArgs& args);
void layernorm_forward_compute(const LayerNormForwardComputeArgs& args);
void layernorm_forward_writer(const LayerNormForwardWriterArgs& args);

}  // namespace tilenorm::tile
