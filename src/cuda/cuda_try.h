// Early returns on a failed CUDA call, for the C++20 glue and the C++17 kernels alike: include
// <cuda_runtime_api.h> and cuda/norm_cuda.h (CudaError) before expanding them.
#pragma once

// Returns CudaError{err, name} from the enclosing function when `call` fails.
#define TN_CUDA_TRY(call, name)                                  \
  do {                                                           \
    const cudaError_t tn_err_ = (call);                          \
    if (tn_err_ != cudaSuccess) return CudaError{tn_err_, name}; \
  } while (0)

// Returns a CudaError-valued `expr` from the enclosing function when it is not ok().
#define TN_RETURN_IF_CUDA_ERROR(expr) \
  do {                                \
    const CudaError tn_e_ = (expr);   \
    if (!tn_e_.ok()) return tn_e_;    \
  } while (0)
