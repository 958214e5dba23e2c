// Kernels of the LayerNorm forward tile op and their typed arguments.
#pragma once

#include <cstdint>

#include "tile/ops/kernel_helpers.h"

namespace tilenorm::tile {

struct LayerNormForwardReaderArgs {
  TileRows rows;
  uint32_t x_addr, gamma_addr, beta_addr;
};

struct LayerNormForwardComputeArgs {
  TileRows rows;
  RowMeanConstants mean;  // row sums -> means
  uint32_t eps_bits;      // fp32 bits of eps
};

struct LayerNormForwardWriterArgs {
  TileRows rows;
  uint32_t y_addr, mean_addr, rstd_addr;
};

void layernorm_forward_reader(const LayerNormForwardReaderArgs& args);
void layernorm_forward_compute(const LayerNormForwardComputeArgs& args);
void layernorm_forward_writer(const LayerNormForwardWriterArgs& args);

}  // namespace tilenorm::tile
