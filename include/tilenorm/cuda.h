// The CUDA backend on device memory: the norm family on tensors a caller already holds on the
// GPU (the PyTorch extension's CUDA tensors), queued on the caller's stream. No transfers, no
// synchronisation. The host-memory API (layernorm.h, rmsnorm.h with Backend::kCuda) copies in and
// out around the same kernels.
//
// The arguments are validated exactly as the host API validates them (the same checks, the same
// messages), before anything touches the device. Where the CUDA backend is not built into this
// binary, or no usable device is present, a call that passes validation returns Unsupported.
//
// Element types: the data tensors (x, residual, gamma, beta, y, h; dy, dh_in, dx) share one
// CudaDType; the statistics (mean, rstd / rrms) and dgamma, dbeta are f32. CudaDType is its own
// enum, not DType: f16 exists only here (the host backends take f32, bf16 and f64, and DType is
// what they compute on), and f64 does not exist here.
#pragma once

#include <memory>
#include <string>

#include "tilenorm/norm.h"
#include "tilenorm/status.h"
#include "tilenorm/tensor.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; nullptr is the legacy default stream

namespace tilenorm {

enum class CudaDType { kF32, kBF16, kF16 };

const char* cuda_dtype_name(CudaDType dtype);  // "f32", "bf16", "f16"

// Row-major tensors in device memory, aligned to their element size; the element type is given
// by the call (see above). data == nullptr means absent.
struct CudaConstTensor {
  const void* data = nullptr;
  Shape shape;
};
struct CudaTensor {
  void* data = nullptr;
  Shape shape;
};

// What the host API's NormForwardArgs / NormForwardOutputs hold, on device memory. beta is
// absent for RMSNorm (and may be for LayerNorm); mean too, rstd then holding rrms. With a
// residual, h = x + residual is written and normalized. Outputs must not alias inputs.
struct CudaNormForwardArgs {
  Norm norm = Norm::kLayerNorm;
  CudaDType dtype = CudaDType::kF32;
  CudaConstTensor x;
  CudaConstTensor residual;  // may be absent
  CudaConstTensor gamma;
  CudaConstTensor beta;
  double eps = kDefaultEps;
};
struct CudaNormForwardOutputs {
  CudaTensor y;
  CudaTensor mean;  // f32; absent for RMSNorm
  CudaTensor rstd;  // f32; rrms for RMSNorm
  CudaTensor h;     // present iff the residual is
};

// x is h when the forward took a residual; dh_in (may be absent) is added to dx. dgamma and
// dbeta (f32) are overwritten.
struct CudaNormBackwardArgs {
  Norm norm = Norm::kLayerNorm;
  CudaDType dtype = CudaDType::kF32;
  CudaConstTensor x;
  CudaConstTensor dy;
  CudaConstTensor gamma;
  CudaConstTensor mean;  // f32; absent for RMSNorm
  CudaConstTensor rstd;  // f32; rrms for RMSNorm
  CudaConstTensor dh_in;
};
struct CudaNormBackwardOutputs {
  CudaTensor dx;
  CudaTensor dgamma;  // f32
  CudaTensor dbeta;   // f32; absent for RMSNorm
};

// The state calls on one device and stream share: the device's properties, cached occupancy
// and a workspace. Bound to the current device on first use. Not thread-safe: one per stream,
// or calls serialised by the caller.
class CudaContext {
 public:
  CudaContext();
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  struct Impl;
  Impl* impl() { return impl_.get(); }

 private:
  std::unique_ptr<Impl> impl_;  // null where the CUDA backend is not built
};

// OK when the CUDA backend is built and the current device can run its kernels; otherwise
// Unsupported, saying which of the two is missing and why.
Status cuda_available();

// The norms on device memory, queued on `stream` (launch errors are returned; faults of the
// kernels themselves surface at the caller's next synchronisation).
Status cuda_norm_forward(CudaContext& context, const CudaNormForwardArgs& args,
                         const CudaNormForwardOutputs& out, CUstream_st* stream);
Status cuda_norm_backward(CudaContext& context, const CudaNormBackwardArgs& args,
                          const CudaNormBackwardOutputs& out, CUstream_st* stream);

}  // namespace tilenorm
