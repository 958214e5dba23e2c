// The public API's validation of a call's arguments, shared by every entry: the host API
// (src/api.cc) and the CUDA device-memory entry (src/cuda_api.cc, include/tilenorm/cuda.h).
#pragma once

#include <cstddef>
#include <optional>

#include "norm_args.h"
#include "tilenorm/backend.h"
#include "tilenorm/status.h"

namespace tilenorm {

// The element type of x as the checks see it: what messages call it, its size (for the byte
// size overflow check) and whether it is normalized in f64 (which bounds eps).
struct DataType {
  const char* name;
  size_t size;
  bool f64;
};
DataType data_type(DType dtype);

// Unsupported, saying how to build it, when `backend` is not built into this binary.
Status check_built(Backend backend);

// Checks shapes, presence, dtypes and eps of a call, and, when `backend` is given, that the
// backend is built and takes x's dtype (checked right after x itself). `x_type` names x's element
// type; the views' DTypes must agree with each other as the host API requires.
Status validate_forward(std::optional<Backend> backend, const NormForwardArgs& a,
                        const NormForwardOutputs& o, const DataType& x_type);
Status validate_backward(std::optional<Backend> backend, const NormBackwardArgs& a,
                         const NormBackwardOutputs& o, const DataType& x_type);

}  // namespace tilenorm
