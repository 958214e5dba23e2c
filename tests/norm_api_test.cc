// Validation of the family's new arguments (residual, h, dh_in, rrms) through the public API:
// every bad one is InvalidArgument naming the argument and the values, on every backend (the
// checks run before dispatch), and no output is written.
#include <cmath>
#include <string>

#include "test_util.h"
#include "tilenorm/rmsnorm.h"

namespace tilenorm {
namespace {

using testing::random_tensor;

void expect_invalid(const Status& s, const std::string& message) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find(message), std::string::npos) << s.message();
}

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

class NormApi : public ::testing::TestWithParam<Backend> {};

TEST_P(NormApi, LayerNormResidualHAndDhIn) {
  const Backend b = GetParam();
  Tensors t;
  t.y.fill(NAN);
  auto fwd = [&](ConstTensorView residual, TensorView h) {
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

  auto bwd = [&](ConstTensorView dh_in) {
    return layernorm_backward(
        b, {t.x.cview(), t.dy.cview(), t.g.cview(), t.stat.cview(), t.stat.cview(), dh_in},
        {t.dx.view(), t.dg.view(), t.db.view()});
  };
  expect_invalid(bwd(t.x4.cview()), "dh_in has shape [3, 4], expected [3, 5]");
  expect_invalid(bwd(t.x_bf16.cview()), "dh_in has dtype bf16, expected f32");
}

TEST_P(NormApi, RmsNormRrmsResidualAndDhIn) {
  const Backend b = GetParam();
  Tensors t;
  auto fwd = [&](ConstTensorView residual, TensorView rrms, TensorView h) {
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

  auto bwd = [&](ConstTensorView rrms, ConstTensorView dh_in) {
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

INSTANTIATE_TEST_SUITE_P(Backends, NormApi,
                         ::testing::Values(Backend::kReference, Backend::kCpu, Backend::kTile),
                         [](const auto& info) { return std::string(backend_name(info.param)); });

}  // namespace
}  // namespace tilenorm
