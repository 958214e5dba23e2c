// The native CPU backend's own tests (the norm family: LayerNorm and RMSNorm, with and without
// the fused residual add) against the float64 reference: every path on every compiled SIMD
// target, vector-width edges, misaligned views, streamed stores, non-finite rows, bitwise
// determinism across thread counts. The cross-backend case list (harness/conformance, run by
// conformance_test) covers the shapes and inputs on the best target.
#include "cpu/norm_cpu.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "cpu/dispatch.h"
#include "harness/conformance/tolerance.h"
#include "reference/norm.h"
#include "test_util.h"
#include "tilenorm/layernorm.h"
#include "tilenorm/rmsnorm.h"

namespace tilenorm {
namespace {

using testing::AllClose;
using testing::bitwise_equal;
using testing::op_label;

// Tolerances against the float64 reference run on the same (dtype-rounded) inputs, from the
// family's table (harness/conformance/tolerance.cc, the cpu backend-test rows, with their reasons).
// Statistics, dgamma and dbeta are f32 for both dtypes.
struct Tolerances {
  Tolerance y, mean, rstd, dx, dgb;
};

Tolerances tolerances(DType dtype, int64_t rows) {
  auto band = [&](conformance::Output output) {
    return conformance::tolerance({}, Backend::kCpu, dtype, output,
                                  conformance::Profile::kBackendTest)
        .for_rows(rows);
  };
  const Tolerance stats = band(conformance::Output::kStats);
  return {band(conformance::Output::kY), stats, stats, band(conformance::Output::kDx),
          band(conformance::Output::kDParams)};
}

struct Inputs {
  Tensor x, dy, gamma, beta;
};

// Row means and scales differ per row (2 + r % 7, 1 + r % 3) so that errors in the statistics
// show; dy, gamma, beta random with non-zero means.
Inputs make_inputs(int64_t rows, int64_t C, DType dtype, uint64_t seed) {
  Inputs in;
  in.x = testing::random_tensor(Shape{rows, C}, DType::kF64, seed);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < C; ++i)
      in.x.set(r * C + i, 2.0 + static_cast<double>(r % 7) +
                              in.x.get(r * C + i) * (1.0 + static_cast<double>(r % 3)));
  in.x = in.x.to(dtype);
  in.dy = testing::random_tensor(Shape{rows, C}, dtype, seed + 1, -0.5, 1.0);
  in.gamma = testing::random_tensor(Shape{C}, dtype, seed + 2, 0.75, 1.25);
  in.beta = testing::random_tensor(Shape{C}, dtype, seed + 3, -0.1, 0.1);
  return in;
}

struct Outputs {
  Tensor y, mean, rstd, dx, dgamma, dbeta;
  RunReport fwd_report, bwd_report;
};

Tensor nan_tensor(const Shape& shape, DType dtype) {
  Tensor t(shape, dtype);
  t.fill(std::numeric_limits<double>::quiet_NaN());
  return t;
}

// Forward, then backward on the forward's own statistics; outputs pre-filled with NaN.
Outputs run_cpu(const Inputs& in, int threads, double eps = kDefaultEps) {
  const Shape& s = in.x.shape();
  const DType dt = in.x.dtype();
  Outputs o;
  o.y = nan_tensor(s, dt);
  o.mean = nan_tensor(s.leading(), DType::kF32);
  o.rstd = nan_tensor(s.leading(), DType::kF32);
  o.dx = nan_tensor(s, dt);
  o.dgamma = nan_tensor(Shape{s.cols()}, DType::kF32);
  o.dbeta = nan_tensor(Shape{s.cols()}, DType::kF32);
  LayerNormOptions opt;
  opt.num_threads = threads;
  opt.report = &o.fwd_report;
  Status st = layernorm_forward(
      Backend::kCpu, {in.x.view(), in.gamma.view(), in.beta.view(), eps},
      LayerNormForwardOutputs{.y = o.y.view(), .mean = o.mean.view(), .rstd = o.rstd.view()}, opt);
  EXPECT_TRUE(st.ok()) << st.to_string();
  opt.report = &o.bwd_report;
  st = layernorm_backward(
      Backend::kCpu, {in.x.view(), in.dy.view(), in.gamma.view(), o.mean.view(), o.rstd.view()},
      LayerNormBackwardOutputs{
          .dx = o.dx.view(), .dgamma = o.dgamma.view(), .dbeta = o.dbeta.view()},
      opt);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return o;
}

void expect_matches_reference(const Inputs& in, const Outputs& o, double eps = kDefaultEps) {
  const Tolerances tol = tolerances(in.x.dtype(), in.x.shape().rows());
  const auto f = testing::reference_forward(in.x.view(), in.gamma.view(), in.beta.view(), eps);
  EXPECT_TRUE(AllClose("y", o.y.view(), f.y, tol.y));
  EXPECT_TRUE(AllClose("mean", o.mean.view(), f.mean, tol.mean));
  EXPECT_TRUE(AllClose("rstd", o.rstd.view(), f.rstd, tol.rstd));
  const auto b = testing::reference_backward(in.x.view(), in.dy.view(), in.gamma.view(),
                                             o.mean.view(), o.rstd.view());
  EXPECT_TRUE(AllClose("dx", o.dx.view(), b.dx, tol.dx));
  EXPECT_TRUE(AllClose("dgamma", o.dgamma.view(), b.dgamma, tol.dgb));
  EXPECT_TRUE(AllClose("dbeta", o.dbeta.view(), b.dbeta, tol.dgb));
}

// Runs the body once per SIMD target compiled in and supported here, then restores dispatch.
class CpuTargets : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!cpu::force_simd_target(GetParam())) GTEST_SKIP() << GetParam() << " not available";
    ASSERT_EQ(cpu::active_simd_target(), GetParam());
  }
  void TearDown() override { ASSERT_TRUE(cpu::force_simd_target("")); }
};

std::vector<std::string> all_targets() { return cpu::simd_targets(); }

struct ShapeCase {
  int64_t rows, C;
  const char* why;
};

// One shape per path of both directions (at 2 threads), C % 32 != 0. The paths are the same
// on every SIMD target, so every target runs these; the registry's cases (conformance_test:
// tails, chunk edges, row chunks, the row-split and cached-row shapes) run on the best target.
const ShapeCase kPathShapes[] = {
    {3, 1, "C = 1"},
    {5, 33, "C = 33: a vector and a tail on every target"},
    {9, 1025, "one chunk plus one column; cached rows"},
    {3, 40000, "few long rows: forward and backward split rows over threads"},
    {12, 16385, "backward row-split, forward whole rows"},
};

std::string expected_path(const ShapeCase& sc, bool residual, bool forward) {
  const int64_t nck = (sc.C + 1023) / 1024;
  if (forward) {
    if (sc.rows < 8 && nck >= 4) return "row-split";  // at 2 threads
    return sc.C * 4 * (residual ? 2 : 1) <= (512 << 10) ? "cached-row" : "streamed";
  }
  if (sc.rows < 16 && nck >= 16) return "row-split";
  return sc.C * 4 * 2 <= (512 << 10) ? "cached-row" : "streamed";
}

TEST_P(CpuTargets, MatchesReferenceOnEveryPath) {
  for (const ShapeCase& sc : kPathShapes) {
    for (DType dt : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(std::to_string(sc.rows) + "x" + std::to_string(sc.C) + " " + dtype_name(dt) +
                   ": " + sc.why);
      const Inputs in = make_inputs(sc.rows, sc.C, dt, 17);
      const Outputs o = run_cpu(in, 2);
      expect_matches_reference(in, o);
      if (dt == DType::kF32) {
        EXPECT_EQ(o.fwd_report.path, expected_path(sc, false, true));
        EXPECT_EQ(o.bwd_report.path, expected_path(sc, false, false));
      }
    }
  }
}

// W-1, W, W+1 around every vector width in use (4, 8, 16 f32 lanes) and the unrolled strides
// (2W, 4W) of the reduction loops.
TEST_P(CpuTargets, WidthsAroundEveryVectorWidth) {
  for (int64_t w : {4, 8, 16, 32, 64}) {
    for (int64_t C : {w - 1, w, w + 1}) {
      for (DType dt : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE("C=" + std::to_string(C) + " " + dtype_name(dt));
        const Inputs in = make_inputs(6, C, dt, 100 + static_cast<uint64_t>(C));
        expect_matches_reference(in, run_cpu(in, 2));
      }
    }
  }
}

// Views starting one element past a 64-byte boundary: no aligned-load assumption anywhere.
TEST_P(CpuTargets, MisalignedStarts) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (int64_t C : {int64_t{37}, int64_t{1024}, int64_t{20000}}) {
      SCOPED_TRACE("C=" + std::to_string(C) + " " + dtype_name(dt));
      const int64_t rows = C > 10000 ? 3 : 33;
      const Inputs in = make_inputs(rows, C, dt, 5);
      const size_t es = dtype_size(dt);
      auto shifted = [&](const Tensor& t, Tensor* storage) {
        *storage = Tensor(Shape{t.numel() + 1}, dt);
        auto* p = static_cast<char*>(storage->raw()) + es;
        std::memcpy(p, t.raw(), t.nbytes());
        return TensorView{p, t.shape(), dt};
      };
      Tensor sx, sdy, sg, sb, sy, sdx;
      const TensorView x = shifted(in.x, &sx), dy = shifted(in.dy, &sdy),
                       g = shifted(in.gamma, &sg), b = shifted(in.beta, &sb);
      const TensorView y = shifted(nan_tensor(in.x.shape(), dt), &sy),
                       dx = shifted(nan_tensor(in.x.shape(), dt), &sdx);
      Tensor mean(Shape{rows}, DType::kF32), rstd(Shape{rows}, DType::kF32);
      Tensor dgamma(Shape{C}, DType::kF32), dbeta(Shape{C}, DType::kF32);
      LayerNormOptions opt;
      opt.num_threads = 2;
      ASSERT_TRUE(layernorm_forward(
                      Backend::kCpu, {x, g, b, kDefaultEps},
                      LayerNormForwardOutputs{.y = y, .mean = mean.view(), .rstd = rstd.view()},
                      opt)
                      .ok());
      ASSERT_TRUE(layernorm_backward(Backend::kCpu, {x, dy, g, mean.view(), rstd.view()},
                                     LayerNormBackwardOutputs{
                                         .dx = dx, .dgamma = dgamma.view(), .dbeta = dbeta.view()},
                                     opt)
                      .ok());
      const Tolerances tol = tolerances(dt, rows);
      const auto f = testing::reference_forward(x, g, b, kDefaultEps);
      EXPECT_TRUE(AllClose("y", y, f.y, tol.y));
      EXPECT_TRUE(AllClose("mean", mean.view(), f.mean, tol.mean));
      const auto r = testing::reference_backward(x, dy, g, mean.view(), rstd.view());
      EXPECT_TRUE(AllClose("dx", dx, r.dx, tol.dx));
      EXPECT_TRUE(AllClose("dgamma", dgamma.view(), r.dgamma, tol.dgb));
      EXPECT_TRUE(AllClose("dbeta", dbeta.view(), r.dbeta, tol.dgb));
    }
  }
}

// LayerNorm of constant rows with dy = gamma = 1, beta = 0: y and the norm's part of dx cancel
// to exactly 0 (dx is then dh_in, here dx_value everywhere), dgamma to exactly 0, and dbeta
// counts the rows exactly.
void expect_constant_rows_exact(const Tensor& y, const Tensor& dx, const Tensor& dgamma,
                                const Tensor& dbeta, double dx_value) {
  const int64_t rows = y.shape().rows(), C = y.shape().cols();
  for (int64_t i = 0; i < rows * C; ++i) {
    ASSERT_EQ(y.get(i), 0.0) << i;
    ASSERT_EQ(dx.get(i), dx_value) << i;
  }
  for (int64_t i = 0; i < C; ++i) {
    ASSERT_EQ(dgamma.data<float>()[i], 0.0f) << i;
    ASSERT_EQ(dbeta.data<float>()[i], static_cast<float>(rows)) << i;
  }
}

// The seed's constant inputs: every row has zero variance, so dx and dgamma must cancel to
// exactly zero and dbeta count the rows exactly.
TEST_P(CpuTargets, ConstantInputsExact) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (const auto& [rows, C] :
         std::vector<std::pair<int64_t, int64_t>>{{64, 1024}, {300, 1000}, {3, 40000}}) {
      SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(C) + " " + dtype_name(dt));
      Inputs in{testing::constant_tensor(Shape{rows, C}, dt, 0.5),
                testing::constant_tensor(Shape{rows, C}, dt, 1.0),
                testing::constant_tensor(Shape{C}, dt, 1.0),
                testing::constant_tensor(Shape{C}, dt, 0.0)};
      const Outputs o = run_cpu(in, 2, 1e-6);
      const float rstd = static_cast<float>(1.0 / std::sqrt(1e-6));
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_EQ(o.mean.data<float>()[r], 0.5f);
        ASSERT_EQ(o.rstd.data<float>()[r], rstd);
      }
      expect_constant_rows_exact(o.y, o.dx, o.dgamma, o.dbeta, 0.0);
    }
  }
}

// Large mean, unit spread: a one-pass E[x^2] - E[x]^2 would lose every digit of the variance.
TEST_P(CpuTargets, StableForLargeMean) {
  const int64_t rows = 16, C = 3000;
  Inputs in = make_inputs(rows, C, DType::kF32, 9);
  const Tensor n = testing::random_tensor(Shape{rows, C}, DType::kF64, 10, -1.7, 1.7);
  for (int64_t i = 0; i < rows * C; ++i) in.x.set(i, 1e4 + n.get(i));
  expect_matches_reference(in, run_cpu(in, 2));
}

// An outlier leading a 1024-column statistics chunk: the chunk's shift (the mean of its first
// 16 values) lands far from the mean, and the variance must still come out right.
TEST_P(CpuTargets, StableWithLeadingOutliers) {
  const int64_t rows = 4, C = 3000;
  Inputs in = make_inputs(rows, C, DType::kF32, 12);
  for (int64_t r = 0; r < rows; ++r) {
    in.x.set(r * C, 1e4);
    in.x.set(r * C + 1024, -3e3);
  }
  expect_matches_reference(in, run_cpu(in, 2));
}

// Rows holding NaN or Inf, and finite rows whose f32 sums of squares overflow (|x| = 1e30), get
// the float64 reference's statistics on both forward paths: whole rows (6x37) and rows split
// over threads (3x5000, the non-finite value in the second 1024-column chunk).
TEST_P(CpuTargets, NonFiniteAndOverflowingRowsTakeReferenceStatistics) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  for (const auto& [rows, C] : std::vector<std::pair<int64_t, int64_t>>{{6, 37}, {3, 5000}}) {
    for (DType dt : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(C) + " " + dtype_name(dt));
      Inputs in = make_inputs(rows, C, dt, 31);
      const int64_t at = C > 1024 ? 1500 : 5;
      in.x.set(at, inf);               // row 0: mean +Inf
      in.x.set(C + at, nan);           // row 1: mean NaN
      for (int64_t i = 0; i < C; ++i)  // row 2: finite, sum of squares 1e60 * C
        in.x.set(2 * C + i, i % 2 ? 1e30 : -1e30);
      const Outputs o = run_cpu(in, 2);
      EXPECT_EQ(o.fwd_report.path, C > 1024 ? "row-split" : "cached-row");
      const auto f =
          testing::reference_forward(in.x.view(), in.gamma.view(), in.beta.view(), kDefaultEps);
      for (int64_t r = 0; r < 3; ++r) {
        const float mean = static_cast<float>(f.mean[r]), rstd = static_cast<float>(f.rstd[r]);
        const float got_mean = o.mean.data<float>()[r], got_rstd = o.rstd.data<float>()[r];
        EXPECT_TRUE(std::isnan(mean) ? std::isnan(got_mean) : got_mean == mean)
            << "row " << r << " mean " << got_mean << " vs " << mean;
        EXPECT_TRUE(std::isnan(rstd) ? std::isnan(got_rstd) : got_rstd == rstd)
            << "row " << r << " rstd " << got_rstd << " vs " << rstd;
      }
      EXPECT_GT(o.rstd.data<float>()[2], 0.0f);
      for (int64_t i = 0; i < 2 * C; ++i) ASSERT_TRUE(std::isnan(o.y.get(i))) << i;
      for (int64_t i = 2 * C; i < rows * C; ++i) ASSERT_TRUE(std::isfinite(o.y.get(i))) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Simd, CpuTargets, ::testing::ValuesIn(all_targets()),
                         [](const auto& info) { return info.param; });

// A zero-variance row next to ordinary ones: rstd = 1/sqrt(eps), y = beta, no NaN.
TEST(LayerNormCpu, ZeroVarianceRows) {
  Inputs in = make_inputs(4, 1000, DType::kF32, 3);
  for (int64_t i = 0; i < 1000; ++i) in.x.set(1000 + i, -3.25);
  const Outputs o = run_cpu(in, 2);
  expect_matches_reference(in, o);
  EXPECT_EQ(o.rstd.data<float>()[1], static_cast<float>(1.0 / std::sqrt(kDefaultEps)));
}

// eps other than the default: the report's 1e-6 and a large 1e-3 (rstd = 1/sqrt(var + eps) moves
// by 0.3% at var = 1/3); at 1e-3 a zero-variance row too, where rstd = 1/sqrt(eps) (at 1e-6,
// rstd = 1000 would scale dx's fp32 rounding past the tolerance).
TEST(LayerNormCpu, OtherEps) {
  for (double eps : {1e-6, 1e-3}) {
    for (DType dt : {DType::kF32, DType::kBF16}) {
      for (int64_t C : {33, 1025, 16385}) {
        SCOPED_TRACE(std::to_string(C) + " " + dtype_name(dt) + " eps " + std::to_string(eps));
        Inputs in = make_inputs(9, C, dt, 5);
        if (eps == 1e-3)
          for (int64_t i = 0; i < C; ++i) in.x.set(C + i, 0.75);
        const Outputs o = run_cpu(in, 2, eps);
        expect_matches_reference(in, o, eps);
      }
    }
  }
}

// bf16 activations, many rows: dgamma/dbeta are f32 sums of 8192+ bf16 products and must stay
// at f32 accuracy (libtorch 1.13 loses ~1e-1 relative here).
TEST(LayerNormCpu, Bf16DgammaDbetaAccurateAtManyRows) {
  for (int64_t rows : {int64_t{8192}, int64_t{12289}}) {
    SCOPED_TRACE(rows);
    const Inputs in = make_inputs(rows, 128, DType::kBF16, 33);
    const Outputs o = run_cpu(in, 2);
    expect_matches_reference(in, o);
  }
}

// Large enough for the non-temporal store paths (tensors beyond 7/8 of the L3) both ways.
TEST(LayerNormCpu, StreamedStoresMatchReference) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dt));
    const int64_t rows = dt == DType::kF32 ? 2048 : 4096;
    const Inputs in = make_inputs(rows, 3072, dt, 44);
    expect_matches_reference(in, run_cpu(in, 2));
  }
}

// The path is a property of the shape; each one is exercised by the cases above.
TEST(LayerNormCpu, ReportsPath) {
  const Inputs a = make_inputs(512, 1024, DType::kF32, 1);
  Outputs o = run_cpu(a, 2);
  EXPECT_EQ(o.fwd_report.path, "cached-row");
  EXPECT_EQ(o.bwd_report.path, "cached-row");
  const Inputs b = make_inputs(2, 300001, DType::kF32, 1);
  o = run_cpu(b, 2);
  EXPECT_EQ(o.fwd_report.path, "row-split");
  EXPECT_EQ(o.bwd_report.path, "row-split");
  const Inputs c = make_inputs(64, 200000, DType::kF32, 1);
  o = run_cpu(c, 2);
  EXPECT_EQ(o.fwd_report.path, "streamed");
  EXPECT_EQ(o.bwd_report.path, "streamed");
}

// A call under kInlineElements runs on the calling thread whatever num_threads says (waking the
// workers would cost more than their share); from there up it runs on the threads asked for.
TEST(LayerNormCpu, SmallCallsRunOnTheCallingThread) {
  const auto threads = [](const RunReport& r) {
    for (const auto& [name, value] : r.metrics)
      if (name == "threads") return value;
    return -1.0;
  };
  const int64_t C = 128, below = cpu::kInlineElements / C - 1, at = cpu::kInlineElements / C;
  for (const DType dt : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype_name(dt));
    Outputs o = run_cpu(make_inputs(below, C, dt, 3), 2);
    EXPECT_EQ(threads(o.fwd_report), 1);
    EXPECT_EQ(threads(o.bwd_report), 1);
    o = run_cpu(make_inputs(at, C, dt, 3), 2);
    EXPECT_EQ(threads(o.fwd_report), 2);
    EXPECT_EQ(threads(o.bwd_report), 2);
  }
}

// Same inputs, 1, 2, 3 and 8 threads: every output bitwise identical, for each path.
TEST(LayerNormCpu, BitwiseDeterministicAcrossThreadCounts) {
  const ShapeCase cases[] = {
      {1000, 777, "cached rows, 32 row chunks, ragged last chunk"},
      {7, 300, "seven one-row chunks"},
      {5, 40000, "row-split forward at 2+ threads, whole rows at 1"},
      {12, 20000, "row-split backward"},
      {2, 300001, "row-split backward, two row groups"},
      {2048, 3072, "streamed stores"},
  };
  for (const ShapeCase& sc : cases) {
    for (DType dt : {DType::kF32, DType::kBF16}) {
      SCOPED_TRACE(std::string(sc.why) + " " + dtype_name(dt));
      const Inputs in = make_inputs(sc.rows, sc.C, dt, 77);
      const Outputs base = run_cpu(in, 1);
      for (int threads : {1, 2, 3, 8}) {
        const Outputs o = run_cpu(in, threads);
        EXPECT_TRUE(bitwise_equal(o.y, base.y)) << threads << " threads: y";
        EXPECT_TRUE(bitwise_equal(o.mean, base.mean)) << threads << " threads: mean";
        EXPECT_TRUE(bitwise_equal(o.rstd, base.rstd)) << threads << " threads: rstd";
        EXPECT_TRUE(bitwise_equal(o.dx, base.dx)) << threads << " threads: dx";
        EXPECT_TRUE(bitwise_equal(o.dgamma, base.dgamma)) << threads << " threads: dgamma";
        EXPECT_TRUE(bitwise_equal(o.dbeta, base.dbeta)) << threads << " threads: dbeta";
      }
    }
  }
}

// The API promises independent concurrent calls: callers share the thread pool, and the
// row-split path's multi-phase calls must not mix up their scratch.
TEST(LayerNormCpu, ConcurrentCallsGiveTheSameBits) {
  const Inputs a = make_inputs(300, 1000, DType::kF32, 5),
               b = make_inputs(3, 50000, DType::kBF16, 6);
  const Outputs ref_a = run_cpu(a, 2), ref_b = run_cpu(b, 2);
  std::vector<Outputs> got_a(4), got_b(4);
  {
    std::thread ta([&] {
      for (auto& o : got_a) o = run_cpu(a, 2);
    });
    std::thread tb([&] {
      for (auto& o : got_b) o = run_cpu(b, 2);
    });
    ta.join();
    tb.join();
  }
  for (const Outputs& o : got_a) {
    EXPECT_TRUE(bitwise_equal(o.y, ref_a.y) && bitwise_equal(o.dx, ref_a.dx) &&
                bitwise_equal(o.dgamma, ref_a.dgamma) && bitwise_equal(o.dbeta, ref_a.dbeta));
  }
  for (const Outputs& o : got_b) {
    EXPECT_TRUE(bitwise_equal(o.y, ref_b.y) && bitwise_equal(o.dx, ref_b.dx) &&
                bitwise_equal(o.dgamma, ref_b.dgamma) && bitwise_equal(o.dbeta, ref_b.dbeta));
  }
}

// The rest of the family: RMSNorm, and the fused residual add on both norms. Forward takes
// x + residual, backward its h and dh_in; the LayerNorm-without-residual cases are above.
// Every NormOp (include/tilenorm/norm.h) but LayerNorm alone, RMSNorm first.
const std::vector<NormOp> kFamily = [] {
  std::vector<NormOp> ops;
  for (const NormOp& op : kNormOps)
    if (op != NormOp{}) ops.push_back(op);
  return ops;
}();

struct FamilyInputs {
  Inputs in;
  Tensor residual, dh_in;  // empty without a residual
};

FamilyInputs make_family_inputs(const NormOp& fc, int64_t rows, int64_t C, DType dtype,
                                uint64_t seed) {
  FamilyInputs fi{make_inputs(rows, C, dtype, seed), {}, {}};
  if (fc.residual) {
    fi.residual = testing::random_tensor(Shape{rows, C}, dtype, seed + 4, -1.5, 0.5);
    fi.dh_in = testing::random_tensor(Shape{rows, C}, dtype, seed + 5, -0.5, 0.5);
  }
  return fi;
}

struct FamilyOutputs {
  Tensor y, h, mean, rstd, dx, dgamma, dbeta;  // h, mean, dbeta empty when not produced
  RunReport fwd_report, bwd_report;
};

// Forward, then backward on the forward's own h and statistics; outputs pre-filled with NaN.
FamilyOutputs run_family(const NormOp& fc, const FamilyInputs& fi, int threads,
                         double eps = kDefaultEps) {
  const Inputs& in = fi.in;
  const Shape& s = in.x.shape();
  const DType dt = in.x.dtype();
  const bool layer = fc.norm == Norm::kLayerNorm;
  FamilyOutputs o;
  o.y = nan_tensor(s, dt);
  if (fc.residual) o.h = nan_tensor(s, dt);
  if (layer) o.mean = nan_tensor(s.leading(), DType::kF32);
  o.rstd = nan_tensor(s.leading(), DType::kF32);
  o.dx = nan_tensor(s, dt);
  o.dgamma = nan_tensor(Shape{s.cols()}, DType::kF32);
  if (layer) o.dbeta = nan_tensor(Shape{s.cols()}, DType::kF32);
  NormOptions opt;
  opt.num_threads = threads;
  opt.report = &o.fwd_report;
  const Status fst =
      layer
          ? layernorm_forward(
                Backend::kCpu,
                {in.x.view(), in.gamma.view(), in.beta.view(), eps, fi.residual.view()},
                LayerNormForwardOutputs{
                    .y = o.y.view(), .mean = o.mean.view(), .rstd = o.rstd.view(), .h = o.h.view()},
                opt)
          : rmsnorm_forward(
                Backend::kCpu, {in.x.view(), in.gamma.view(), eps, fi.residual.view()},
                RmsNormForwardOutputs{.y = o.y.view(), .rrms = o.rstd.view(), .h = o.h.view()},
                opt);
  EXPECT_TRUE(fst.ok()) << fst.to_string();
  opt.report = &o.bwd_report;
  const ConstTensorView x = fc.residual ? o.h.view() : in.x.view();
  const Status bst =
      layer ? layernorm_backward(
                  Backend::kCpu,
                  {x, in.dy.view(), in.gamma.view(), o.mean.view(), o.rstd.view(), fi.dh_in.view()},
                  LayerNormBackwardOutputs{
                      .dx = o.dx.view(), .dgamma = o.dgamma.view(), .dbeta = o.dbeta.view()},
                  opt)
            : rmsnorm_backward(
                  Backend::kCpu, {x, in.dy.view(), in.gamma.view(), o.rstd.view(), fi.dh_in.view()},
                  RmsNormBackwardOutputs{.dx = o.dx.view(), .dgamma = o.dgamma.view()}, opt);
  EXPECT_TRUE(bst.ok()) << bst.to_string();
  return o;
}

// Against reference::norm_*_f64 on the same inputs. h = x + residual is rounded to the data
// dtype once, on both sides, so it must match exactly.
void expect_family_matches_reference(const NormOp& fc, const FamilyInputs& fi,
                                     const FamilyOutputs& o, double eps = kDefaultEps) {
  const Inputs& in = fi.in;
  const int64_t rows = in.x.shape().rows(), C = in.x.shape().cols();
  const bool layer = fc.norm == Norm::kLayerNorm;
  const Tolerances tol = tolerances(in.x.dtype(), rows);
  std::vector<double> h = reference::load_f64(in.x.view());
  if (fc.residual) {
    const auto r = reference::load_f64(fi.residual.view());
    for (size_t i = 0; i < h.size(); ++i) h[i] += r[i];
    Tensor rounded(in.x.shape(), in.x.dtype());
    reference::store_f64(rounded.view(), h);
    h = reference::load_f64(rounded.view());
    EXPECT_TRUE(AllClose("h", o.h.view(), h, {0, 0}));
  }
  const auto gamma = reference::load_f64(in.gamma.view()),
             beta = reference::load_f64(in.beta.view());
  std::vector<double> y(h.size()), mean(rows), rstd(rows);
  reference::norm_forward_f64(fc.norm, h.data(), gamma.data(), layer ? beta.data() : nullptr, rows,
                              C, eps, y.data(), mean.data(), rstd.data());
  EXPECT_TRUE(AllClose("y", o.y.view(), y, tol.y));
  EXPECT_TRUE(AllClose("rstd", o.rstd.view(), rstd, tol.rstd));
  if (layer) {
    EXPECT_TRUE(AllClose("mean", o.mean.view(), mean, tol.mean));
  }
  // Backward on the cpu's own statistics.
  const auto dy = reference::load_f64(in.dy.view()), got_rstd = reference::load_f64(o.rstd.view());
  const auto got_mean = layer ? reference::load_f64(o.mean.view()) : std::vector<double>{};
  const auto dh = fc.residual ? reference::load_f64(fi.dh_in.view()) : std::vector<double>{};
  std::vector<double> dx(h.size()), dgamma(C), dbeta(C);
  reference::norm_backward_f64(fc.norm, h.data(), dy.data(), gamma.data(),
                               layer ? got_mean.data() : nullptr, got_rstd.data(),
                               fc.residual ? dh.data() : nullptr, rows, C, dx.data(), dgamma.data(),
                               layer ? dbeta.data() : nullptr);
  EXPECT_TRUE(AllClose("dx", o.dx.view(), dx, tol.dx));
  EXPECT_TRUE(AllClose("dgamma", o.dgamma.view(), dgamma, tol.dgb));
  if (layer) {
    EXPECT_TRUE(AllClose("dbeta", o.dbeta.view(), dbeta, tol.dgb));
  }
}

// The large shapes run on the best SIMD target only.
const ShapeCase kFamilyLargeShapes[] = {
    {40, 8462, "8462: odd width of several chunks, 8 row chunks of 5"},
    {28, 140000,
     "rows past the cached-row size, tensors past 7/8 of the L3: streamed rows, "
     "non-temporal stores"},
};

void expect_family_on_shapes(const ShapeCase* begin, const ShapeCase* end,
                             std::initializer_list<DType> dtypes) {
  for (const NormOp& fc : kFamily) {
    for (const ShapeCase* sc = begin; sc != end; ++sc) {
      for (DType dt : dtypes) {
        SCOPED_TRACE(op_label(fc) + " " + std::to_string(sc->rows) + "x" + std::to_string(sc->C) +
                     " " + dtype_name(dt) + ": " + sc->why);
        const FamilyInputs fi = make_family_inputs(fc, sc->rows, sc->C, dt, 23);
        const FamilyOutputs o = run_family(fc, fi, 2);
        expect_family_matches_reference(fc, fi, o);
        if (dt == DType::kF32) {
          EXPECT_EQ(o.fwd_report.path, expected_path(*sc, fc.residual, true));
          EXPECT_EQ(o.bwd_report.path, expected_path(*sc, fc.residual, false));
        }
      }
    }
  }
}

TEST_P(CpuTargets, FamilyMatchesReferenceOnEveryPath) {
  expect_family_on_shapes(std::begin(kPathShapes), std::end(kPathShapes),
                          {DType::kF32, DType::kBF16});
}

TEST(NormCpu, FamilyMatchesReferenceOnLargeShapes) {
  expect_family_on_shapes(std::begin(kFamilyLargeShapes), std::end(kFamilyLargeShapes),
                          {DType::kF32});
}

// Widths around every vector width (the loads and stores are LayerNorm's, tested misaligned
// above).
TEST_P(CpuTargets, FamilyWidthsAroundVectorWidths) {
  for (const NormOp& fc : kFamily) {
    for (int64_t C : {int64_t{7}, int64_t{15}, int64_t{17}, int64_t{63}, int64_t{65}}) {
      for (DType dt : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE(op_label(fc) + " C=" + std::to_string(C) + " " + dtype_name(dt));
        const FamilyInputs fi = make_family_inputs(fc, 6, C, dt, 200 + static_cast<uint64_t>(C));
        expect_family_matches_reference(fc, fi, run_family(fc, fi, 2));
      }
    }
  }
}

// Large mean, unit spread: RMSNorm has no centring to lose, LayerNorm over h = x + residual
// must keep its variance.
TEST_P(CpuTargets, FamilyLargeMean) {
  for (const NormOp& fc : kFamily) {
    SCOPED_TRACE(op_label(fc));
    FamilyInputs fi = make_family_inputs(fc, 16, 3000, DType::kF32, 9);
    const Tensor n = testing::random_tensor(Shape{16, 3000}, DType::kF64, 10, -1.7, 1.7);
    for (int64_t i = 0; i < 16 * 3000; ++i) fi.in.x.set(i, 1e4 + n.get(i));
    expect_family_matches_reference(fc, fi, run_family(fc, fi, 2));
  }
}

// The report's constants through the fused add: x = 0.25 and residual = 0.25 give constant rows
// h = 0.5; with dy = gamma = 1 LayerNorm's dx must cancel to exactly 0 before dh_in = 1 is added
// (dx = 1 exactly), dgamma to exactly 0, dbeta count the rows. RMSNorm of the same rows: h is
// exact, y and dx match the reference, and every row and column carries the same bits.
TEST(NormCpu, ReportConstantsThroughTheResidual) {
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (const auto& [rows, C] :
         std::vector<std::pair<int64_t, int64_t>>{{64, 1024}, {300, 1000}, {3, 40000}}) {
      for (const NormOp& fc : kFamily) {
        if (!fc.residual) continue;
        SCOPED_TRACE(op_label(fc) + " " + std::to_string(rows) + "x" + std::to_string(C) + " " +
                     dtype_name(dt));
        FamilyInputs fi{{testing::constant_tensor(Shape{rows, C}, dt, 0.25),
                         testing::constant_tensor(Shape{rows, C}, dt, 1.0),
                         testing::constant_tensor(Shape{C}, dt, 1.0),
                         testing::constant_tensor(Shape{C}, dt, 0.0)},
                        testing::constant_tensor(Shape{rows, C}, dt, 0.25),
                        testing::constant_tensor(Shape{rows, C}, dt, 1.0)};
        const FamilyOutputs o = run_family(fc, fi, 2, 1e-6);
        for (int64_t i = 0; i < rows * C; ++i) ASSERT_EQ(o.h.get(i), 0.5) << i;
        if (fc.norm == Norm::kLayerNorm) {
          expect_constant_rows_exact(o.y, o.dx, o.dgamma, o.dbeta, 1.0);
          continue;
        }
        expect_family_matches_reference(fc, fi, o, 1e-6);
        for (int64_t i = 1; i < rows * C; ++i) {
          ASSERT_EQ(o.y.get(i), o.y.get(0)) << i;
          ASSERT_EQ(o.dx.get(i), o.dx.get(0)) << i;
        }
        for (int64_t i = 1; i < C; ++i) ASSERT_EQ(o.dgamma.get(i), o.dgamma.get(0)) << i;
      }
    }
  }
}

// RMSNorm's non-finite rule is the reference's: an Inf row has rrms = 0, a NaN row NaN, a finite
// row whose f32 sum of squares overflows the reference's rrms; on whole rows and on rows split
// over threads.
TEST(NormCpu, RmsNonFiniteAndOverflowingRowsTakeReferenceStatistics) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  const NormOp& fc = kFamily[0];
  for (const auto& [rows, C] : std::vector<std::pair<int64_t, int64_t>>{{6, 37}, {3, 5000}}) {
    SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(C));
    FamilyInputs fi = make_family_inputs(fc, rows, C, DType::kF32, 31);
    const int64_t at = C > 1024 ? 1500 : 5;
    fi.in.x.set(at, inf);
    fi.in.x.set(C + at, nan);
    for (int64_t i = 0; i < C; ++i) fi.in.x.set(2 * C + i, i % 2 ? 1e30 : -1e30);
    const FamilyOutputs o = run_family(fc, fi, 2);
    const auto x = reference::load_f64(fi.in.x.view());
    const auto gamma = reference::load_f64(fi.in.gamma.view());
    std::vector<double> y(x.size()), mean(rows), rstd(rows);
    reference::norm_forward_f64(Norm::kRmsNorm, x.data(), gamma.data(), nullptr, rows, C,
                                kDefaultEps, y.data(), mean.data(), rstd.data());
    for (int64_t r = 0; r < 3; ++r) {
      const float want = static_cast<float>(rstd[r]), got = o.rstd.data<float>()[r];
      EXPECT_TRUE(std::isnan(want) ? std::isnan(got) : got == want)
          << "row " << r << " rrms " << got << " vs " << want;
    }
    EXPECT_EQ(o.rstd.data<float>()[0], 0.0f);
    EXPECT_GT(o.rstd.data<float>()[2], 0.0f);
    // An Inf row: y = h * 0 = 0, NaN at the Inf; a NaN row: NaN throughout.
    for (int64_t i = 0; i < 2 * C; ++i) {
      ASSERT_EQ(std::isnan(o.y.get(i)), std::isnan(y[i])) << i;
      if (!std::isnan(y[i])) {
        ASSERT_EQ(o.y.get(i), y[i]) << i;
      }
    }
    for (int64_t i = 2 * C; i < rows * C; ++i) ASSERT_TRUE(std::isfinite(o.y.get(i))) << i;
  }
}

// 1, 2 and 3 threads give the same bits for every output, on every path.
TEST(NormCpu, FamilyBitwiseDeterministicAcrossThreadCounts) {
  const ShapeCase cases[] = {
      {1000, 777, "cached rows, 32 row chunks, ragged last chunk"},
      {5, 40000, "row-split forward at 2+ threads, whole rows at 1"},
      {2, 300001, "row-split backward, two row groups"},
      {16, 140000, "streamed rows, non-temporal stores with a residual (f32 only)"},
  };
  for (const NormOp& fc : kFamily) {
    for (const ShapeCase& sc : cases) {
      for (DType dt : {DType::kF32, DType::kBF16}) {
        if (sc.rows == 16 && dt == DType::kBF16) continue;
        SCOPED_TRACE(op_label(fc) + " " + sc.why + " " + dtype_name(dt));
        const FamilyInputs fi = make_family_inputs(fc, sc.rows, sc.C, dt, 77);
        const FamilyOutputs base = run_family(fc, fi, 1);
        for (int threads : {2, 3}) {
          const FamilyOutputs o = run_family(fc, fi, threads);
          EXPECT_TRUE(bitwise_equal(o.y, base.y)) << threads << " threads: y";
          EXPECT_TRUE(bitwise_equal(o.rstd, base.rstd)) << threads << " threads: rstd";
          EXPECT_TRUE(bitwise_equal(o.dx, base.dx)) << threads << " threads: dx";
          EXPECT_TRUE(bitwise_equal(o.dgamma, base.dgamma)) << threads << " threads: dgamma";
          if (fc.residual) {
            EXPECT_TRUE(bitwise_equal(o.h, base.h)) << threads << " threads: h";
          }
          if (fc.norm == Norm::kLayerNorm) {
            EXPECT_TRUE(bitwise_equal(o.mean, base.mean)) << threads << " threads: mean";
            EXPECT_TRUE(bitwise_equal(o.dbeta, base.dbeta)) << threads << " threads: dbeta";
          }
        }
      }
    }
  }
}

TEST(LayerNormCpu, DispatchPicksBestTarget) {
  const auto targets = cpu::simd_targets();
  ASSERT_FALSE(targets.empty());
  EXPECT_EQ(cpu::active_simd_target(), targets.front());
}

}  // namespace
}  // namespace tilenorm
