// Kernels of the norm backward tile op, their compile-time variant and typed arguments.
#pragma once

#include <cstdint>

#include "tile/ops/op_args.h"

namespace tilenorm::tile {

// The compile-time kernel args: which member of the family the kernels run.
struct NormBackwardVariant {
  bool rms = false;    // RMSNorm: no mean, no s1 (mean(g)) term, no dbeta; rrms in place of rstd
  bool dh_in = false;  // dx += dh_in
};

struct NormBackwardReaderArgs {
  TileRows rows;
  uint32_t x_addr, dy_addr, gamma_addr, mean_addr, rstd_addr, dh_in_addr;
};

struct NormBackwardComputeArgs {
  TileRows rows;          // stream: every tile-row's spans go to the writer (no carry across rows)
  RowMeanConstants mean;  // row sums -> means
};

struct NormBackwardWriterArgs {
  TileRows rows;  // stream: one partial per tile-row, at page row * spans
  uint32_t dx_addr, dgamma_addr, dbeta_addr;
  uint32_t first_span_page;  // this core's first page in the dgamma/dbeta partial buffers
};

template <NormBackwardVariant V>
void norm_backward_reader(const NormBackwardReaderArgs& args);
template <NormBackwardVariant V>
void norm_backward_compute(const NormBackwardComputeArgs& args);
template <NormBackwardVariant V>
void norm_backward_writer(const NormBackwardWriterArgs& args);

// Explicit instantiations of a backward kernel for the four variants.
#define TILENORM_NORM_BACKWARD_VARIANTS(kernel, Args)                        \
  template void kernel<NormBackwardVariant{false, false}>(const Args& args); \
  template void kernel<NormBackwardVariant{false, true}>(const Args& args);  \
  template void kernel<NormBackwardVariant{true, false}>(const Args& args);  \
  template void kernel<NormBackwardVariant{true, true}>(const Args& args);

}  // namespace tilenorm::tile
