// The public API's validation: each bad input is an InvalidArgument naming the tensor and values.
#include <fmt/format.h>

#include <cfloat>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "reference/norm.h"
#include "test_util.h"
#include "tilenorm/cuda.h"
#include "tilenorm/rmsnorm.h"

namespace tilenorm {
namespace {

using testing::constant_tensor;
using testing::random_tensor;

struct Fwd {
  Tensor x = random_tensor(Shape{4, 8}, DType::kF32, 1);
  Tensor gamma = random_tensor(Shape{8}, DType::kF32, 2);
  Tensor y{Shape{4, 8}, DType::kF32}, mean{Shape{4}, DType::kF32}, rstd{Shape{4}, DType::kF32};
  LayerNormForwardArgs args() { return {x.cview(), gamma.cview(), {}, 1e-5}; }
  LayerNormForwardOutputs out() { return {y.view(), mean.view(), rstd.view()}; }
};

void expect_invalid(const Status& s, const std::string& needle) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

TEST(LayerNormApi, ForwardRejectsBadArguments) {
  Fwd f;
  ASSERT_TRUE(layernorm_forward(Backend::kReference, f.args(), f.out()).ok());
  auto a = f.args();
  Tensor g7(Shape{7}, DType::kF32);
  a.gamma = g7.cview();
  expect_invalid(layernorm_forward(Backend::kReference, a, f.out()),
                 "gamma has shape [7], expected [8]");
  a = f.args();
  a.gamma = {};
  expect_invalid(layernorm_forward(Backend::kReference, a, f.out()), "gamma is missing");
  for (double eps : {0.0, -1e-5, std::nan(""), double{INFINITY}}) {
    a = f.args();
    a.eps = eps;
    expect_invalid(layernorm_forward(Backend::kReference, a, f.out()),
                   "eps must be finite and > 0");
  }
  Tensor empty(Shape{0, 8}, DType::kF32), c0(Shape{4, 0}, DType::kF32);
  a = f.args();
  a.x = empty.cview();
  expect_invalid(layernorm_forward(Backend::kReference, a, f.out()), "x is empty (shape [0, 8])");
  a.x = c0.cview();
  expect_invalid(layernorm_forward(Backend::kReference, a, f.out()), "x has C = 0");
  Tensor gb(Shape{8}, DType::kBF16);
  a = f.args();
  a.gamma = gb.cview();
  expect_invalid(layernorm_forward(Backend::kCpu, a, f.out()),
                 "gamma has dtype bf16, expected f32");
  Tensor mean5(Shape{5}, DType::kF32);
  auto o = f.out();
  o.mean = mean5.view();
  expect_invalid(layernorm_forward(Backend::kReference, f.args(), o),
                 "mean has shape [5], expected [4]");
  Tensor x64 = f.x.to(DType::kF64);
  a = f.args();
  a.x = x64.cview();
  expect_invalid(layernorm_forward(Backend::kTile, a, f.out()),
                 "only the reference and cpu backends");
}

TEST(LayerNormApi, BackwardRejectsBadArguments) {
  Tensor x = random_tensor(Shape{2, 3, 8}, DType::kF32, 1),
         dy = random_tensor(Shape{2, 3, 8}, DType::kF32, 2);
  Tensor gamma = random_tensor(Shape{8}, DType::kF32, 3);
  Tensor mean(Shape{2, 3}, DType::kF32), rstd = constant_tensor(Shape{2, 3}, DType::kF32, 1);
  Tensor dy_bad(Shape{2, 4, 8}, DType::kF32), mean_bad(Shape{6}, DType::kF32);
  LayerNormBackwardResult r;
  const LayerNormBackwardArgs good{x.cview(), dy.cview(), gamma.cview(), mean.cview(),
                                   rstd.cview()};
  ASSERT_TRUE(layernorm_backward(Backend::kReference, good, &r).ok());
  auto a = good;
  a.dy = dy_bad.cview();
  expect_invalid(layernorm_backward(Backend::kReference, a, &r),
                 "dy has shape [2, 4, 8], expected [2, 3, 8]");
  a = good;
  a.rstd = mean_bad.cview();
  expect_invalid(layernorm_backward(Backend::kReference, a, &r),
                 "rstd has shape [6], expected [2, 3]");
  a = good;
  a.mean = {};
  expect_invalid(layernorm_backward(Backend::kReference, a, &r), "mean is missing");
}

TEST(LayerNormApi, BackendNamesRoundTrip) {
  for (Backend b : all_backends()) EXPECT_EQ(parse_backend(backend_name(b)), b);
  EXPECT_FALSE(parse_backend("gpu").has_value());
  EXPECT_TRUE(backend_built(Backend::kCpu));
  EXPECT_TRUE(backend_built(Backend::kTile));
}

TEST(LayerNormApi, CudaNotBuiltIsUnsupported) {
  if (backend_built(Backend::kCuda)) GTEST_SKIP() << "the CUDA backend is built into this binary";
  Fwd f;
  const Status s = layernorm_forward(Backend::kCuda, f.args(), f.out());
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("backend 'cuda' is not built"), std::string::npos) << s.message();
}

// f64 data on the reference backend stays f64 end to end: on x = 1e4 + noise, rounding x to f32
// first moves the mean by up to ulp(1e4)/2 ~ 5e-4, which the comparison below would see.
TEST(LayerNormApi, ReferenceComputesF64DataInF64) {
  const int64_t rows = 6, C = 50;
  Tensor x = random_tensor(Shape{rows, C}, DType::kF64, 1, -1, 1);
  for (int64_t i = 0; i < x.numel(); ++i) x.set(i, 1e4 + x.get(i));
  const Tensor dy = random_tensor(Shape{rows, C}, DType::kF64, 2);
  const Tensor gamma = random_tensor(Shape{C}, DType::kF64, 3, 0.5, 1.5);
  const Tensor beta = random_tensor(Shape{C}, DType::kF64, 4);
  ASSERT_NE(x.to(DType::kF32).to(DType::kF64).get(0), x.get(0));  // f32 would round it

  LayerNormForwardResult f;
  ASSERT_TRUE(
      layernorm_forward(Backend::kReference, {x.cview(), gamma.cview(), beta.cview(), 1e-5}, &f)
          .ok());
  std::vector<double> y(rows * C), mean(rows), rstd(rows);
  reference::layernorm_forward_f64(x.data<double>(), gamma.data<double>(), beta.data<double>(),
                                   rows, C, 1e-5, y.data(), mean.data(), rstd.data());
  ASSERT_EQ(f.y.dtype(), DType::kF64);
  ASSERT_EQ(f.mean.dtype(), DType::kF64);
  ASSERT_EQ(f.rstd.dtype(), DType::kF64);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(f.mean.get(r), mean[r]);
    EXPECT_EQ(f.rstd.get(r), rstd[r]);
  }
  for (int64_t i = 0; i < rows * C; ++i) ASSERT_EQ(f.y.get(i), y[i]) << i;

  LayerNormBackwardResult b;
  ASSERT_TRUE(
      layernorm_backward(Backend::kReference,
                         {x.cview(), dy.cview(), gamma.cview(), f.mean.cview(), f.rstd.cview()}, &b)
          .ok());
  std::vector<double> dx(rows * C), dgamma(C), dbeta(C);
  reference::layernorm_backward_f64(x.data<double>(), dy.data<double>(), gamma.data<double>(),
                                    mean.data(), rstd.data(), rows, C, dx.data(), dgamma.data(),
                                    dbeta.data());
  ASSERT_EQ(b.dgamma.dtype(), DType::kF64);
  for (int64_t i = 0; i < rows * C; ++i) ASSERT_EQ(b.dx.get(i), dx[i]) << i;
  for (int64_t i = 0; i < C; ++i) {
    EXPECT_EQ(b.dgamma.get(i), dgamma[i]);
    EXPECT_EQ(b.dbeta.get(i), dbeta[i]);
  }

  // Statistics and parameter gradients take the dtype of the data: f64 here, f32 for f32 data.
  Tensor y64(x.shape(), DType::kF64), s32(Shape{rows}, DType::kF32), s64(Shape{rows}, DType::kF64);
  expect_invalid(layernorm_forward(Backend::kReference, {x.cview(), gamma.cview(), {}, 1e-5},
                                   LayerNormForwardOutputs{
                                       .y = y64.view(), .mean = s32.view(), .rstd = s64.view()}),
                 "mean has dtype f32, expected f64");
  const Tensor x32 = x.to(DType::kF32), g32 = gamma.to(DType::kF32);
  Tensor y32(x.shape(), DType::kF32);
  expect_invalid(layernorm_forward(Backend::kReference, {x32.cview(), g32.cview(), {}, 1e-5},
                                   LayerNormForwardOutputs{
                                       .y = y32.view(), .mean = s32.view(), .rstd = s64.view()}),
                 "rstd has dtype f64, expected f32");
  {
    LayerNormForwardResult r;
    expect_invalid(layernorm_forward(Backend::kTile, {x.cview(), gamma.cview(), {}, 1e-5}, &r),
                   "x has dtype f64, which only the reference and cpu backends accept (backend "
                   "'tile'");
  }
}

// Runs on every backend; one not built into this binary is skipped.
class LayerNormApiBackends : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (const std::string why = testing::backend_unavailable(GetParam()); !why.empty())
      GTEST_SKIP() << why;
  }
};

// Shapes no tensor can have are rejected before a backend reads a byte: every view below points
// into a 64-float buffer, which any backend that got the call would read or write past.
TEST_P(LayerNormApiBackends, RejectsNegativeAndOverflowingDims) {
  constexpr int64_t k32 = int64_t{1} << 32, k60 = int64_t{1} << 60, k62 = int64_t{1} << 62;
  const struct {
    Shape x;
    const char* message;
  } cases[] = {
      {{-1, 8}, "x has a negative dim (shape [-1, 8])"},
      {{4, -8}, "x has a negative dim (shape [4, -8])"},
      {{-2, -4}, "x has a negative dim (shape [-2, -4])"},  // a positive product
      {{0, -8}, "x has a negative dim (shape [0, -8])"},
      {{k32, k32, 8}, "x has shape [4294967296, 4294967296, 8], whose size in bytes overflows"},
      {{3, k62, 8}, "x has shape [3, 4611686018427387904, 8], whose size in bytes overflows"},
      {{k60, 2}, "x has shape [1152921504606846976, 2], whose size in bytes overflows"},
  };
  alignas(64) float buf[64] = {};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.x.to_string());
    const DType dt = DType::kF32;
    const Shape cs{c.x.cols()}, stats = c.x.leading();
    const ConstTensorView x{buf, c.x, dt}, gamma{buf, cs, dt}, mean{buf, stats, dt};
    const TensorView y{buf, c.x, dt}, stat_out{buf, stats, dt}, param_out{buf, cs, dt};
    expect_invalid(layernorm_forward(GetParam(), {x, gamma, {}, 1e-5}, {y, stat_out, stat_out}),
                   c.message);
    expect_invalid(
        layernorm_backward(GetParam(), {x, x, gamma, mean, mean}, {y, param_out, param_out}),
        c.message);
    LayerNormForwardResult fr;
    expect_invalid(layernorm_forward(GetParam(), {x, gamma, {}, 1e-5}, &fr), c.message);
    LayerNormBackwardResult br;
    expect_invalid(layernorm_backward(GetParam(), {x, x, gamma, mean, mean}, &br), c.message);
  }
}

// eps must be a positive normal number of the compute dtype: f32 for f32 and bf16 data, f64 for
// f64 data (reference and cpu); accepted exactly at the limits, rejected one ulp beyond them.
TEST_P(LayerNormApiBackends, EpsMustBeANormalNumberOfTheComputeDtype) {
  std::vector<DType> dtypes{DType::kF32, DType::kBF16};
  if (GetParam() == Backend::kReference || GetParam() == Backend::kCpu)
    dtypes.push_back(DType::kF64);
  for (DType dt : dtypes) {
    SCOPED_TRACE(dtype_name(dt));
    const bool f64 = dt == DType::kF64;
    const double lo = f64 ? DBL_MIN : FLT_MIN, hi = f64 ? DBL_MAX : FLT_MAX;
    const Tensor x = random_tensor(Shape{4, 8}, dt, 1), gamma = random_tensor(Shape{8}, dt, 2);
    const auto run = [&](double eps) {
      LayerNormForwardResult r;
      return layernorm_forward(GetParam(), {x.cview(), gamma.cview(), {}, eps}, &r);
    };
    EXPECT_TRUE(run(lo).ok()) << run(lo).to_string();
    const std::string name = f64 ? "f64" : "f32";
    expect_invalid(run(std::nextafter(lo, 0.0)),
                   fmt::format("eps {} is below {}, the smallest normal {} number",
                               std::nextafter(lo, 0.0), lo, name));
    if (!f64) {
      EXPECT_TRUE(run(hi).ok()) << run(hi).to_string();
      expect_invalid(run(1e-300), fmt::format("eps 1e-300 is below {}", lo));
      expect_invalid(run(std::nextafter(hi, INFINITY)),
                     fmt::format("eps {} is above {}, the largest f32 number",
                                 std::nextafter(hi, INFINITY), hi));
    } else {
      EXPECT_TRUE(run(1e-300).ok());
      EXPECT_TRUE(run(hi).ok());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, LayerNormApiBackends, ::testing::ValuesIn(all_backends()),
                         [](const auto& info) { return std::string(backend_name(info.param)); });

// NaN/Inf inside the data propagate (as in PyTorch) instead of being rejected.
TEST(LayerNormApi, NanInDataPropagates) {
  Fwd f;
  f.x.set(9, std::nan(""));  // row 1
  ASSERT_TRUE(layernorm_forward(Backend::kReference, f.args(), f.out()).ok());
  EXPECT_TRUE(std::isnan(f.mean.get(1)));
  EXPECT_TRUE(std::isnan(f.y.get(8)));
  EXPECT_FALSE(std::isnan(f.mean.get(0)));
  EXPECT_FALSE(std::isnan(f.y.get(0)));
}

}  // namespace
}  // namespace tilenorm

namespace tilenorm {
namespace {

// RMSNorm on the reference, exactly: rows (3, 4) and (-1, 1) at eps 0.5 give
// rrms = 1/sqrt(25/2 + 1/2) and 1/sqrt(1 + 1/2); y = x * rrms * gamma. With a residual,
// h = x + residual is written and normalized; the backward adds dh_in to dx.
TEST(RmsNormApi, ReferenceMatchesTheFormulaAndTheResidualAdd) {
  Tensor x(Shape{2, 2}, DType::kF64), gamma(Shape{2}, DType::kF64), res(Shape{2, 2}, DType::kF64);
  const double xv[] = {3, 4, -1, 1}, gv[] = {2, -1};
  for (int i = 0; i < 4; ++i) x.set(i, xv[i] - 1), res.set(i, 1);
  for (int i = 0; i < 2; ++i) gamma.set(i, gv[i]);
  RmsNormForwardResult f;
  ASSERT_TRUE(
      rmsnorm_forward(Backend::kReference, {x.cview(), gamma.cview(), 0.5, res.cview()}, &f).ok());
  const double rrms[] = {1 / std::sqrt(13.0), 1 / std::sqrt(1.5)};
  for (int r = 0; r < 2; ++r) EXPECT_EQ(f.rrms.get(r), rrms[r]) << r;
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(f.h.get(i), xv[i]) << i;
    EXPECT_EQ(f.y.get(i), xv[i] * rrms[i / 2] * gv[i % 2]) << i;
  }
  // Backward with dy = 0 leaves dx = dh_in exactly and dgamma = 0.
  Tensor dy(Shape{2, 2}, DType::kF64), dh(Shape{2, 2}, DType::kF64);
  for (int i = 0; i < 4; ++i) dh.set(i, 0.25 * i);
  RmsNormBackwardResult b;
  ASSERT_TRUE(rmsnorm_backward(Backend::kReference,
                               {f.h.cview(), dy.cview(), gamma.cview(), f.rrms.cview(), dh.cview()},
                               &b)
                  .ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.dx.get(i), 0.25 * i) << i;
  for (int i = 0; i < 2; ++i) EXPECT_EQ(b.dgamma.get(i), 0.0) << i;
}

TEST(RmsNormApi, ResidualAndHGoTogether) {
  Tensor x = random_tensor(Shape{3, 5}, DType::kF32, 1),
         g = random_tensor(Shape{5}, DType::kF32, 2);
  Tensor y(Shape{3, 5}, DType::kF32), rrms(Shape{3}, DType::kF32), h(Shape{3, 5}, DType::kF32);
  expect_invalid(rmsnorm_forward(Backend::kReference, {x.cview(), g.cview(), 1e-5, x.cview()},
                                 {y.view(), rrms.view(), {}}),
                 "h is missing");
  expect_invalid(rmsnorm_forward(Backend::kReference, {x.cview(), g.cview(), 1e-5, {}},
                                 {y.view(), rrms.view(), h.view()}),
                 "h must not be given without a residual");
  Tensor r4(Shape{3, 4}, DType::kF32);
  expect_invalid(rmsnorm_forward(Backend::kReference, {x.cview(), g.cview(), 1e-5, r4.cview()},
                                 {y.view(), rrms.view(), h.view()}),
                 "residual has shape [3, 4], expected [3, 5]");
  Tensor rrms_bad(Shape{4}, DType::kF32);
  expect_invalid(rmsnorm_forward(Backend::kReference, {x.cview(), g.cview(), 1e-5, {}},
                                 {y.view(), rrms_bad.view(), {}}),
                 "rrms has shape [4], expected [3]");
}

}  // namespace
}  // namespace tilenorm

namespace tilenorm {
namespace {

// No exception crosses the public API: the owning forms' outputs for a valid shape far beyond
// memory (2^40 rows of 8 f32: 32 TiB) fail to allocate, which is ResourceExhausted, not a
// std::bad_alloc. x's data is never read: the allocation fails first.
TEST(NormApi, OutputsTooLargeForMemoryAreResourceExhausted) {
  float one = 1;
  const ConstTensorView huge{&one, Shape{int64_t{1} << 40, 8}, DType::kF32};
  const Tensor gamma = constant_tensor(Shape{8}, DType::kF32, 1);
  for (Backend b : {Backend::kReference, Backend::kCpu, Backend::kTile}) {
    SCOPED_TRACE(backend_name(b));
    LayerNormForwardResult lf;
    Status s = layernorm_forward(b, {huge, gamma.cview(), {}, 1e-5}, &lf);
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.to_string();
    EXPECT_EQ(s.message(), "out of memory");
    RmsNormBackwardResult rb;
    s = rmsnorm_backward(b, {huge, huge, gamma.cview(), {}, {}}, &rb);
    EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.to_string();
  }
}

}  // namespace
}  // namespace tilenorm

// Validation of the family's new arguments (residual, h, dh_in, rrms) through the public API:
// every bad one is InvalidArgument naming the argument and the values, on every backend (the
// checks run before dispatch), and no output is written.
namespace tilenorm {
namespace {

struct Tensors {
  Tensor x = random_tensor(Shape{3, 5}, DType::kF32, 1),
         dy = random_tensor(Shape{3, 5}, DType::kF32, 2),
         g = random_tensor(Shape{5}, DType::kF32, 3),
         stat = random_tensor(Shape{3}, DType::kF32, 4, 1, 2), y = Tensor(Shape{3, 5}, DType::kF32),
         h = Tensor(Shape{3, 5}, DType::kF32), dx = Tensor(Shape{3, 5}, DType::kF32),
         mean = Tensor(Shape{3}, DType::kF32), rstd = Tensor(Shape{3}, DType::kF32),
         dg = Tensor(Shape{5}, DType::kF32), db = Tensor(Shape{5}, DType::kF32);
  Tensor x4 = Tensor(Shape{3, 4}, DType::kF32), x_bf16 = Tensor(Shape{3, 5}, DType::kBF16),
         stat_f64 = Tensor(Shape{3}, DType::kF64), stat4 = Tensor(Shape{4}, DType::kF32);
};

class NormApiBackends : public ::testing::TestWithParam<Backend> {};

TEST_P(NormApiBackends, LayerNormResidualHAndDhIn) {
  const Backend b = GetParam();
  Tensors t;
  t.y.fill(NAN);
  auto fwd = [&](const ConstTensorView& residual, const TensorView& h) {
    return layernorm_forward(b, {t.x.cview(), t.g.cview(), {}, 1e-5, residual},
                             {t.y.view(), t.mean.view(), t.rstd.view(), h});
  };
  expect_invalid(fwd(t.x4.cview(), t.h.view()), "residual has shape [3, 4], expected [3, 5]");
  expect_invalid(fwd(t.x_bf16.cview(), t.h.view()), "residual has dtype bf16, expected f32");
  expect_invalid(fwd(t.x.cview(), {}), "h is missing");
  expect_invalid(fwd(t.x.cview(), t.x4.view()), "h has shape [3, 4], expected [3, 5]");
  expect_invalid(fwd(t.x.cview(), t.x_bf16.view()), "h has dtype bf16, expected f32");
  expect_invalid(fwd({}, t.h.view()), "h must not be given without a residual");
  EXPECT_TRUE(std::isnan(t.y.get(0))) << "a rejected call wrote y";

  auto bwd = [&](const ConstTensorView& dh_in) {
    return layernorm_backward(
        b, {t.x.cview(), t.dy.cview(), t.g.cview(), t.stat.cview(), t.stat.cview(), dh_in},
        {t.dx.view(), t.dg.view(), t.db.view()});
  };
  expect_invalid(bwd(t.x4.cview()), "dh_in has shape [3, 4], expected [3, 5]");
  expect_invalid(bwd(t.x_bf16.cview()), "dh_in has dtype bf16, expected f32");
}

TEST_P(NormApiBackends, RmsNormRrmsResidualAndDhIn) {
  const Backend b = GetParam();
  Tensors t;
  auto fwd = [&](const ConstTensorView& residual, const TensorView& rrms, const TensorView& h) {
    return rmsnorm_forward(b, {t.x.cview(), t.g.cview(), 1e-5, residual}, {t.y.view(), rrms, h});
  };
  expect_invalid(fwd({}, {}, {}), "rrms is missing");
  expect_invalid(fwd({}, t.stat4.view(), {}), "rrms has shape [4], expected [3]");
  expect_invalid(fwd({}, t.stat_f64.view(), {}), "rrms has dtype f64, expected f32");
  expect_invalid(fwd(t.x_bf16.cview(), t.rstd.view(), t.h.view()),
                 "residual has dtype bf16, expected f32");
  expect_invalid(fwd(t.x.cview(), t.rstd.view(), t.x4.view()),
                 "h has shape [3, 4], expected [3, 5]");
  expect_invalid(
      rmsnorm_forward(b, {t.x.cview(), t.g.cview(), 0.0, {}}, {t.y.view(), t.rstd.view(), {}}),
      "eps");

  auto bwd = [&](const ConstTensorView& rrms, const ConstTensorView& dh_in) {
    return rmsnorm_backward(b, {t.x.cview(), t.dy.cview(), t.g.cview(), rrms, dh_in},
                            {t.dx.view(), t.dg.view()});
  };
  expect_invalid(bwd({}, {}), "rrms is missing");
  expect_invalid(bwd(t.stat4.cview(), {}), "rrms has shape [4], expected [3]");
  expect_invalid(bwd(t.stat.cview(), t.x4.cview()), "dh_in has shape [3, 4], expected [3, 5]");
  expect_invalid(bwd(t.stat.cview(), t.x_bf16.cview()), "dh_in has dtype bf16, expected f32");
  expect_invalid(rmsnorm_backward(b, {t.x.cview(), t.dy.cview(), t.g.cview(), t.stat.cview(), {}},
                                  {t.dx.view(), t.stat.view()}),
                 "dgamma has shape [3], expected [5]");
}

INSTANTIATE_TEST_SUITE_P(Backends, NormApiBackends,
                         ::testing::Values(Backend::kReference, Backend::kCpu, Backend::kTile),
                         [](const auto& info) { return std::string(backend_name(info.param)); });

// The CUDA device-memory entry validates as the host API does: each bad call below gets the host
// API's status, message included, before any device memory is touched (so it runs without a
// GPU; the pointers are host memory that neither side reads).
struct CallShapes {
  Norm norm = Norm::kLayerNorm;
  std::optional<Shape> x = Shape{4, 8}, residual, gamma = Shape{8}, beta, y = Shape{4, 8},
                       mean = Shape{4}, rstd = Shape{4}, h;
  std::optional<Shape> dy = Shape{4, 8}, dh_in, dx = Shape{4, 8}, dgamma = Shape{8},
                       dbeta = Shape{8};
  double eps = 1e-5;
};

float g_memory[64];
ConstTensorView host_in(const std::optional<Shape>& s) {
  return s ? ConstTensorView{g_memory, *s, DType::kF32} : ConstTensorView{};
}
TensorView host_out(const std::optional<Shape>& s) {
  return s ? TensorView{g_memory, *s, DType::kF32} : TensorView{};
}
CudaConstTensor device_in(const std::optional<Shape>& s) {
  return s ? CudaConstTensor{g_memory, *s} : CudaConstTensor{};
}
CudaTensor device_out(const std::optional<Shape>& s) {
  return s ? CudaTensor{g_memory, *s} : CudaTensor{};
}

Status host_forward(const CallShapes& c) {
  if (c.norm == Norm::kRmsNorm)
    return rmsnorm_forward(Backend::kReference,
                           {.x = host_in(c.x),
                            .gamma = host_in(c.gamma),
                            .eps = c.eps,
                            .residual = host_in(c.residual)},
                           {.y = host_out(c.y), .rrms = host_out(c.rstd), .h = host_out(c.h)});
  return layernorm_forward(
      Backend::kReference,
      {.x = host_in(c.x),
       .gamma = host_in(c.gamma),
       .beta = host_in(c.beta),
       .eps = c.eps,
       .residual = host_in(c.residual)},
      {.y = host_out(c.y), .mean = host_out(c.mean), .rstd = host_out(c.rstd), .h = host_out(c.h)});
}

Status device_forward(const CallShapes& c, CudaDType dtype = CudaDType::kF32) {
  CudaContext context;
  return cuda_norm_forward(context,
                           {.norm = c.norm,
                            .dtype = dtype,
                            .x = device_in(c.x),
                            .residual = device_in(c.residual),
                            .gamma = device_in(c.gamma),
                            .beta = device_in(c.beta),
                            .eps = c.eps},
                           {.y = device_out(c.y),
                            .mean = device_out(c.mean),
                            .rstd = device_out(c.rstd),
                            .h = device_out(c.h)},
                           nullptr);
}

Status host_backward(const CallShapes& c) {
  if (c.norm == Norm::kRmsNorm)
    return rmsnorm_backward(Backend::kReference,
                            {.x = host_in(c.x),
                             .dy = host_in(c.dy),
                             .gamma = host_in(c.gamma),
                             .rrms = host_in(c.rstd),
                             .dh_in = host_in(c.dh_in)},
                            {.dx = host_out(c.dx), .dgamma = host_out(c.dgamma)});
  return layernorm_backward(
      Backend::kReference,
      {.x = host_in(c.x),
       .dy = host_in(c.dy),
       .gamma = host_in(c.gamma),
       .mean = host_in(c.mean),
       .rstd = host_in(c.rstd),
       .dh_in = host_in(c.dh_in)},
      {.dx = host_out(c.dx), .dgamma = host_out(c.dgamma), .dbeta = host_out(c.dbeta)});
}

Status device_backward(const CallShapes& c) {
  CudaContext context;
  return cuda_norm_backward(
      context,
      {.norm = c.norm,
       .dtype = CudaDType::kF32,
       .x = device_in(c.x),
       .dy = device_in(c.dy),
       .gamma = device_in(c.gamma),
       .mean = device_in(c.mean),
       .rstd = device_in(c.rstd),
       .dh_in = device_in(c.dh_in)},
      {.dx = device_out(c.dx), .dgamma = device_out(c.dgamma), .dbeta = device_out(c.dbeta)},
      nullptr);
}

struct BadCall {
  const char* message;  // what the host API says, in full
  CallShapes shapes;
};

CallShapes rms() {
  CallShapes c;
  c.norm = Norm::kRmsNorm;
  c.mean.reset();
  c.dbeta.reset();
  return c;
}

template <typename Edit>
CallShapes edited(CallShapes c, Edit edit) {
  edit(c);
  return c;
}

TEST(CudaDeviceApi, RejectsWhatTheHostApiRejectsWithItsMessages) {
  const std::vector<BadCall> forward = {
      {"gamma has shape [7], expected [8]", edited({}, [](auto& c) { c.gamma = Shape{7}; })},
      {"gamma is missing", edited({}, [](auto& c) { c.gamma.reset(); })},
      {"x is missing", edited({}, [](auto& c) { c.x.reset(); })},
      {"x is empty (shape [0, 8])", edited({},
                                           [](auto& c) {
                                             c.x = Shape{0, 8};
                                           })},
      {"x has C = 0 (shape [4, 0]): nothing to normalize", edited({},
                                                                  [](auto& c) {
                                                                    c.x = Shape{4, 0};
                                                                  })},
      {"x has a negative dim (shape [-1, 8])", edited({},
                                                      [](auto& c) {
                                                        c.x = Shape{-1, 8};
                                                      })},
      {"x must have rank >= 1, got a scalar", edited({}, [](auto& c) { c.x = Shape{}; })},
      {"beta has shape [8, 1], expected [8]", edited({},
                                                     [](auto& c) {
                                                       c.beta = Shape{8, 1};
                                                     })},
      {"residual has shape [4, 7], expected [4, 8]", edited({},
                                                            [](auto& c) {
                                                              c.residual = Shape{4, 7};
                                                            })},
      {"h must not be given without a residual", edited({},
                                                        [](auto& c) {
                                                          c.h = Shape{4, 8};
                                                        })},
      {"h is missing", edited({},
                              [](auto& c) {
                                c.residual = Shape{4, 8};
                              })},
      {"y has shape [8, 4], expected [4, 8]", edited({},
                                                     [](auto& c) {
                                                       c.y = Shape{8, 4};
                                                     })},
      {"mean has shape [5], expected [4]", edited({}, [](auto& c) { c.mean = Shape{5}; })},
      {"rstd is missing", edited({}, [](auto& c) { c.rstd.reset(); })},
      {"rrms has shape [4, 1], expected [4]", edited(rms(),
                                                     [](auto& c) {
                                                       c.rstd = Shape{4, 1};
                                                     })},
      {"eps must be finite and > 0, got 0", edited({}, [](auto& c) { c.eps = 0; })},
  };
  for (const BadCall& bad : forward) {
    const Status host = host_forward(bad.shapes), device = device_forward(bad.shapes);
    EXPECT_EQ(host.code(), StatusCode::kInvalidArgument) << bad.message;
    EXPECT_EQ(host.message(), bad.message);
    EXPECT_EQ(device.code(), host.code()) << bad.message;
    EXPECT_EQ(device.message(), host.message());
  }
  const std::vector<BadCall> backward = {
      {"dy has shape [4, 9], expected [4, 8]", edited({},
                                                      [](auto& c) {
                                                        c.dy = Shape{4, 9};
                                                      })},
      {"mean is missing", edited({}, [](auto& c) { c.mean.reset(); })},
      {"rstd has shape [6], expected [4]", edited({}, [](auto& c) { c.rstd = Shape{6}; })},
      {"dh_in has shape [4], expected [4, 8]", edited({}, [](auto& c) { c.dh_in = Shape{4}; })},
      {"dx is missing", edited({}, [](auto& c) { c.dx.reset(); })},
      {"dgamma has shape [4], expected [8]", edited({}, [](auto& c) { c.dgamma = Shape{4}; })},
      {"dbeta has shape [9], expected [8]", edited({}, [](auto& c) { c.dbeta = Shape{9}; })},
      {"rrms is missing", edited(rms(), [](auto& c) { c.rstd.reset(); })},
  };
  for (const BadCall& bad : backward) {
    const Status host = host_backward(bad.shapes), device = device_backward(bad.shapes);
    EXPECT_EQ(host.code(), StatusCode::kInvalidArgument) << bad.message;
    EXPECT_EQ(host.message(), bad.message);
    EXPECT_EQ(device.code(), host.code()) << bad.message;
    EXPECT_EQ(device.message(), host.message());
  }
}

// Messages name the call's own element type; f16 data is normalized in f32, as bf16 is.
TEST(CudaDeviceApi, NamesItsOwnDTypes) {
  EXPECT_STREQ(cuda_dtype_name(CudaDType::kF32), "f32");
  EXPECT_STREQ(cuda_dtype_name(CudaDType::kBF16), "bf16");
  EXPECT_STREQ(cuda_dtype_name(CudaDType::kF16), "f16");
  const Status s = device_forward(edited({}, [](auto& c) { c.eps = 1e-40; }), CudaDType::kF16);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("the smallest normal f32 number (f16 data is normalized in f32)"),
            std::string::npos)
      << s.message();
}

// Without the backend built or a usable device, a valid call says so, as cuda_available() does.
TEST(CudaDeviceApi, ValidCallWithoutADeviceIsUnsupported) {
  const Status available = cuda_available();
  if (available.ok()) GTEST_SKIP() << "a CUDA device is present (the arguments are host memory)";
  EXPECT_EQ(available.code(), StatusCode::kUnsupported) << available.to_string();
  EXPECT_NE(available.message().find("backend 'cuda'"), std::string::npos) << available.message();
  const Status forward = device_forward({});
  EXPECT_EQ(forward.code(), StatusCode::kUnsupported) << forward.to_string();
  EXPECT_EQ(device_backward({}).code(), StatusCode::kUnsupported);
  if (!backend_built(Backend::kCuda)) EXPECT_EQ(forward.message(), available.message());
}

}  // namespace
}  // namespace tilenorm
