#include "test_util.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "reference/norm.h"

namespace tilenorm::testing {

Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, double lo, double hi) {
  Tensor t(shape, dtype);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, dist(rng));
  return t;
}

Tensor constant_tensor(const Shape& shape, DType dtype, double value) {
  Tensor t(shape, dtype);
  t.fill(value);
  return t;
}

ForwardRef reference_forward(const ConstTensorView& x, const ConstTensorView& gamma,
                             const ConstTensorView& beta, double eps) {
  const int64_t rows = x.shape.rows(), C = x.shape.cols();
  const auto xv = reference::load_f64(x), gv = reference::load_f64(gamma);
  const auto bv = beta.empty() ? std::vector<double>{} : reference::load_f64(beta);
  ForwardRef r{std::vector<double>(xv.size()), std::vector<double>(rows),
               std::vector<double>(rows)};
  reference::layernorm_forward_f64(xv.data(), gv.data(), bv.empty() ? nullptr : bv.data(), rows, C,
                                   eps, r.y.data(), r.mean.data(), r.rstd.data());
  return r;
}

BackwardRef reference_backward(const ConstTensorView& x, const ConstTensorView& dy,
                               const ConstTensorView& gamma, const ConstTensorView& mean,
                               const ConstTensorView& rstd) {
  const int64_t rows = x.shape.rows(), C = x.shape.cols();
  const auto xv = reference::load_f64(x), dyv = reference::load_f64(dy),
             gv = reference::load_f64(gamma), mv = reference::load_f64(mean),
             rv = reference::load_f64(rstd);
  BackwardRef r{std::vector<double>(xv.size()), std::vector<double>(C), std::vector<double>(C)};
  reference::layernorm_backward_f64(xv.data(), dyv.data(), gv.data(), mv.data(), rv.data(), rows, C,
                                    r.dx.data(), r.dgamma.data(), r.dbeta.data());
  return r;
}

::testing::AssertionResult AllClose(const char* name, const ConstTensorView& got,
                                    const std::vector<double>& ref, Tolerance tol) {
  const CompareResult c = compare_allclose(got, ref, tol);
  if (c.pass) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << name << " (atol " << tol.atol << ", rtol " << tol.rtol << "): " << c.to_string();
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/tilenorm_test.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl << " failed";
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

CliRun run_cli(const std::string& binary, const std::string& args, const std::filesystem::path& dir,
               const RunHooks& hooks) {
  const std::string cmd = hooks.shell_prefix + "exec " + binary + " " + args + " >" +
                          (dir / "stdout").string() + " 2>" + (dir / "stderr").string();
  int go[2];
  if (::pipe(go) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {  // wait for the parent's go, then become the binary (same pid)
    ::close(go[1]);
    char c;
    if (::read(go[0], &c, 1) == 1) ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(go[0]);
  if (hooks.before_exec) hooks.before_exec(pid);
  EXPECT_EQ(::write(go[1], "g", 1), 1);
  ::close(go[1]);
  if (hooks.while_running) hooks.while_running(pid);
  int status = 0;
  struct rusage ru {};
  EXPECT_EQ(::wait4(pid, &status, 0, &ru), pid);
  CliRun r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.out = slurp(dir / "stdout");
  r.err = slurp(dir / "stderr");
  r.maxrss_kib = ru.ru_maxrss;
  return r;
}

void expect_cli_bad_input(const std::string& binary, const std::string& args,
                          const std::filesystem::path& dir, const std::string& needle) {
  const std::filesystem::path out = dir / "out_bad";
  const CliRun r = run_cli(binary, args + " --out " + out.string(), dir);
  EXPECT_EQ(r.rc, 2) << args << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  EXPECT_EQ(r.err.rfind("tilenorm: error: ", 0), 0u) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out)) << args << ": output left behind";
}

}  // namespace tilenorm::testing
