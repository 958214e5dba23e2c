// Status: the error value every public entry point returns, and TN_CHECK for broken invariants.
#pragma once

#include <string>
#include <utility>

namespace tilenorm {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // caller passed a bad shape, dtype, value or option
  kUnsupported,        // backend not built, or the combination is not implemented
  kIoError,            // file missing, unreadable, malformed
  kResourceExhausted,  // e.g. circular buffers exceed a core's L1
  kInternal,           // a backend failed (CUDA call, device fault)
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }
  static Status invalid_argument(std::string m) {
    return Status(StatusCode::kInvalidArgument, std::move(m));
  }
  static Status unsupported(std::string m) {
    return Status(StatusCode::kUnsupported, std::move(m));
  }
  static Status io_error(std::string m) { return Status(StatusCode::kIoError, std::move(m)); }
  static Status resource_exhausted(std::string m) {
    return Status(StatusCode::kResourceExhausted, std::move(m));
  }
  static Status internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: gamma has 7 elements, expected C = 8"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

[[noreturn]] void check_failed(const char* file, int line, const char* cond,
                               const std::string& msg);

}  // namespace tilenorm

#define TN_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::tilenorm::Status tn_status_ = (expr);  \
    if (!tn_status_.ok()) return tn_status_; \
  } while (0)

// Broken internal invariant (never caller input): print file:line and the message, then abort.
#define TN_CHECK(cond, msg)                                                  \
  do {                                                                       \
    if (!(cond)) ::tilenorm::check_failed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)
