// Kernels of the norm backward tile op, their compile-time variant and typed arguments.
#pragma once

#include <cstdint>

#include "tile/ops/op_args.h"
#include "tilenorm/norm.h"

namespace tilenorm::tile {

// The compile-time kernel args: which member of the family the kernels run. Its traits
// (include/tilenorm/norm.h) pick the terms: the mean, the s1 (mean(g)) term, dbeta (RMSNorm has
// none of them: rrms in place of rstd).
struct NormBackwardVariant {
  Norm norm = Norm::kLayerNorm;
  bool dh_in = false;  // dx += dh_in
  constexpr bool has_mean() const { return norm_traits(norm).has_mean; }
  constexpr bool has_beta() const { return norm_traits(norm).has_beta; }
  constexpr bool mean_g_term() const { return norm_traits(norm).mean_g_term; }
  // Row partials: Σg (for the s1 term, or to centre Σg·x about the mean) and Σg·x.
  constexpr uint32_t row_sums() const { return has_mean() || mean_g_term() ? 2 : 1; }
  // The dγ/dβ span pair: dγ, and dβ where the norm has a beta.
  constexpr uint32_t accumulators() const { return has_beta() ? 2 : 1; }
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

// NOLINTBEGIN(bugprone-macro-parentheses): the arguments are a template name and a type,
// which parentheses would not parse.
// Explicit instantiations of a backward kernel for every variant: each norm, without and with
// the residual gradient.
#define TILENORM_NORM_BACKWARD_VARIANTS(kernel, Args)                                   \
  template void kernel<NormBackwardVariant{Norm::kLayerNorm, false}>(const Args& args); \
  template void kernel<NormBackwardVariant{Norm::kLayerNorm, true}>(const Args& args);  \
  template void kernel<NormBackwardVariant{Norm::kRmsNorm, false}>(const Args& args);   \
  template void kernel<NormBackwardVariant{Norm::kRmsNorm, true}>(const Args& args);
// NOLINTEND(bugprone-macro-parentheses)

}  // namespace tilenorm::tile
