#include "tilenorm/status.h"

#include <cstdio>
#include <cstdlib>

namespace tilenorm {

// One line per code, as a table.
// clang-format off
const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "InvalidArgument";
    case StatusCode::kUnsupported: return "Unsupported";
    case StatusCode::kIoError: return "IoError";
    case StatusCode::kResourceExhausted: return "ResourceExhausted";
    case StatusCode::kInternal: return "Internal";
  }
  return "Unknown";
}
// clang-format on

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(status_code_name(code_)) + ": " + message_;
}

void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "tilenorm internal error at %s:%d: check '%s' failed: %s\n", file, line,
               cond, msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace tilenorm
