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

struct CUstream_st;

// The CUDA backend on device memory, behind include/tilenorm/cuda.h (src/cuda_api.cc), which
// validates first: the same arguments, their pointers on the device, queued on `stream`.
namespace tilenorm::cuda {
class Context;
enum class ElemType;
Status norm_device(Context& context, ElemType dtype, const NormForwardArgs& args,
                   const NormForwardOutputs& out, CUstream_st* stream);
Status norm_device(Context& context, ElemType dtype, const NormBackwardArgs& args,
                   const NormBackwardOutputs& out, CUstream_st* stream);
// OK, or Unsupported naming why no device can run the kernels.
Status device_status();
}  // namespace tilenorm::cuda
