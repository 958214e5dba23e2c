// Kernels of the norm forward tile op, their compile-time variant and typed arguments.
#pragma once

#include <cstdint>

#include "tile/ops/op_args.h"

namespace tilenorm::tile {

// The compile-time kernel args: which member of the family the kernels run.
struct NormForwardVariant {
  bool rms = false;       // RMSNorm: no mean pass (mean := 0), no beta, rrms in place of rstd
  bool residual = false;  // h = x + residual is normalized and written out
};

struct NormForwardReaderArgs {
  TileRows rows;
  uint32_t x_addr, residual_addr, gamma_addr, beta_addr;
};

struct NormForwardComputeArgs {
  TileRows rows;
  RowMeanConstants mean;  // row sums -> means
  uint32_t eps_bits;      // fp32 bits of eps
};

struct NormForwardWriterArgs {
  TileRows rows;
  uint32_t y_addr, h_addr, mean_addr, rstd_addr;
};

template <NormForwardVariant V>
void norm_forward_reader(const NormForwardReaderArgs& args);
template <NormForwardVariant V>
void norm_forward_compute(const NormForwardComputeArgs& args);
template <NormForwardVariant V>
void norm_forward_writer(const NormForwardWriterArgs& args);

// Explicit instantiations of a forward kernel for the four variants.
#define TILENORM_NORM_FORWARD_VARIANTS(kernel, Args)                        \
  template void kernel<NormForwardVariant{false, false}>(const Args& args); \
  template void kernel<NormForwardVariant{false, true}>(const Args& args);  \
  template void kernel<NormForwardVariant{true, false}>(const Args& args);  \
  template void kernel<NormForwardVariant{true, true}>(const Args& args);

}  // namespace tilenorm::tile
