// `tilenorm forward` / `backward` across the norm family: --norm rmsnorm, --residual and
// --dresidual write the files named in README.md with the public API's values bit for bit, and
// their bad inputs are one-line errors with exit code 2 and no output.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/npy.h"
#include "test_util.h"
#include "tilenorm/rmsnorm.h"

namespace tilenorm {
namespace {

namespace fs = std::filesystem;
using testing::bitwise_equal;
using testing::CliRun;
using testing::random_tensor;

constexpr int kRows = 6, kC = 96;

class CliNorm : public ::testing::Test {
 protected:
  void SetUp() override {
    x_ = random_tensor(Shape{kRows, kC}, DType::kF32, 1);
    dy_ = random_tensor(Shape{kRows, kC}, DType::kF32, 2);
    gamma_ = random_tensor(Shape{kC}, DType::kF32, 3, 0.5, 1.5);
    beta_ = random_tensor(Shape{kC}, DType::kF32, 4);
    residual_ = random_tensor(Shape{kRows, kC}, DType::kF32, 5);
    dh_in_ = random_tensor(Shape{kRows, kC}, DType::kF32, 6);
    for (auto [name, t] : {std::pair{"x", &x_},
                           {"dy", &dy_},
                           {"gamma", &gamma_},
                           {"beta", &beta_},
                           {"residual", &residual_},
                           {"dh_in", &dh_in_}})
      EXPECT_TRUE(npy_write(file(name), t->cview()).ok());
  }

  std::string file(const std::string& name) const { return (dir_ / (name + ".npy")).string(); }

  CliRun run(const std::string& args) { return testing::run_cli(TILENORM_CLI, args, dir_); }

  // Runs `args --out DIR/<out>`, expects success and exactly the files `names` there.
  fs::path run_ok(const std::string& args, const std::string& out,
                  const std::vector<std::string>& names) {
    const fs::path d = dir_ / out;
    const CliRun r = run(args + " --threads 2 --out " + d.string());
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    std::vector<std::string> got;
    if (fs::is_directory(d))
      for (const auto& e : fs::directory_iterator(d)) got.push_back(e.path().stem().string());
    std::sort(got.begin(), got.end());
    std::vector<std::string> want = names;
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << args;
    return d;
  }

  static Tensor read(const fs::path& d, const std::string& name, DType dtype = DType::kF32) {
    Tensor t;
    EXPECT_TRUE(npy_read((d / (name + ".npy")).string(), dtype, &t).ok()) << name;
    return t;
  }

  void expect_bad_input(const std::string& args, const std::string& needle) {
    testing::expect_cli_bad_input(TILENORM_CLI, args, dir_, needle);
  }

  testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
  Tensor x_, dy_, gamma_, beta_, residual_, dh_in_;
  const NormOptions opt_{2, nullptr};
};

const char* const kBackends[] = {"reference", "cpu"};

TEST_F(CliNorm, RmsNormForwardAndBackwardEqualTheApi) {
  for (const char* name : kBackends) {
    SCOPED_TRACE(name);
    const Backend backend = *parse_backend(name);
    const std::string common = " --norm rmsnorm --backend " + std::string(name);
    RmsNormForwardResult f;
    ASSERT_TRUE(rmsnorm_forward(backend, {x_.cview(), gamma_.cview()}, &f, opt_).ok());
    const fs::path fwd = run_ok("forward --x " + file("x") + " --gamma " + file("gamma") + common,
                                std::string("fwd_") + name, {"y", "rrms"});
    EXPECT_TRUE(bitwise_equal(read(fwd, "y"), f.y));
    EXPECT_TRUE(bitwise_equal(read(fwd, "rrms"), f.rrms));

    RmsNormBackwardResult b;
    ASSERT_TRUE(rmsnorm_backward(backend, {x_.cview(), dy_.cview(), gamma_.cview(), f.rrms.cview()},
                                 &b, opt_)
                    .ok());
    const std::string bwd_args =
        "backward --x " + file("x") + " --dy " + file("dy") + " --gamma " + file("gamma") + common;
    // Without --rrms the same backend's forward computes it; with it, the saved one is used.
    for (const std::string& stats : {std::string(), " --rrms " + (fwd / "rrms.npy").string()}) {
      const fs::path bwd =
          run_ok(bwd_args + stats, std::string("bwd_") + name + (stats.empty() ? "" : "_rrms"),
                 {"dx", "dgamma"});
      EXPECT_TRUE(bitwise_equal(read(bwd, "dx"), b.dx)) << stats;
      EXPECT_TRUE(bitwise_equal(read(bwd, "dgamma"), b.dgamma)) << stats;
    }
  }
}

TEST_F(CliNorm, ResidualForwardWritesHAndYOfTheApi) {
  for (const char* name : kBackends) {
    const Backend backend = *parse_backend(name);
    for (const char* norm : {"layernorm", "rmsnorm"}) {
      SCOPED_TRACE(std::string(name) + " " + norm);
      const bool rms = std::string(norm) == "rmsnorm";
      Tensor y, h;
      std::vector<std::string> files = {"y", "h", "mean", "rstd"};
      if (rms) {
        RmsNormForwardResult f;
        ASSERT_TRUE(rmsnorm_forward(backend,
                                    {x_.cview(), gamma_.cview(), kDefaultEps, residual_.cview()},
                                    &f, opt_)
                        .ok());
        y = std::move(f.y);
        h = std::move(f.h);
        files = {"y", "h", "rrms"};
      } else {
        LayerNormForwardResult f;
        ASSERT_TRUE(layernorm_forward(
                        backend,
                        {x_.cview(), gamma_.cview(), beta_.cview(), kDefaultEps, residual_.cview()},
                        &f, opt_)
                        .ok());
        y = std::move(f.y);
        h = std::move(f.h);
      }
      const fs::path out = run_ok("forward --x " + file("x") + " --gamma " + file("gamma") +
                                      (rms ? "" : " --beta " + file("beta")) + " --residual " +
                                      file("residual") + " --norm " + norm + " --backend " + name,
                                  std::string(name) + "_" + norm, files);
      const Tensor got_h = read(out, "h");
      ASSERT_EQ(got_h.shape(), x_.shape());
      for (int64_t i = 0; i < x_.numel(); ++i)
        ASSERT_EQ(got_h.get(i), static_cast<double>(static_cast<float>(x_.get(i)) +
                                                    static_cast<float>(residual_.get(i))))
            << "h[" << i << "]";
      EXPECT_TRUE(bitwise_equal(got_h, h));
      EXPECT_TRUE(bitwise_equal(read(out, "y"), y));
    }
  }
}

TEST_F(CliNorm, BackwardWithDresidualEqualsTheApiWithDhIn) {
  for (const char* name : kBackends) {
    const Backend backend = *parse_backend(name);
    for (const char* norm : {"layernorm", "rmsnorm"}) {
      SCOPED_TRACE(std::string(name) + " " + norm);
      const bool rms = std::string(norm) == "rmsnorm";
      // x plays h here: the backward of a residual forward takes h as its x.
      Tensor dx, dgamma, dbeta;
      if (rms) {
        RmsNormForwardResult f;
        ASSERT_TRUE(rmsnorm_forward(backend, {x_.cview(), gamma_.cview()}, &f, opt_).ok());
        RmsNormBackwardResult b;
        ASSERT_TRUE(rmsnorm_backward(
                        backend,
                        {x_.cview(), dy_.cview(), gamma_.cview(), f.rrms.cview(), dh_in_.cview()},
                        &b, opt_)
                        .ok());
        dx = std::move(b.dx);
        dgamma = std::move(b.dgamma);
      } else {
        LayerNormForwardResult f;
        ASSERT_TRUE(layernorm_forward(backend, {x_.cview(), gamma_.cview()}, &f, opt_).ok());
        LayerNormBackwardResult b;
        ASSERT_TRUE(layernorm_backward(backend,
                                       {x_.cview(), dy_.cview(), gamma_.cview(), f.mean.cview(),
                                        f.rstd.cview(), dh_in_.cview()},
                                       &b, opt_)
                        .ok());
        dx = std::move(b.dx);
        dgamma = std::move(b.dgamma);
        dbeta = std::move(b.dbeta);
      }
      const fs::path out =
          run_ok("backward --x " + file("x") + " --dy " + file("dy") + " --gamma " + file("gamma") +
                     " --dresidual " + file("dh_in") + " --norm " + norm + " --backend " + name,
                 std::string(name) + "_" + norm,
                 rms ? std::vector<std::string>{"dx", "dgamma"}
                     : std::vector<std::string>{"dx", "dgamma", "dbeta"});
      EXPECT_TRUE(bitwise_equal(read(out, "dx"), dx));
      EXPECT_TRUE(bitwise_equal(read(out, "dgamma"), dgamma));
      if (!rms) {
        EXPECT_TRUE(bitwise_equal(read(out, "dbeta"), dbeta));
      }
    }
  }
}

TEST_F(CliNorm, JsonSummaryNamesTheNorm) {
  const CliRun r = run("forward --norm rmsnorm --json --x " + file("x") + " --gamma " +
                       file("gamma") + " --out " + (dir_ / "out").string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"norm\": \"rmsnorm\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"rrms\""), std::string::npos) << r.out;
}

TEST_F(CliNorm, BadInputsNameTheArgumentAndWriteNothing) {
  const Tensor narrow = random_tensor(Shape{kRows, kC - 1}, DType::kF32, 7);
  ASSERT_TRUE(npy_write(file("narrow"), narrow.cview()).ok());
  const std::string fwd =
      "forward --backend reference --x " + file("x") + " --gamma " + file("gamma");
  const std::string bwd = "backward --backend reference --x " + file("x") + " --dy " + file("dy") +
                          " --gamma " + file("gamma");
  expect_bad_input(fwd + " --norm rmsnorm --beta " + file("beta"),
                   "--beta '" + file("beta") + "' is not taken by --norm rmsnorm");
  expect_bad_input(bwd + " --rrms " + file("gamma"),
                   "--rrms '" + file("gamma") + "' is not taken by --norm layernorm");
  expect_bad_input(bwd + " --norm rmsnorm --mean " + file("gamma"),
                   "--mean/--rstd are not taken by --norm rmsnorm");
  expect_bad_input(fwd + " --norm groupnorm", "--norm 'groupnorm' is unknown");
  for (const char* norm : {"layernorm", "rmsnorm"}) {
    expect_bad_input(fwd + " --norm " + norm + " --residual " + file("narrow"),
                     "residual has shape [6, 95], expected [6, 96]");
    expect_bad_input(bwd + " --norm " + norm + " --dresidual " + file("narrow"),
                     "--dresidual: dh_in has shape [6, 95], expected [6, 96]");
  }
  expect_bad_input(fwd + " --residual " + (dir_ / "missing.npy").string(),
                   "--residual " + (dir_ / "missing.npy").string() + ": cannot open");
}

// The table's measurement takes seconds (the copy ceiling), so only the argument check runs here.
TEST_F(CliNorm, BenchUnknownNormIsBadInput) {
  const CliRun r = run("bench --impls tilenorm --shapes 4x64 --norm layernorm,groupnorm");
  if (r.err.find("TILENORM_BUILD_BENCHMARKS=OFF") != std::string::npos)
    GTEST_SKIP() << "built without bench/";
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(r.err,
            "tilenorm: error: --norm 'groupnorm' is unknown (choose layernorm or rmsnorm)\n");
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace tilenorm
