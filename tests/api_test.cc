// The public API's validation: each bad input is an InvalidArgument naming the tensor and values.
#include "test_util.h"

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
  expect_invalid(layernorm_forward(Backend::kCpu, a, f.out()), "only the reference backend");
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
