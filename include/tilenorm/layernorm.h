// LayerNorm forward and backward: the public API.
//
// Semantics are PyTorch's native_layer_norm / native_layer_norm_backward with the normalized
// shape = the last dim C: rows = product of the leading dims; biased variance; statistics and
// dgamma/dbeta accumulated in fp32 (float64 in the reference backend).
//
//   forward:  mean_r = (1/C) sum_i x_ri,  rstd_r = 1 / sqrt((1/C) sum_i (x_ri - mean_r)^2 + eps)
//             y_ri = (x_ri - mean_r) * rstd_r * gamma_i + beta_i
//   backward: xhat = (x - mean) * rstd,  g = dy * gamma,
//             dx = rstd * (g - mean_i(g) - xhat * mean_i(g * xhat)),
//             dgamma_i = sum_r dy_ri * xhat_ri,  dbeta_i = sum_r dy_ri
//
// Tensors and dtypes (checked once, here; backends trust them; a violation is InvalidArgument):
//   x, dy, y, dx: same shape [..., C], C >= 1, rows >= 1, no negative dim, a size in bytes that
//   fits ptrdiff_t; dtype f32 or bf16 (f64 on the reference backend only), all the same.
//   gamma, beta: [C], the dtype of x. beta may be empty (treated as 0).
//   mean, rstd: the leading dims of x ([rows] for a 2-D x, [1] for a 1-D x),
//   layernorm_stat_dtype(x): f32, or f64 for f64 data.
//   dgamma, dbeta: [C], layernorm_stat_dtype(x). They are overwritten, never accumulated into.
//   f64 data is computed in float64 throughout (the reference's own loops on unrounded values).
// eps: a positive normal number of the compute dtype, FLT_MIN <= eps <= FLT_MAX for f32 and bf16
// data (on every backend, the reference included), DBL_MIN <= eps for f64 data. Below that the
// f32 statistics lose it: a constant row's rstd would be 1/sqrt(0).
// Outputs are caller-allocated views and must not alias inputs. NaN/Inf inside the data are not
// an error; every backend gives the float64 reference's outputs on them (docs/layernorm.md,
// "Non-finite inputs": a row holding NaN/Inf has rstd and y NaN, its mean the row sum / C; a
// NaN/Inf of dy stays in its own column of dgamma/dbeta).
// Thread-safety: calls are independent; concurrent calls must not share outputs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tilenorm/backend.h"
#include "tilenorm/status.h"
#include "tilenorm/tensor.h"

namespace tilenorm {

inline constexpr double kDefaultEps = 1e-5;

// The dtype of mean, rstd, dgamma and dbeta for data (x) of dtype `x`: f64 for f64, else f32.
DType layernorm_stat_dtype(DType x);

// What a backend did, for the CLI's --json and for tests: the path taken and its counters.
struct RunReport {
  std::string path;                                   // e.g. "fit", "block", "row-split"
  std::vector<std::pair<std::string, double>> metrics;  // e.g. {"dram_bytes_read", 1.2e9}
};

struct LayerNormOptions {
  int num_threads = 0;           // cpu: worker threads, 0 = all hardware threads
  RunReport* report = nullptr;  // optional: filled by the backend
};

struct LayerNormForwardArgs {
  ConstTensorView x;
  ConstTensorView gamma;
  ConstTensorView beta;  // may be empty
  double eps = kDefaultEps;
};

struct LayerNormForwardOutputs {
  TensorView y;
  TensorView mean;
  TensorView rstd;
};

struct LayerNormBackwardArgs {
  ConstTensorView x;
  ConstTensorView dy;
  ConstTensorView gamma;
  ConstTensorView mean;  // from the forward
  ConstTensorView rstd;  // from the forward
};

struct LayerNormBackwardOutputs {
  TensorView dx;
  TensorView dgamma;
  TensorView dbeta;
};

Status layernorm_forward(Backend backend, const LayerNormForwardArgs& args,
                         const LayerNormForwardOutputs& out, const LayerNormOptions& options = {});

Status layernorm_backward(Backend backend, const LayerNormBackwardArgs& args,
                          const LayerNormBackwardOutputs& out,
                          const LayerNormOptions& options = {});

// Owning convenience forms: allocate outputs of the right shapes and dtypes, then run.
struct LayerNormForwardResult {
  Tensor y, mean, rstd;
};
struct LayerNormBackwardResult {
  Tensor dx, dgamma, dbeta;
};
Status layernorm_forward(Backend backend, const LayerNormForwardArgs& args,
                         LayerNormForwardResult* result, const LayerNormOptions& options = {});
Status layernorm_backward(Backend backend, const LayerNormBackwardArgs& args,
                          LayerNormBackwardResult* result, const LayerNormOptions& options = {});

}  // namespace tilenorm
