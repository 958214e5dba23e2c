#include "cli_common.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace tilenorm::cli {

int report_error(const std::string& message) {
  std::fprintf(stderr, "tilenorm: error: %s\n", message.c_str());
  return kExitBadInput;
}

int report_error(const Status& s) {
  std::fprintf(stderr, "tilenorm: error: %s\n", s.message().c_str());
  return s.code() == StatusCode::kInternal ? kExitFailed : kExitBadInput;
}

Status parse_backend_arg(const std::string& name, Backend* backend) {
  if (auto b = parse_backend(name)) {
    *backend = *b;
    return {};
  }
  return Status::invalid_argument(
      fmt::format("--backend '{}' is unknown (choose reference, cpu, tile or cuda)", name));
}

Status parse_dtype_arg(const std::string& name, DType* dtype, bool allow_f64) {
  if (name == "f32") {
    *dtype = DType::kF32;
  } else if (name == "bf16") {
    *dtype = DType::kBF16;
  } else if (name == "f64" && allow_f64) {
    *dtype = DType::kF64;
  } else {
    return Status::invalid_argument(fmt::format("--dtype '{}' is unknown (choose {})", name,
                                                allow_f64 ? "f32, bf16 or f64" : "f32 or bf16"));
  }
  return {};
}

Status parse_eps_arg(const std::string& text, double* eps) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end == text.c_str() || *end != '\0')
    return Status::invalid_argument(fmt::format("--eps '{}' is not a number", text));
  if (!std::isfinite(v) || v <= 0)
    return Status::invalid_argument(fmt::format("--eps must be finite and > 0, got {}", text));
  *eps = v;
  return {};
}

Status ensure_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    return Status::io_error(fmt::format("--out '{}': cannot create directory ({})", dir,
                                        ec ? ec.message() : "not a directory"));
  return {};
}

namespace {
struct Stats {
  double min = INFINITY, max = -INFINITY, mean = 0;
  int64_t nan = 0;
};
Stats stats_of(const ConstTensorView& t) {
  Stats s;
  const int64_t n = t.shape.numel();
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = tensor_get(t, i);
    if (std::isnan(v)) {
      ++s.nan;
      continue;
    }
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
    sum += v;
  }
  if (n > s.nan) s.mean = sum / static_cast<double>(n - s.nan);
  return s;
}
}  // namespace

nlohmann::json tensor_summary(const ConstTensorView& t) {
  const Stats s = stats_of(t);
  nlohmann::json j;
  j["shape"] = t.shape.dims();
  j["dtype"] = dtype_name(t.dtype);
  j["min"] = s.min;
  j["max"] = s.max;
  j["mean"] = s.mean;
  j["nan"] = s.nan;
  return j;
}

std::string tensor_summary_line(const ConstTensorView& t) {
  const Stats s = stats_of(t);
  std::string line = fmt::format("{} {} min {:.9g} max {:.9g} mean {:.9g}", t.shape.to_string(),
                                 dtype_name(t.dtype), s.min, s.max, s.mean);
  if (s.nan) line += fmt::format(" ({} NaN)", s.nan);
  return line;
}

nlohmann::json report_json(const RunReport& r) {
  nlohmann::json j;
  j["path"] = r.path;
  nlohmann::json m = nlohmann::json::object();
  for (const auto& [k, v] : r.metrics) m[k] = v;
  j["metrics"] = m;
  return j;
}

}  // namespace tilenorm::cli
