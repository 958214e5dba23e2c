// Every built backend at the edges of the contract (include/tilenorm/layernorm.h): eps at the
// limits of the compute dtype, rows and gradients holding NaN or Inf, and the report's constant
// inputs end to end (forward, then backward on the forward's own statistics).
#include <cfloat>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

namespace tilenorm {
namespace {

using testing::constant_tensor;
using testing::random_tensor;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class Edges : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (const std::string why = testing::backend_unavailable(GetParam()); !why.empty())
      GTEST_SKIP() << why;
  }
  Backend backend() const { return GetParam(); }
  // NaN as the backend stores it in `dt`: the tile machine's packer, like Wormhole's, has no NaN
  // encoding for bf16 and writes a NaN as an infinity (docs/tile-machine.md, Numerics).
  bool stored_nan(DType dt, double v) const {
    return backend() == Backend::kTile && dt == DType::kBF16 ? !std::isfinite(v) : std::isnan(v);
  }
};

Tensor nan_like(const Shape& shape, DType dtype) {
  Tensor t(shape, dtype);
  t.fill(kNaN);
  return t;
}

LayerNormForwardResult forward(Backend b, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               double eps) {
  LayerNormForwardResult r;
  const Status s = layernorm_forward(b, {x.cview(), gamma.cview(), beta.cview(), eps}, &r);
  EXPECT_TRUE(s.ok()) << s.to_string();
  // A failed op gives no tensors: NaN of the right shapes, so the case fails and the rest run.
  if (!s.ok())
    r = {nan_like(x.shape(), x.dtype()), nan_like(x.shape().leading(), DType::kF32),
         nan_like(x.shape().leading(), DType::kF32)};
  return r;
}

LayerNormBackwardResult backward(Backend b, const Tensor& x, const Tensor& dy, const Tensor& gamma,
                                 const Tensor& mean, const Tensor& rstd) {
  LayerNormBackwardResult r;
  const Status s =
      layernorm_backward(b, {x.cview(), dy.cview(), gamma.cview(), mean.cview(), rstd.cview()}, &r);
  EXPECT_TRUE(s.ok()) << s.to_string();
  if (!s.ok())
    r = {nan_like(x.shape(), x.dtype()), nan_like(gamma.shape(), DType::kF32),
         nan_like(gamma.shape(), DType::kF32)};
  return r;
}

// Same value, NaN matching NaN and an infinity matching its own sign.
bool same(double got, double want) { return std::isnan(want) ? std::isnan(got) : got == want; }

// Zero-variance rows at eps = the smallest and the largest normal f32: rstd = 1/sqrt(eps) is
// finite, so y = beta exactly (below FLT_MIN, f32 var + eps was 0 and y NaN on cpu and tile).
TEST_P(Edges, EpsAtTheLimitsOfF32) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (double eps : {double{FLT_MIN}, double{FLT_MAX}}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " eps " << eps);
      const int64_t rows = 3, C = 40;
      const Tensor x = constant_tensor(Shape{rows, C}, dt, 0.0);
      const Tensor gamma = random_tensor(Shape{C}, dt, 1, 0.5, 1.5);
      const Tensor beta = random_tensor(Shape{C}, dt, 2, -1, 1);
      const auto r = forward(backend(), x, gamma, beta, eps);
      const double rstd = 1 / std::sqrt(eps);
      for (int64_t i = 0; i < rows; ++i) {
        EXPECT_EQ(r.mean.get(i), 0.0);
        EXPECT_NEAR(r.rstd.get(i), rstd, 1e-2 * rstd) << "row " << i;
      }
      for (int64_t i = 0; i < rows * C; ++i) ASSERT_EQ(r.y.get(i), beta.get(i % C)) << i;
    }
  }
}

// One row per kind of non-finite content, then a finite row. The float64 reference's outputs are
// the rule: mean = the row sum / C (+Inf with a +Inf among finite values, NaN with a NaN or both
// infinities), rstd and the whole row of y NaN; finite rows unaffected.
TEST_P(Edges, NonFiniteRowsGiveTheReferenceStatistics) {
  const int64_t C = 37;  // odd, so no backend's vector or tile width divides it
  const std::vector<std::vector<std::pair<int64_t, double>>> rows{
      {{5, kInf}},
      {{0, -kInf}},
      {{36, kNaN}},
      {{3, kInf}, {20, -kInf}},
      {{1, kInf}, {2, kInf}, {30, kNaN}},
      {},  // finite
  };
  for (DType dt : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const auto R = static_cast<int64_t>(rows.size());
    Tensor x = random_tensor(Shape{R, C}, dt, 3, -2, 2);
    for (int64_t r = 0; r < R; ++r)
      for (auto [i, v] : rows[r]) x.set(r * C + i, v);
    const Tensor gamma = random_tensor(Shape{C}, dt, 4, 0.5, 1.5);
    const Tensor beta = random_tensor(Shape{C}, dt, 5, -1, 1);
    const auto ref = testing::reference_forward(x.cview(), gamma.cview(), beta.cview(), 1e-5);
    const auto got = forward(backend(), x, gamma, beta, 1e-5);
    for (int64_t r = 0; r < R; ++r) {
      SCOPED_TRACE("row " + std::to_string(r));
      const bool finite = rows[r].empty();
      EXPECT_EQ(std::isfinite(ref.rstd[r]), finite);
      if (!finite) {
        EXPECT_TRUE(same(got.mean.get(r), static_cast<float>(ref.mean[r])))
            << got.mean.get(r) << " vs " << ref.mean[r];
        EXPECT_TRUE(std::isnan(got.rstd.get(r))) << got.rstd.get(r);
        for (int64_t i = 0; i < C; ++i) EXPECT_TRUE(stored_nan(dt, got.y.get(r * C + i))) << i;
      } else {
        EXPECT_NEAR(got.mean.get(r), ref.mean[r], 1e-2);
        EXPECT_NEAR(got.rstd.get(r), ref.rstd[r], 1e-2 * ref.rstd[r]);
        for (int64_t i = 0; i < C; ++i) EXPECT_TRUE(std::isfinite(got.y.get(r * C + i))) << i;
      }
    }
    // Backward on those statistics: dx NaN across the non-finite rows only, every dgamma
    // column NaN (x-hat is NaN there), dbeta the finite column sums of dy.
    const Tensor dy = random_tensor(Shape{R, C}, dt, 6, -1, 1);
    const auto b = backward(backend(), x, dy, gamma, got.mean, got.rstd);
    const auto bref = testing::reference_backward(x.cview(), dy.cview(), gamma.cview(),
                                                  got.mean.cview(), got.rstd.cview());
    for (int64_t r = 0; r < R; ++r)
      for (int64_t i = 0; i < C; ++i)
        ASSERT_EQ(stored_nan(dt, b.dx.get(r * C + i)), !rows[r].empty()) << r << ", " << i;
    for (int64_t i = 0; i < C; ++i) {
      EXPECT_TRUE(stored_nan(dt, b.dgamma.get(i))) << i;
      EXPECT_NEAR(b.dbeta.get(i), bref.dbeta[i], 1e-5) << i;
    }
  }
}

// A NaN or Inf in dy stays in its own column of dgamma and dbeta; only its row of dx is affected.
TEST_P(Edges, NonFiniteGradientStaysInItsColumn) {
  const int64_t R = 5, C = 70;
  const struct {
    int64_t row, col;
    double value;
  } hits[] = {{1, 3, kNaN}, {2, 40, kInf}, {4, 69, -kInf}};
  for (DType dt : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = random_tensor(Shape{R, C}, dt, 6, -2, 2);
    Tensor dy = random_tensor(Shape{R, C}, dt, 7, -1, 1);
    for (const auto& h : hits) dy.set(h.row * C + h.col, h.value);
    const Tensor gamma = random_tensor(Shape{C}, dt, 8, 0.5, 1.5);
    const auto f = forward(backend(), x, gamma, Tensor(Shape{C}, dt), 1e-5);
    const auto ref = testing::reference_backward(x.cview(), dy.cview(), gamma.cview(),
                                                 f.mean.cview(), f.rstd.cview());
    const auto got = backward(backend(), x, dy, gamma, f.mean, f.rstd);
    for (int64_t i = 0; i < C; ++i) {
      const bool hit = i == 3 || i == 40 || i == 69;
      EXPECT_EQ(std::isfinite(got.dgamma.get(i)), !hit) << "dgamma " << i;
      EXPECT_EQ(std::isfinite(got.dbeta.get(i)), !hit) << "dbeta " << i;
      if (hit) {
        EXPECT_TRUE(same(got.dgamma.get(i), ref.dgamma[i])) << i << ": " << got.dgamma.get(i);
        EXPECT_TRUE(same(got.dbeta.get(i), ref.dbeta[i])) << i << ": " << got.dbeta.get(i);
      }
    }
    for (int64_t r = 0; r < R; ++r) {
      const bool hit_row = r == 1 || r == 2 || r == 4;
      for (int64_t i = 0; i < C; ++i)
        ASSERT_EQ(std::isfinite(got.dx.get(r * C + i)), !hit_row) << r << ", " << i;
    }
  }
}

// The report's constant inputs, forward then backward on the forward's own statistics: every
// row has zero variance, so x - mean must be exactly 0, hence dx = 0, dgamma = 0 and
// dbeta = rows exactly. A mean one ulp off 0.5 is amplified by rstd = 1000.
TEST_P(Edges, ReportConstantsForwardThenBackwardAreExact) {
  const int64_t rows = 819, C = 8462;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = constant_tensor(Shape{rows, C}, dt, 0.5);
    const Tensor dy = constant_tensor(Shape{rows, C}, dt, 1.0);
    const Tensor gamma = constant_tensor(Shape{C}, dt, 1.0);
    const auto f = forward(backend(), x, gamma, Tensor(Shape{C}, dt), 1e-6);
    for (int64_t r = 0; r < rows; ++r) ASSERT_EQ(f.mean.get(r), 0.5) << "mean " << r;
    const auto b = backward(backend(), x, dy, gamma, f.mean, f.rstd);
    for (int64_t i = 0; i < rows * C; ++i) ASSERT_EQ(b.dx.get(i), 0.0) << "dx " << i;
    for (int64_t i = 0; i < C; ++i) {
      ASSERT_EQ(b.dgamma.get(i), 0.0) << "dgamma " << i;
      ASSERT_EQ(b.dbeta.get(i), static_cast<double>(rows)) << "dbeta " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, Edges, ::testing::ValuesIn(all_backends()),
                         [](const auto& info) { return std::string(backend_name(info.param)); });

}  // namespace
}  // namespace tilenorm
