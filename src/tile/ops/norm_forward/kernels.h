// Kernels of the norm forward tile op, their compile-time variant and typed arguments.
#pragma once

#include <cstdint>

#include "tile/ops/op_args.h"
#include "tilenorm/norm.h"

namespace tilenorm::tile {

// The compile-time kernel args: which member of the family the kernels run. Its traits
// (include/tilenorm/norm.h) pick the passes: a mean pass and a mean statistic, a beta (RMSNorm
// has neither: mean := 0, rrms in place of rstd).
struct NormForwardVariant {
  Norm norm = Norm::kLayerNorm;
  bool residual = false;  // h = x + residual is normalized and written out
  constexpr bool has_mean() const { return norm_traits(norm).has_mean; }
  constexpr bool has_beta() const { return norm_traits(norm).has_beta; }
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

// NOLINTBEGIN(bugprone-macro-parentheses): the arguments are a template name and a type,
// which parentheses would not parse.
// Explicit instantiations of a forward kernel for every variant: each norm, without and with
// the residual add.
#define TILENORM_NORM_FORWARD_VARIANTS(kernel, Args)                                   \
  template void kernel<NormForwardVariant{Norm::kLayerNorm, false}>(const Args& args); \
  template void kernel<NormForwardVariant{Norm::kLayerNorm, true}>(const Args& args);  \
  template void kernel<NormForwardVariant{Norm::kRmsNorm, false}>(const Args& args);   \
  template void kernel<NormForwardVariant{Norm::kRmsNorm, true}>(const Args& args);
// NOLINTEND(bugprone-macro-parentheses)

}  // namespace tilenorm::tile
