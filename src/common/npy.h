// .npy files (NumPy format v1.0 / v2.0 / v3.0): little-endian, C order.
// Reading accepts '<f4', '<f8' and '<f2' and converts to the requested dtype; anything else
// (big-endian, Fortran order, objects, integers, truncated or oversized payloads, malformed
// headers, the header quirks NumPy rejects) is an IoError naming the file and the problem; a
// tensor that does not fit in memory is ResourceExhausted. Files are read straight into the
// tensor and written straight from it (conversions go through a 1 MiB buffer). Writing creates
// a fresh temporary name beside the target exclusively (an existing file or symlink there is
// never followed) and renames it into place, so a failure never leaves a partial file.
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
std::string npy_encode(const ConstTensorView& t);

// Writes `t` to `path` via a temporary file renamed into place.
Status npy_write(const std::string& path, const ConstTensorView& t);

// Writes several files all-or-nothing: every image goes to a temporary name first; only when all
// were written are they renamed into place, each replaced target kept under a backup name until
// the last rename succeeded. On failure (a target is a directory, a rename fails) every target
// is as it was before the call.
Status npy_write_all(const std::vector<std::pair<std::string, ConstTensorView>>& files);

// For programs: SIGINT and SIGTERM remove the temporaries being written, then end the process
// as the signal would; a signal during the final renames waits until they are done. SIGXFSZ is
// ignored, so a file size limit is a write error rather than a crash.
void npy_install_signal_handlers();

}  // namespace tilenorm
