// .npy files (NumPy format v1.0 / v2.0 / v3.0): little-endian, C order.
// Reading accepts '<f4', '<f8' and '<f2' and converts to the requested dtype; anything else
// (big-endian, Fortran order, objects, integers, truncated or oversized payloads, malformed
// headers) is an IoError naming the file and the problem. Writing goes to a temporary name in
// the same directory and is renamed into place, so a failure never leaves a partial file.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tilenorm/status.h"
#include "tilenorm/tensor.h"

namespace tilenorm {

// Reads `path` into *out as `dtype` (f32, f64, or bf16 rounded to nearest even).
Status npy_read(const std::string& path, DType dtype, Tensor* out);

// Parses an in-memory .npy image; `name` is used in messages.
Status npy_parse(const std::string& name, const std::string& bytes, DType dtype, Tensor* out);

// The .npy image of `t`: f32 as '<f4', f64 as '<f8', bf16 widened to '<f4' (exactly).
std::string npy_encode(ConstTensorView t);

// Writes `t` to `path` via a temporary file renamed into place.
Status npy_write(const std::string& path, ConstTensorView t);

// Writes several files all-or-nothing: every image goes to a temporary name first; only when all
// were written are they renamed into place. On failure no target file is created or changed.
Status npy_write_all(const std::vector<std::pair<std::string, ConstTensorView>>& files);

}  // namespace tilenorm
