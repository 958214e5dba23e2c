// The `tilenorm` binary end to end: outputs on the report's constant inputs, and one test per
// kind of bad input asserting the one-line message, exit code 2 and that no output was written.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/npy.h"
#include "reference/layernorm.h"
#include "test_util.h"

namespace tilenorm {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int rc;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tilenorm_cli_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const Tensor& t) {
    const std::string path = (dir_ / name).string();
    EXPECT_TRUE(npy_write(path, t.cview()).ok());
    return path;
  }

  CliRun run(const std::string& args) {
    const std::string cmd = std::string(TILENORM_CLI) + " " + args + " >" +
                            (dir_ / "stdout").string() + " 2>" + (dir_ / "stderr").string();
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir_ / "stdout"),
            slurp(dir_ / "stderr")};
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

  fs::path dir_;
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

// --dtype f64 on the reference backend: f64 in, f64 computed, '<f8' out (statistics too),
// bitwise the float64 reference on the unrounded data (x = 1e4 + noise is not f32-exact).
TEST_F(Cli, DtypeF64RunsTheReferenceInF64EndToEnd) {
  const int64_t rows = 4, C = 16;
  Tensor x = testing::random_tensor(Shape{rows, C}, DType::kF64, 1);
  for (int64_t i = 0; i < x.numel(); ++i) x.set(i, 1e4 + x.get(i));
  const Tensor dy = testing::random_tensor(Shape{rows, C}, DType::kF64, 2);
  const Tensor gamma = testing::random_tensor(Shape{C}, DType::kF64, 3, 0.5, 1.5);
  x_ = write("x.npy", x);
  dy_ = write("dy.npy", dy);
  gamma_ = write("gamma.npy", gamma);
  std::vector<double> y(rows * C), mean(rows), rstd(rows), dx(rows * C), dg(C), db(C);
  reference::layernorm_forward_f64(x.data<double>(), gamma.data<double>(), nullptr, rows, C, 1e-300,
                                   y.data(), mean.data(), rstd.data());
  reference::layernorm_backward_f64(x.data<double>(), dy.data<double>(), gamma.data<double>(),
                                    mean.data(), rstd.data(), rows, C, dx.data(), dg.data(),
                                    db.data());
  const auto expect_file = [&](const fs::path& path, const std::vector<double>& want) {
    EXPECT_NE(slurp(path).find("'descr': '<f8'"), std::string::npos) << path;
    Tensor t;
    ASSERT_TRUE(npy_read(path.string(), DType::kF64, &t).ok()) << path;
    ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << path;
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.get(i), want[i]) << path << " " << i;
  };
  // eps 1e-300 is a normal f64 (and far below any f32).
  const std::string common = " --x " + x_ + " --gamma " + gamma_ + " --eps 1e-300 --dtype f64";
  const fs::path fwd = dir_ / "fwd";
  CliRun r = run("forward" + common + " --backend reference --out " + fwd.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  expect_file(fwd / "y.npy", y);
  expect_file(fwd / "mean.npy", mean);
  expect_file(fwd / "rstd.npy", rstd);
  for (const std::string& stats : {std::string(), " --mean " + (fwd / "mean.npy").string() +
                                                      " --rstd " + (fwd / "rstd.npy").string()}) {
    const fs::path bwd = dir_ / (stats.empty() ? "bwd" : "bwd_stats");
    r = run("backward" + common + " --dy " + dy_ + stats + " --backend reference --out " +
            bwd.string());
    ASSERT_EQ(r.rc, 0) << r.err;
    expect_file(bwd / "dx.npy", dx);
    expect_file(bwd / "dgamma.npy", dg);
    expect_file(bwd / "dbeta.npy", db);
  }
  expect_bad_input("forward" + common + " --backend cpu",
                   "--dtype f64 runs on the reference backend only (got --backend cpu)");
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --eps 1e-300 --backend reference",
                   "eps 1e-300 is below 1.1754943508222875e-38, the smallest normal f32 number");
}

TEST_F(Cli, UnbuiltBackendIsBadInput) {
  if (backend_built(Backend::kCuda)) GTEST_SKIP() << "the CUDA backend is built into this binary";
  write_report_inputs();
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --backend cuda",
                   "backend 'cuda' is not built");
}

}  // namespace
}  // namespace tilenorm
