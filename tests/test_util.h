// Shared test helpers: deterministic inputs, the float64 reference on tensors, and tolerance
// checks that report the worst element.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/compare.h"
#include "tilenorm/layernorm.h"

namespace tilenorm::testing {

// Uniform [lo, hi) values from a fixed seed, rounded to `dtype`.
Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, double lo = -1, double hi = 1);
Tensor constant_tensor(const Shape& shape, DType dtype, double value);

// The float64 reference on the given inputs (converted exactly to double).
struct ForwardRef {
  std::vector<double> y, mean, rstd;
};
struct BackwardRef {
  std::vector<double> dx, dgamma, dbeta;
};
ForwardRef reference_forward(const ConstTensorView& x, const ConstTensorView& gamma,
                             const ConstTensorView& beta, double eps);
BackwardRef reference_backward(const ConstTensorView& x, const ConstTensorView& dy,
                               const ConstTensorView& gamma, const ConstTensorView& mean,
                               const ConstTensorView& rstd);

// gtest assertion: every element within atol + rtol*|ref|; the message names the tensor and
// the worst element.
::testing::AssertionResult AllClose(const char* name, const ConstTensorView& got,
                                    const std::vector<double>& ref, Tolerance tol);

bool bitwise_equal(const Tensor& a, const Tensor& b);

// A fresh folder from mkdtemp under $TMPDIR (or /tmp), unique per call so that suites running at
// once never share one; removed with its contents when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// One run of a command-line binary.
struct CliRun {
  int rc = -1;  // exit status, or -1 when a signal ended the run
  int sig = 0;  // the signal that ended the run, if one did
  std::string out, err;
  long maxrss_kib = 0;  // peak resident set of the run (ru_maxrss of the child)
};

// Hooks around one run: before_exec sees the child's pid before the binary starts (the pid the
// binary will have); while_running runs while it does.
struct RunHooks {
  std::string shell_prefix;  // shell commands run before the binary, e.g. "ulimit -f 64; "
  std::function<void(pid_t)> before_exec, while_running;
};

std::string slurp(const std::filesystem::path& p);

// "layernorm", "rmsnorm + residual": a NormOp in a trace.
inline std::string op_label(const NormOp& op) {
  return std::string(norm_name(op.norm)) + (op.residual ? " + residual" : "");
}

// Runs `binary args` through /bin/sh with stdout and stderr captured in files under `dir`.
CliRun run_cli(const std::string& binary, const std::string& args, const std::filesystem::path& dir,
               const RunHooks& hooks = {});

// A bad-input run of `binary args --out DIR/out_bad`: exit code 2, one stderr line
// "tilenorm: error: ..." containing `needle`, and no output directory.
void expect_cli_bad_input(const std::string& binary, const std::string& args,
                          const std::filesystem::path& dir, const std::string& needle);

// Why `backend` cannot run here: not built, or built but Unsupported on this machine (a CUDA
// build without a usable GPU); empty when it can run. Inline: the tile op tests link test_util.cc
// without the public API.
inline std::string backend_unavailable(Backend backend) {
  if (!backend_built(backend)) return std::string(backend_name(backend)) + " is not built";
  const Tensor one = constant_tensor(Shape{1}, DType::kF32, 1);
  LayerNormForwardResult r;
  const Status s = layernorm_forward(backend, {one.cview(), one.cview(), {}, kDefaultEps}, &r);
  return s.code() == StatusCode::kUnsupported ? s.message() : std::string();
}

}  // namespace tilenorm::testing
