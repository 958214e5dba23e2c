// The arguments every backend's norm entry points take: one struct per direction for the whole
// family (include/tilenorm/norm.h), filled by the public API (src/api.cc) after validation.
#pragma once

#include "tilenorm/norm.h"
#include "tilenorm/tensor.h"

namespace tilenorm {

struct NormForwardArgs {
  Norm norm = Norm::kLayerNorm;
  ConstTensorView x;
  ConstTensorView residual;  // may be empty
  ConstTensorView gamma;
  ConstTensorView beta;  // may be empty; always empty for RMSNorm
  double eps = kDefaultEps;
};

// The field order of the public outputs (LayerNormForwardOutputs, RmsNormForwardOutputs): y,
// the statistics, h.
struct NormForwardOutputs {
  TensorView y;
  TensorView mean;  // empty for RMSNorm
  TensorView rstd;  // rrms for RMSNorm
  TensorView h;     // empty iff there is no residual
};

struct NormBackwardArgs {
  Norm norm = Norm::kLayerNorm;
  ConstTensorView x;  // h when the forward took a residual
  ConstTensorView dy;
  ConstTensorView gamma;
  ConstTensorView mean;   // empty for RMSNorm
  ConstTensorView rstd;   // rrms for RMSNorm
  ConstTensorView dh_in;  // may be empty
};

struct NormBackwardOutputs {
  TensorView dx;
  TensorView dgamma;
  TensorView dbeta;  // empty for RMSNorm
};

}  // namespace tilenorm
