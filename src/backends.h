// Internal entry points of each backend. The public API (src/api.cc) validates shapes, dtypes
// and eps once and then calls these, which trust their arguments.
#pragma once

#include "tilenorm/layernorm.h"

#define TILENORM_DECLARE_BACKEND(ns)                                                    \
  namespace tilenorm::ns {                                                              \
  Status layernorm_forward(const LayerNormForwardArgs& args,                           \
                           const LayerNormForwardOutputs& out, const LayerNormOptions& opt); \
  Status layernorm_backward(const LayerNormBackwardArgs& args,                         \
                            const LayerNormBackwardOutputs& out,                       \
                            const LayerNormOptions& opt);                              \
  }

TILENORM_DECLARE_BACKEND(reference)
TILENORM_DECLARE_BACKEND(cpu)
TILENORM_DECLARE_BACKEND(tile)
TILENORM_DECLARE_BACKEND(cuda)

#undef TILENORM_DECLARE_BACKEND
