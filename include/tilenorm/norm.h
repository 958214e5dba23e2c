// What every normalization of the family shares: which norm, the statistics' dtype, the options
// and the run report. The per-norm APIs: layernorm.h, rmsnorm.h.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tilenorm/tensor.h"

namespace tilenorm {

inline constexpr double kDefaultEps = 1e-5;

// LayerNorm centres each row (mean, rstd, beta); RMSNorm does not (rrms only). Every backend
// runs both through one implementation: RMSNorm is LayerNorm with mean := 0, no beta, and no
// mean(g) term in the backward (docs/layernorm.md).
enum class Norm { kLayerNorm, kRmsNorm };

// What a member of the family computes, derived from its Norm here and nowhere else: the
// implementations branch on these traits, not on which norm it is.
struct NormTraits {
  const char* name;  // "layernorm", "rmsnorm": the CLI's --norm, kernel and report names
  bool has_mean;     // rows are taken about their mean (a mean statistic); else mean := 0 and
                     // the rstd statistic is rrms
  bool has_beta;     // a shift beta in the forward, dbeta in the backward
  bool mean_g_term;  // the backward's dx subtracts mean(dy * gamma)
};
constexpr NormTraits norm_traits(Norm norm) {
  switch (norm) {
    case Norm::kLayerNorm:
      return {.name = "layernorm", .has_mean = true, .has_beta = true, .mean_g_term = true};
    case Norm::kRmsNorm:
      return {.name = "rmsnorm", .has_mean = false, .has_beta = false, .mean_g_term = false};
  }
  return {.name = "?", .has_mean = false, .has_beta = false, .mean_g_term = false};
}

// A member of the family as the conformance registry, the benchmarks and the tests enumerate it:
// a norm, alone or with the fused residual add (forward: h = x + residual is normalized and
// written; backward: dx += dh_in).
struct NormOp {
  Norm norm = Norm::kLayerNorm;
  bool residual = false;
  // The check sees the comparison's synthesized `0` as a null pointer constant.
  // NOLINTNEXTLINE(modernize-use-nullptr)
  friend constexpr auto operator<=>(const NormOp&, const NormOp&) = default;
};
// Every NormOp: each norm alone, then each with the residual add.
inline constexpr NormOp kNormOps[] = {{.norm = Norm::kLayerNorm, .residual = false},
                                      {.norm = Norm::kRmsNorm, .residual = false},
                                      {.norm = Norm::kLayerNorm, .residual = true},
                                      {.norm = Norm::kRmsNorm, .residual = true}};

const char* norm_name(Norm norm);  // norm_traits(norm).name
std::optional<Norm> parse_norm(std::string_view name);

// The dtype of the statistics (mean, rstd, rrms) and of dgamma/dbeta for data of dtype `x`:
// f64 for f64, else f32.
DType norm_stat_dtype(DType x);

// What a backend did, for the CLI's --json and for tests: the path taken and its counters.
struct RunReport {
  std::string path;                                     // e.g. "fit", "block", "row-split"
  std::vector<std::pair<std::string, double>> metrics;  // e.g. {"dram_bytes_read", 1.2e9}
};

struct NormOptions {
  int num_threads = 0;          // cpu: worker threads, 0 = all hardware threads
  RunReport* report = nullptr;  // optional: filled by the backend
};

}  // namespace tilenorm
