// RMSNorm forward and backward, with the optional fused residual add: the public API.
//
// Normalizes over the last dim C, as torch.nn.RMSNorm / Llama's RMSNorm; statistics and dgamma
// accumulated in fp32 (float64 in the reference backend):
//   forward:  h = x + residual (or x),  rrms_r = 1 / sqrt((1/C) sum_i h_ri^2 + eps)
//             y_ri = h_ri * rrms_r * gamma_i
//   backward: x is h when the forward took a residual.  xhat = x * rrms,  g = dy * gamma,
//             dx = rrms * (g - xhat * mean_i(g * xhat)) (+ dh_in when given),
//             dgamma_i = sum_r dy_ri * xhat_ri
// It is LayerNorm with mean := 0, no beta and no mean_i(g) term; every backend runs both through
// one implementation. Tensors, dtypes, eps, non-finite values, errors and thread-safety are as in
// layernorm.h: x, dy, y, dx, residual, h, dh_in share x's shape and dtype; gamma is [C], the
// dtype of x; rrms has the leading dims of x and dtype norm_stat_dtype(x); dgamma is [C],
// norm_stat_dtype(x), overwritten.
#pragma once

#include "tilenorm/backend.h"
#include "tilenorm/norm.h"
#include "tilenorm/status.h"
#include "tilenorm/tensor.h"

namespace tilenorm {

struct RmsNormForwardArgs {
  ConstTensorView x;
  ConstTensorView gamma;
  double eps = kDefaultEps;
  ConstTensorView residual;  // may be empty: no residual add
};

struct RmsNormForwardOutputs {
  TensorView y;
  TensorView rrms;
  TensorView h;  // x + residual; given iff args.residual is
};

struct RmsNormBackwardArgs {
  ConstTensorView x;  // h when the forward took a residual
  ConstTensorView dy;
  ConstTensorView gamma;
  ConstTensorView rrms;   // from the forward
  ConstTensorView dh_in;  // may be empty: the gradient arriving on the residual stream
};

struct RmsNormBackwardOutputs {
  TensorView dx;
  TensorView dgamma;
};

Status rmsnorm_forward(Backend backend, const RmsNormForwardArgs& args,
                       const RmsNormForwardOutputs& out, const NormOptions& options = {});

Status rmsnorm_backward(Backend backend, const RmsNormBackwardArgs& args,
                        const RmsNormBackwardOutputs& out, const NormOptions& options = {});

// Owning convenience forms: allocate outputs of the right shapes and dtypes, then run.
struct RmsNormForwardResult {
  Tensor y, rrms, h;  // h only with a residual
};
struct RmsNormBackwardResult {
  Tensor dx, dgamma;
};
Status rmsnorm_forward(Backend backend, const RmsNormForwardArgs& args,
                       RmsNormForwardResult* result, const NormOptions& options = {});
Status rmsnorm_backward(Backend backend, const RmsNormBackwardArgs& args,
                        RmsNormBackwardResult* result, const NormOptions& options = {});

}  // namespace tilenorm
