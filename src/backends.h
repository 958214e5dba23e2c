// Internal entry points of each backend. The public API (src/api.cc) validates shapes, dtypes
// and eps once and then calls these, which trust their arguments.
// norm_forward / norm_backward run the whole family (LayerNorm, RMSNorm, with or without the
// fused residual add) through one implementation per backend.
#pragma once

#include "norm_args.h"
#include "tilenorm/status.h"

#define TILENORM_DECLARE_BACKEND(ns)                                                 \
  namespace tilenorm::ns {                                                           \
  Status norm_forward(const NormForwardArgs& args, const NormForwardOutputs& out,    \
                      const NormOptions& opt);                                       \
  Status norm_backward(const NormBackwardArgs& args, const NormBackwardOutputs& out, \
                       const NormOptions& opt);                                      \
  }

TILENORM_DECLARE_BACKEND(reference)
TILENORM_DECLARE_BACKEND(cpu)
TILENORM_DECLARE_BACKEND(tile)
TILENORM_DECLARE_BACKEND(cuda)

#undef TILENORM_DECLARE_BACKEND
