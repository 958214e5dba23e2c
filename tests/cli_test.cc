// The `tilenorm` binary end to end: outputs on the report's constant inputs, and one test per
// kind of bad input asserting the one-line message, exit code 2 and that no output was written.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "common/npy.h"
#include "test_util.h"

namespace tilenorm {
namespace {

namespace fs = std::filesystem;

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

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

class Cli : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const Tensor& t) {
    const std::string path = (dir_ / name).string();
    EXPECT_TRUE(npy_write(path, t.cview()).ok());
    return path;
  }

  CliRun run(const std::string& args, const RunHooks& hooks = {}) {
    const std::string cmd = hooks.shell_prefix + "exec " + TILENORM_CLI + " " + args + " >" +
                            (dir_ / "stdout").string() + " 2>" + (dir_ / "stderr").string();
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
    r.out = slurp(dir_ / "stdout");
    r.err = slurp(dir_ / "stderr");
    r.maxrss_kib = ru.ru_maxrss;
    return r;
  }

  // Writes the report's constant inputs: x = 0.5, dy = 1, gamma = 1, shape [100, 2048].
  void write_report_inputs() {
    x_ = write("x.npy", testing::constant_tensor(Shape{100, 2048}, DType::kF32, 0.5));
    dy_ = write("dy.npy", testing::constant_tensor(Shape{100, 2048}, DType::kF64, 1.0));
    gamma_ = write("gamma.npy", testing::constant_tensor(Shape{2048}, DType::kF32, 1.0));
  }

  // A bad-input run: exit code 2, one stderr line containing `needle`, no output directory.
  void expect_bad_input(const std::string& args, const std::string& needle) {
    const fs::path out = dir_ / "out_bad";
    const CliRun r = run(args + " --out " + out.string());
    EXPECT_EQ(r.rc, 2) << args << "\nstderr: " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    EXPECT_EQ(r.err.rfind("tilenorm: error: ", 0), 0u) << r.err;
    EXPECT_FALSE(fs::exists(out)) << args << ": output left behind";
  }

  testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
  std::string x_, dy_, gamma_;
};

TEST_F(Cli, BackwardOnReportConstantInputsWritesExactValues) {
  write_report_inputs();
  for (const char* backend : {"reference", "cpu"}) {
    const fs::path out = dir_ / backend;
    const CliRun r = run("backward --x " + x_ + " --dy " + dy_ + " --gamma " + gamma_ +
                         " --eps 1e-6 --backend " + backend + " --out " + out.string());
    ASSERT_EQ(r.rc, 0) << r.err;
    Tensor dx, dgamma, dbeta;
    ASSERT_TRUE(npy_read((out / "dx.npy").string(), DType::kF64, &dx).ok());
    ASSERT_TRUE(npy_read((out / "dgamma.npy").string(), DType::kF64, &dgamma).ok());
    ASSERT_TRUE(npy_read((out / "dbeta.npy").string(), DType::kF64, &dbeta).ok());
    EXPECT_EQ(dx.shape(), (Shape{100, 2048}));
    EXPECT_EQ(dgamma.shape(), (Shape{2048}));
    for (int64_t i = 0; i < dx.numel(); ++i)
      ASSERT_EQ(dx.get(i), 0.0) << backend << " dx[" << i << "]";
    for (int64_t i = 0; i < 2048; ++i) {
      ASSERT_EQ(dgamma.get(i), 0.0) << backend;
      ASSERT_EQ(dbeta.get(i), 100.0) << backend;
    }
    EXPECT_NE(r.out.find("dx.npy  [100, 2048] f32 min 0 max 0 mean 0"), std::string::npos) << r.out;
  }
}

TEST_F(Cli, ForwardWritesStatisticsOfLeadingShape) {
  x_ = write("x.npy", testing::constant_tensor(Shape{2, 3, 64}, DType::kF32, 0.5));
  gamma_ = write("gamma.npy", testing::constant_tensor(Shape{64}, DType::kF32, 1.0));
  const fs::path out = dir_ / "fwd";
  const CliRun r =
      run("forward --x " + x_ + " --gamma " + gamma_ + " --eps 1e-6 --json --out " + out.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  Tensor mean, rstd, y;
  ASSERT_TRUE(npy_read((out / "mean.npy").string(), DType::kF64, &mean).ok());
  ASSERT_TRUE(npy_read((out / "rstd.npy").string(), DType::kF64, &rstd).ok());
  ASSERT_TRUE(npy_read((out / "y.npy").string(), DType::kF64, &y).ok());
  EXPECT_EQ(mean.shape(), (Shape{2, 3}));
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(mean.get(i), 0.5);
    EXPECT_NEAR(rstd.get(i), 1000.0, 1e-3);
  }
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.get(i), 0.0);
  EXPECT_NE(r.out.find("\"command\": \"forward\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"backend\": \"cpu\""), std::string::npos) << r.out;
}

TEST_F(Cli, BadInputsNameTheArgumentAndWriteNothing) {
  write_report_inputs();
  const std::string common = " --x " + x_ + " --gamma " + gamma_ + " --backend reference";
  const std::string g7 = write("g7.npy", testing::constant_tensor(Shape{7}, DType::kF32, 1));
  const std::string dy_bad =
      write("dyb.npy", testing::constant_tensor(Shape{100, 2047}, DType::kF32, 1));
  const std::string m99 = write("m99.npy", testing::constant_tensor(Shape{99}, DType::kF32, 0));
  const std::string m100 = write("m100.npy", testing::constant_tensor(Shape{100}, DType::kF32, 0));
  const std::string empty = write("empty.npy", Tensor(Shape{0, 2048}, DType::kF32));
  const std::string c0 = write("c0.npy", Tensor(Shape{100, 0}, DType::kF32));
  const std::string broken = (dir_ / "broken.npy").string();
  std::ofstream(broken) << "\x93NUMPY garbage";

  expect_bad_input(
      "backward --backend reference --x " + x_ + " --dy " + dy_bad + " --gamma " + gamma_,
      "dy has shape [100, 2047], expected [100, 2048]");
  expect_bad_input("forward --x " + x_ + " --gamma " + g7, "gamma has shape [7], expected [2048]");
  expect_bad_input("backward" + common + " --dy " + dy_ + " --mean " + m99 + " --rstd " + m100,
                   "mean has shape [99], expected [100]");
  expect_bad_input("backward" + common + " --dy " + dy_ + " --mean " + m100,
                   "--mean and --rstd go together");
  expect_bad_input("forward --x " + empty + " --gamma " + gamma_, "x is empty (shape [0, 2048])");
  expect_bad_input("forward --x " + c0 + " --gamma " + gamma_, "x has C = 0");
  for (const char* eps : {"nan", "inf", "0", "-1e-5"})
    expect_bad_input("forward" + common + " --eps " + eps,
                     "--eps must be finite and > 0, got " + std::string(eps));
  expect_bad_input("forward" + common + " --eps abc", "--eps 'abc' is not a number");
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --backend gpu",
                   "--backend 'gpu' is unknown");
  expect_bad_input("forward" + common + " --dtype f16", "--dtype 'f16' is unknown");
  expect_bad_input("forward --x " + (dir_ / "missing.npy").string() + " --gamma " + gamma_,
                   "--x " + (dir_ / "missing.npy").string() + ": cannot open");
  expect_bad_input("forward --x " + broken + " --gamma " + gamma_, "broken.npy: ");
  expect_bad_input("forward --gamma " + gamma_, "--x is required");
}

TEST_F(Cli, ThreadCountAboveTheMaximumIsBadInput) {
  write_report_inputs();
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --threads 100000",
                   "--threads must be between 0 and 1024, got 100000");
}

// Threads that cannot start (1024 stacks do not fit a 2 GiB address space) are a run-time
// failure: one line and exit 1, never an abort.
TEST_F(Cli, ExceptionIsOneLineAndExitOne) {
  write_report_inputs();
  const fs::path out = dir_ / "out";
  const CliRun r =
      run("forward --x " + x_ + " --gamma " + gamma_ + " --threads 1024 --out " + out.string(),
          {.shell_prefix = "ulimit -v 2097152; "});
  EXPECT_EQ(r.rc, 1) << "signal " << r.sig << "\nstderr: " << r.err;
  EXPECT_EQ(r.err.rfind("tilenorm: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  EXPECT_FALSE(fs::exists(out / "y.npy"));
}

TEST_F(Cli, UnbuiltBackendIsBadInput) {
  if (backend_built(Backend::kCuda)) GTEST_SKIP() << "the CUDA backend is built into this binary";
  write_report_inputs();
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --backend cuda",
                   "backend 'cuda' is not built");
}

}  // namespace
}  // namespace tilenorm
