// .npy files (NumPy format v1.0 / v2.0 / v3.0): little-endian, C order.
// Reading accepts '<f4', '<f8' and '<f2' and converts to the requested dtype; anything else
// (big-endian, Fortran order, objects, integers, truncated or oversized payloads, malformed
// headers) is an IoError naming the file and the problem. Writing goes to a temporary name in
// the same directory and is renamed into place, so a failure never leaves a partial file.
#pragma once

#include <string>

#include "tilenorm/status.h"
#include "tilenorm/tensor.h"

namespace tilenorm {

// Reads `path` into *out as `dtype` (f32, f64, or bf16 rounded to nearest even).
Status npy_read(const std::string& path, DType dtype, Tensor* out);

// Parses an in-memory .npy image; `name` is used in messages.
Status npy_parse(const std::string& name, const std::string& bytes, DType dtype, Tensor* out);

// Writes `t` to `path`: f32 as '<f4', f64 as '<f8', bf16 widened to '<f4'.
Status npy_write(const std::string& path, ConstTensorView t);

}  // namespace tilenorm
