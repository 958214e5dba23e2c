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
// Fused residual add (optional, the pre-norm transformer's residual stream):
//   forward:  h = x + residual is normalized in place of x and written to `h`;
//   backward: x is then h (the forward's output), and dh_in, the gradient arriving on the
//             residual stream, is added: dx = (the above) + dh_in. dx is the gradient of both x
//             and residual (h = x + residual).
//
// Tensors and dtypes (checked once, here; backends trust them; a violation is InvalidArgument):
//   x, dy, y, dx, residual, h, dh_in: same shape [..., C], C >= 1, rows >= 1, no negative dim, a
//   size in bytes that fits ptrdiff_t; dtype f32 or bf16 (f64 on the reference and cpu backends),
//   all the same. gamma, beta: [C], the dtype of x. beta may be empty (treated as 0). residual may
//   be empty; h is required with a residual and must be empty without one. dh_in may be empty.
//   mean, rstd: the leading dims of x ([rows] for a 2-D x, [1] for a 1-D x), norm_stat_dtype(x):
//   f32, or f64 for f64 data. dgamma, dbeta: [C], norm_stat_dtype(x). They are overwritten, never
//   accumulated into. f64 data is computed in float64 throughout (the reference's own loops on
//   unrounded values; the cpu backend's f64 SIMD lanes).
// eps: a positive normal number of the compute dtype, FLT_MIN <= eps <= FLT_MAX for f32 and bf16
// data (on every backend, the reference included), DBL_MIN <= eps for f64 data. Below that the
// f32 statistics lose it: a constant row's rstd would be 1/sqrt(0).
// Outputs are caller-allocated views and must not alias inputs. NaN/Inf inside the data are not
// an error; every backend gives the float64 reference's outputs on them (docs/layernorm.md,
// "Non-finite inputs": a row holding NaN/Inf has rstd and y NaN, its mean the row sum / C; a
// NaN/Inf of dy stays in its own column of dgamma/dbeta).
// No exception crosses this API. Status codes: InvalidArgument (a bad tensor, shape, dtype or
// eps, named); Unsupported (a backend not built, or a CUDA build without a usable device);
// ResourceExhausted (memory that cannot be allocated, "out of memory"; or the tile machine's L1
// budget); Internal (any other run-time failure of a backend).
// Thread-safety: calls are independent; concurrent calls must not share outputs.
#pragma once

#include "tilenorm/backend.h"
#include "tilenorm/norm.h"
#include "tilenorm/status.h"
#include "tilenorm/tensor.h"

namespace tilenorm {

using LayerNormOptions = NormOptions;

struct LayerNormForwardArgs {
  ConstTensorView x;
  ConstTensorView gamma;
  ConstTensorView beta;  // may be empty
  double eps = kDefaultEps;
  ConstTensorView residual;  // may be empty: no residual add
};

struct LayerNormForwardOutputs {
  TensorView y;
  TensorView mean;
  TensorView rstd;
  TensorView h;  // x + residual; given iff args.residual is
};

struct LayerNormBackwardArgs {
  ConstTensorView x;
  ConstTensorView dy;
  ConstTensorView gamma;
  ConstTensorView mean;   // from the forward
  ConstTensorView rstd;   // from the forward
  ConstTensorView dh_in;  // may be empty: the gradient arriving on the residual stream
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
  Tensor y, mean, rstd, h;  // h only with a residual
};
struct LayerNormBackwardResult {
  Tensor dx, dgamma, dbeta;
};
Status layernorm_forward(Backend backend, const LayerNormForwardArgs& args,
                         LayerNormForwardResult* result, const LayerNormOptions& options = {});
Status layernorm_backward(Backend backend, const LayerNormBackwardArgs& args,
                          LayerNormBackwardResult* result, const LayerNormOptions& options = {});

}  // namespace tilenorm
