// CUDA backend conformance: forward and backward against the float64 reference over shapes that
// hit every kernel path (register rows, clusters, split), f32/bf16 through the public API where
// the conformance registry (conformance_test, filter '*_cuda_*') lacks the shape or member, and
// every dtype through the backend's host entry (fp16; unaligned tensors; a capped grid and L2
// budget, so that small shapes loop and batch); constant inputs; determinism.
// Skipped, with the reason, when the backend is not built or no device is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "harness/conformance/tolerance.h"
#include "reference/norm.h"
#include "test_util.h"
#include "tilenorm/layernorm.h"
#include "tilenorm/rmsnorm.h"
#ifdef TILENORM_HAVE_CUDA
#include "cuda/norm_cuda.h"
#endif

namespace tilenorm {
namespace {

using testing::AllClose;
using testing::bitwise_equal;
using testing::constant_tensor;
using testing::random_tensor;

#ifdef TILENORM_HAVE_CUDA
#define TN_SKIP_WITHOUT_CUDA()                              \
  do {                                                      \
    std::string why;                                        \
    if (!cuda::device_available(&why)) GTEST_SKIP() << why; \
  } while (0)
#else
#define TN_SKIP_WITHOUT_CUDA() \
  GTEST_SKIP() << "CUDA backend not built (configure where nvcc is found: preset 'cuda')"
#endif

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Which members of the family the conformance registry (harness/conformance, run by
// conformance_test on every backend) runs on a shape of the same kind: every member, all but the
// residual ones, or none. The f16 tests (no public f16 API) run every shape; the f32 and bf16 ones
// only what the registry lacks.
enum class InRegistry { kAll, kNoResidual, kNone };

// The split path's long rows: C = 1M on a GPU; on the simulated device (preset cuda-sim: one
// fiber per CUDA thread, 33M of them in a 1M-column backward's finalize alone) 140000, still
// many segments a row.
#ifdef TILENORM_CUDA_SIM
constexpr int64_t kLongRow = 140000;
#else
constexpr int64_t kLongRow = 1048576;
#endif

// Every entry names the path or edge it covers (paths: src/cuda/norm_common.cuh).
struct Shape2 {
  int64_t rows, cols;
  const char* why;
  InRegistry registry = InRegistry::kNoResidual;
};
const Shape2 kShapes[] = {
    {1, 1, "1x1", InRegistry::kAll},
    {37, 1, "C = 1: zero variance, y = beta, dx = 0"},
    {19, 2, "C = 2"},
    {64, 31, "C < 32 and C % 8 != 0: a partial last chunk, unaligned row starts"},
    {64, 32, "C = 32"},
    {64, 33, "C = 33: one element past a 16-byte multiple", InRegistry::kAll},
    {100, 1000, "rows path, 4 row groups per block, every one full", InRegistry::kAll},
    {257, 1024, "rows path, 4 row groups per block, a partial last one (257 = 4 * 64 + 1)"},
    {9, 4100, "two chunks per thread"},
    {7, 8192, "the longest row one block holds"},
    {17, 8462, "C % 8 != 0 over a cluster of 2"},
    {3, 65536, "the longest row a cluster of 8 holds"},
    {5, 65537, "the shortest split row"},
    {3, kLongRow, "C = 1M (GPU): split path, many segments a row", InRegistry::kNone},
};

// Tolerances per dtype and direction: |got - ref| <= atol + rtol * |ref|, f32 and bf16 from the
// family's table (harness/conformance/tolerance.cc, the cuda backend-test rows, with their
// reasons).
struct Tolerances {
  Tolerance y;       // y rounded to the dtype after fp32 math
  Tolerance stats;   // mean, rstd: fp32 sums of up to 1M terms
  Tolerance dx;      // dx rounded to the dtype; |dx| <~ 5 for these inputs
  Tolerance dparam;  // dgamma, dbeta: fp32 sums over rows, not rounded to the dtype
};
Tolerances table_tolerances(DType d) {
  auto band = [&](conformance::Output output) {
    return conformance::tolerance({}, Backend::kCuda, d, output, conformance::Profile::kBackendTest)
        .tol;
  };
  return {band(conformance::Output::kY), band(conformance::Output::kStats),
          band(conformance::Output::kDx), band(conformance::Output::kDParams)};
}
const Tolerances kF32Tol = table_tolerances(DType::kF32);
const Tolerances kBF16Tol = table_tolerances(DType::kBF16);
// fp16 exists only at the device entry (no DType, so no row of the table): an 11-bit
// significand, rounding alone is 2^-12 relative; statistics and dgamma/dbeta as f32.
const Tolerances kF16Tol{{2e-3, 1e-3}, kF32Tol.stats, {4e-3, 1e-3}, kF32Tol.dparam};

const Tolerances& tolerances(DType d) { return d == DType::kBF16 ? kBF16Tol : kF32Tol; }

// Fresh inputs every run; TILENORM_TEST_SEED=<n> repeats a run (the seed is in every failure).
uint64_t test_seed() {
  static const uint64_t seed = []() -> uint64_t {
    if (const char* s = std::getenv("TILENORM_TEST_SEED")) return std::strtoull(s, nullptr, 10);
    return (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  }();
  return seed;
}

std::string label(const Shape2& s, const char* dtype) {
  return std::to_string(s.rows) + "x" + std::to_string(s.cols) + " " + dtype + " (" + s.why +
         "), seed " + std::to_string(test_seed());
}

// Inputs with a non-zero mean and distinct magnitudes per tensor.
struct Inputs {
  Tensor x, dy, gamma, beta;
};
Inputs make_inputs(int64_t rows, int64_t cols, DType dtype, uint64_t salt) {
  const uint64_t s = test_seed() ^ (salt * 0x9e3779b97f4a7c15ull);
  return {random_tensor({rows, cols}, dtype, s + 1, 1.0, 3.0),
          random_tensor({rows, cols}, dtype, s + 2, -1.0, 1.0),
          random_tensor({cols}, dtype, s + 3, 0.5, 1.5),
          random_tensor({cols}, dtype, s + 4, -0.5, 0.5)};
}

Tensor f32_tensor(const std::vector<double>& v, const Shape& shape) {
  Tensor t(shape, DType::kF32);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, v[static_cast<size_t>(i)]);
  return t;
}

struct Forward {
  Tensor y, mean, rstd;
  std::string path;
};
Forward run_forward(const Inputs& in, double eps = kDefaultEps) {
  const Shape& shape = in.x.shape();
  Forward f{Tensor(shape, in.x.dtype()), Tensor(shape.leading(), DType::kF32),
            Tensor(shape.leading(), DType::kF32), ""};
  f.y.fill(kNaN);
  f.mean.fill(kNaN);
  f.rstd.fill(kNaN);
  RunReport report;
  const Status st =
      layernorm_forward(Backend::kCuda, {in.x.view(), in.gamma.view(), in.beta.view(), eps},
                        {f.y.view(), f.mean.view(), f.rstd.view()}, {0, &report});
  EXPECT_TRUE(st.ok()) << st.to_string();
  f.path = report.path;
  return f;
}

struct Backward {
  Tensor dx, dgamma, dbeta;
  std::string path;
};
Backward run_backward(const Inputs& in, const Tensor& mean, const Tensor& rstd) {
  const Shape& shape = in.x.shape();
  const Shape c{shape.cols()};
  Backward b{Tensor(shape, in.x.dtype()), Tensor(c, DType::kF32), Tensor(c, DType::kF32), ""};
  b.dx.fill(kNaN);
  b.dgamma.fill(kNaN);
  b.dbeta.fill(kNaN);
  RunReport report;
  const Status st = layernorm_backward(
      Backend::kCuda, {in.x.view(), in.dy.view(), in.gamma.view(), mean.view(), rstd.view()},
      {b.dx.view(), b.dgamma.view(), b.dbeta.view()}, {0, &report});
  EXPECT_TRUE(st.ok()) << st.to_string();
  b.path = report.path;
  return b;
}

void check_shape(const Shape2& s, DType dtype) {
  SCOPED_TRACE(label(s, dtype_name(dtype)));
  const Tolerances& tol = tolerances(dtype);
  const Inputs in =
      make_inputs(s.rows, s.cols, dtype, static_cast<uint64_t>(s.cols * 131 + s.rows));

  const testing::ForwardRef fr =
      testing::reference_forward(in.x.view(), in.gamma.view(), in.beta.view(), kDefaultEps);
  const Forward f = run_forward(in);
  EXPECT_TRUE(AllClose("y", f.y.view(), fr.y, tol.y));
  EXPECT_TRUE(AllClose("mean", f.mean.view(), fr.mean, tol.stats));
  EXPECT_TRUE(AllClose("rstd", f.rstd.view(), fr.rstd, tol.stats));

  // Backward on the reference's statistics (rounded to f32), then on the forward's own.
  const Tensor ref_mean = f32_tensor(fr.mean, in.x.shape().leading());
  const Tensor ref_rstd = f32_tensor(fr.rstd, in.x.shape().leading());
  for (const auto* stats : {"reference stats", "own stats"}) {
    SCOPED_TRACE(stats);
    const bool own = stats[0] == 'o';
    const Tensor& mean = own ? f.mean : ref_mean;
    const Tensor& rstd = own ? f.rstd : ref_rstd;
    const testing::BackwardRef br = testing::reference_backward(
        in.x.view(), in.dy.view(), in.gamma.view(), mean.view(), rstd.view());
    const Backward b = run_backward(in, mean, rstd);
    EXPECT_TRUE(AllClose("dx", b.dx.view(), br.dx, tol.dx));
    EXPECT_TRUE(AllClose("dgamma", b.dgamma.view(), br.dgamma, tol.dparam));
    EXPECT_TRUE(AllClose("dbeta", b.dbeta.view(), br.dbeta, tol.dparam));
  }
}

// LayerNorm on the shapes the registry lacks.
TEST(LayerNormCuda, MatchesReferenceF32) {
  TN_SKIP_WITHOUT_CUDA();
  for (const Shape2& s : kShapes)
    if (s.registry == InRegistry::kNone) check_shape(s, DType::kF32);
}

TEST(LayerNormCuda, MatchesReferenceBF16) {
  TN_SKIP_WITHOUT_CUDA();
  for (const Shape2& s : kShapes)
    if (s.registry == InRegistry::kNone) check_shape(s, DType::kBF16);
}

// RMSNorm and the fused residual add through the public API (rmsnorm.h; layernorm.h's residual,
// h and dh_in): forward, then backward on the forward's own statistics, each against the float64
// reference; h exactly x + residual rounded to the dtype (what the reference normalizes).
void check_family(const Shape2& s, DType dtype, const NormOp& v) {
  SCOPED_TRACE(label(s, dtype_name(dtype)) + ", " + testing::op_label(v));
  const Tolerances& tol = tolerances(dtype);
  const bool centred = v.norm == Norm::kLayerNorm;
  const Inputs in =
      make_inputs(s.rows, s.cols, dtype, static_cast<uint64_t>(s.cols * 131 + s.rows));
  const uint64_t salt = test_seed() ^ static_cast<uint64_t>(s.cols * 7919 + s.rows);
  const Tensor residual = random_tensor({s.rows, s.cols}, dtype, salt + 5, -1.0, 1.0);
  const Tensor dh_in = random_tensor({s.rows, s.cols}, dtype, salt + 6, -1.0, 1.0);
  const ConstTensorView res = v.residual ? residual.cview() : ConstTensorView{};
  const ConstTensorView dh = v.residual ? dh_in.cview() : ConstTensorView{};
  std::vector<double> h = reference::load_f64(in.x.view());
  if (v.residual) {
    const std::vector<double> r = reference::load_f64(residual.view());
    for (size_t i = 0; i < h.size(); ++i) h[i] += r[i];
    Tensor stored({s.rows, s.cols}, dtype);
    reference::store_f64(stored.view(), h);
    h = reference::load_f64(stored.view());
  }
  const std::vector<double> gamma = reference::load_f64(in.gamma.view()),
                            beta = reference::load_f64(in.beta.view()),
                            dy = reference::load_f64(in.dy.view());
  const size_t n = h.size(), c = static_cast<size_t>(s.cols), r = static_cast<size_t>(s.rows);

  Tensor y, mean, rstd, hout;  // mean empty for RMSNorm, h without a residual
  if (centred) {
    LayerNormForwardResult f;
    const Status st = layernorm_forward(
        Backend::kCuda, {in.x.view(), in.gamma.view(), in.beta.view(), kDefaultEps, res}, &f);
    ASSERT_TRUE(st.ok()) << st.to_string();
    y = std::move(f.y), mean = std::move(f.mean), rstd = std::move(f.rstd), hout = std::move(f.h);
  } else {
    RmsNormForwardResult f;
    const Status st =
        rmsnorm_forward(Backend::kCuda, {in.x.view(), in.gamma.view(), kDefaultEps, res}, &f);
    ASSERT_TRUE(st.ok()) << st.to_string();
    y = std::move(f.y), rstd = std::move(f.rrms), hout = std::move(f.h);
  }
  std::vector<double> ry(n), rmean(r), rrstd(r);
  reference::norm_forward_f64(v.norm, h.data(), gamma.data(), centred ? beta.data() : nullptr,
                              s.rows, s.cols, kDefaultEps, ry.data(), rmean.data(), rrstd.data());
  if (v.residual) {
    EXPECT_TRUE(AllClose("h", hout.view(), h, {0, 0}));
  }
  EXPECT_TRUE(AllClose("y", y.view(), ry, tol.y));
  if (centred) {
    EXPECT_TRUE(AllClose("mean", mean.view(), rmean, tol.stats));
  }
  EXPECT_TRUE(AllClose(centred ? "rstd" : "rrms", rstd.view(), rrstd, tol.stats));

  const ConstTensorView x = v.residual ? hout.cview() : in.x.view();
  Tensor dx, dgamma, dbeta;
  if (centred) {
    LayerNormBackwardResult b;
    const Status st = layernorm_backward(
        Backend::kCuda, {x, in.dy.view(), in.gamma.view(), mean.view(), rstd.view(), dh}, &b);
    ASSERT_TRUE(st.ok()) << st.to_string();
    dx = std::move(b.dx), dgamma = std::move(b.dgamma), dbeta = std::move(b.dbeta);
  } else {
    RmsNormBackwardResult b;
    const Status st =
        rmsnorm_backward(Backend::kCuda, {x, in.dy.view(), in.gamma.view(), rstd.view(), dh}, &b);
    ASSERT_TRUE(st.ok()) << st.to_string();
    dx = std::move(b.dx), dgamma = std::move(b.dgamma);
  }
  const std::vector<double> md = centred ? reference::load_f64(mean.view()) : std::vector<double>{},
                            rd = reference::load_f64(rstd.view()),
                            dhv = v.residual ? reference::load_f64(dh) : std::vector<double>{};
  std::vector<double> rdx(n), rdg(c), rdb(c);
  reference::norm_backward_f64(v.norm, h.data(), dy.data(), gamma.data(),
                               centred ? md.data() : nullptr, rd.data(),
                               v.residual ? dhv.data() : nullptr, s.rows, s.cols, rdx.data(),
                               rdg.data(), centred ? rdb.data() : nullptr);
  EXPECT_TRUE(AllClose("dx", dx.view(), rdx, tol.dx));
  EXPECT_TRUE(AllClose("dgamma", dgamma.view(), rdg, tol.dparam));
  if (centred) {
    EXPECT_TRUE(AllClose("dbeta", dbeta.view(), rdb, tol.dparam));
  }
}

// The rest of the family on the shapes where the registry lacks the member.
bool in_registry(const Shape2& s, const NormOp& v) {
  return s.registry == InRegistry::kAll || (s.registry == InRegistry::kNoResidual && !v.residual);
}

TEST(LayerNormCuda, FamilyMatchesReferenceF32) {
  TN_SKIP_WITHOUT_CUDA();
  for (const NormOp& v : kNormOps)
    if (v.norm != Norm::kLayerNorm || v.residual)
      for (const Shape2& s : kShapes)
        if (!in_registry(s, v)) check_family(s, DType::kF32, v);
}

TEST(LayerNormCuda, FamilyMatchesReferenceBF16) {
  TN_SKIP_WITHOUT_CUDA();
  for (const NormOp& v : kNormOps)
    if (v.norm != Norm::kLayerNorm || v.residual)
      for (const Shape2& s : kShapes)
        if (!in_registry(s, v)) check_family(s, DType::kBF16, v);
}

TEST(LayerNormCuda, PathsByRowLength) {
  TN_SKIP_WITHOUT_CUDA();
  // Clusters need sm_90, and the backend refuses older devices (they have no kernel image), so
  // every device that gets here runs rows past one block over a cluster.
#ifdef TILENORM_HAVE_CUDA
  cuda::DeviceInfo dev;
  ASSERT_TRUE(cuda::current_device(&dev).ok());
  ASSERT_GE(dev.cc_major, 9) << dev.name << ": device_available admitted a device below sm_90";
#endif
  const struct {
    int64_t cols;
    std::string path;
  } cases[] = {{1024, "rows"},     {8192, "rows"},     {8462, "cluster"}, {16384, "cluster"},
               {20000, "cluster"}, {65536, "cluster"}, {65537, "split"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.cols);
    const Inputs in = make_inputs(2, c.cols, DType::kBF16, 7);
    const Forward f = run_forward(in);
    const Backward b = run_backward(in, f.mean, f.rstd);
    EXPECT_EQ(f.path, c.path);
    EXPECT_EQ(b.path, c.path);
  }
}

// dy = 1, gamma = 1, x = 0.5, eps = 1e-6: every row is constant, so xhat = 0 exactly and
// dx = 0, dgamma = 0, dbeta = rows exactly, on every path.
TEST(LayerNormCuda, ConstantInputs) {
  TN_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::kF32, DType::kBF16})
    for (const Shape2& s : {Shape2{64, 1024, "rows"}, Shape2{9, 8462, "cluster"},
                            Shape2{3, 65536, "cluster of 8"}, Shape2{2, kLongRow, "split"}}) {
      SCOPED_TRACE(label(s, dtype_name(dtype)));
      const Inputs in{constant_tensor({s.rows, s.cols}, dtype, 0.5),
                      constant_tensor({s.rows, s.cols}, dtype, 1.0),
                      constant_tensor({s.cols}, dtype, 1.0), constant_tensor({s.cols}, dtype, 0.0)};
      const Forward f = run_forward(in, 1e-6);
      EXPECT_TRUE(AllClose("y", f.y.view(), std::vector<double>(s.rows * s.cols, 0.0), {0, 0}));
      EXPECT_TRUE(AllClose("mean", f.mean.view(), std::vector<double>(s.rows, 0.5), {0, 0}));
      EXPECT_TRUE(AllClose("rstd", f.rstd.view(), std::vector<double>(s.rows, 1000.0), {0, 1e-5}));
      const Backward b = run_backward(in, f.mean, f.rstd);
      EXPECT_TRUE(AllClose("dx", b.dx.view(), std::vector<double>(s.rows * s.cols, 0.0), {0, 0}));
      EXPECT_TRUE(AllClose("dgamma", b.dgamma.view(), std::vector<double>(s.cols, 0.0), {0, 0}));
      EXPECT_TRUE(AllClose("dbeta", b.dbeta.view(),
                           std::vector<double>(s.cols, static_cast<double>(s.rows)), {0, 0}));
    }
}

TEST(LayerNormCuda, Deterministic) {
  TN_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::kF32, DType::kBF16})
    for (const Shape2& s : {Shape2{4096, 1024, "many partial rows of dgamma"},
                            Shape2{64, 8462, "cluster"}, Shape2{4, kLongRow, "split"}}) {
      SCOPED_TRACE(label(s, dtype_name(dtype)));
      const Inputs in = make_inputs(s.rows, s.cols, dtype, 11);
      const Forward f1 = run_forward(in), f2 = run_forward(in);
      EXPECT_TRUE(bitwise_equal(f1.y, f2.y));
      EXPECT_TRUE(bitwise_equal(f1.mean, f2.mean));
      EXPECT_TRUE(bitwise_equal(f1.rstd, f2.rstd));
      const Backward b1 = run_backward(in, f1.mean, f1.rstd),
                     b2 = run_backward(in, f1.mean, f1.rstd);
      EXPECT_TRUE(bitwise_equal(b1.dx, b2.dx));
      EXPECT_TRUE(bitwise_equal(b1.dgamma, b2.dgamma));
      EXPECT_TRUE(bitwise_equal(b1.dbeta, b2.dbeta));
    }
}

#ifdef TILENORM_HAVE_CUDA

// IEEE binary16 <-> float on the host (round to nearest even), for the fp16 tests.
uint16_t float_to_half(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to Inf
  if (abs < 0x38800000u) {                                               // subnormal or 0
    const float a = std::fabs(f) * 16777216.0f;  // exact: scale by 2^24 = 1 / smallest subnormal
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a)));
  }
  const uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u);  // round the 13 dropped bits to even
  return static_cast<uint16_t>(sign | ((r - 0x38000000u) >> 13));
}

double half_to_double(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double s = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 0) return s * std::ldexp(m, -24);
  if (e == 31) return m ? kNaN : s * std::numeric_limits<double>::infinity();
  return s * std::ldexp(1024 + m, e - 25);
}

std::vector<uint16_t> random_half(size_t n, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<uint16_t> v(n);
  for (auto& e : v) e = float_to_half(static_cast<float>(dist(rng)));
  return v;
}

std::vector<double> to_double(const std::vector<uint16_t>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = half_to_double(v[i]);
  return d;
}

ConstTensorView f32_view(const std::vector<float>& v) {
  return {v.data(), Shape{static_cast<int64_t>(v.size())}, DType::kF32};
}

cuda::NormKind cuda_norm(Norm n) {
  return n == Norm::kRmsNorm ? cuda::NormKind::kRmsNorm : cuda::NormKind::kLayerNorm;
}

const char* elem_name(cuda::ElemType e) {
  return e == cuda::ElemType::kF32 ? "f32" : e == cuda::ElemType::kBF16 ? "bf16" : "f16";
}

// A tensor in the kernels' element type (fp16 has no tilenorm DType): its bytes and the exact
// values of its elements.
struct HostData {
  std::vector<unsigned char> bits;
  std::vector<double> values;
};

HostData random_host(cuda::ElemType e, size_t n, uint64_t seed, double lo, double hi) {
  HostData d;
  if (e == cuda::ElemType::kF16) {
    const std::vector<uint16_t> h = random_half(n, seed, lo, hi);
    d.bits.resize(2 * n);
    std::memcpy(d.bits.data(), h.data(), 2 * n);
    d.values = to_double(h);
  } else {
    const DType t = e == cuda::ElemType::kF32 ? DType::kF32 : DType::kBF16;
    const Tensor x = random_tensor({static_cast<int64_t>(n)}, t, seed, lo, hi);
    const auto* p = static_cast<const unsigned char*>(x.raw());
    d.bits.assign(p, p + x.nbytes());
    d.values = reference::load_f64(x.view());
  }
  return d;
}

// The values of an output in element type e, as a float64 view for AllClose.
struct HostValues {
  std::vector<double> v;
  ConstTensorView view() const {
    return {v.data(), Shape{static_cast<int64_t>(v.size())}, DType::kF64};
  }
};
HostValues host_values(cuda::ElemType e, const std::vector<unsigned char>& bits) {
  const int64_t n = static_cast<int64_t>(bits.size() / cuda::elem_size(e));
  if (e != cuda::ElemType::kF16) {
    const DType t = e == cuda::ElemType::kF32 ? DType::kF32 : DType::kBF16;
    return {reference::load_f64(ConstTensorView{bits.data(), Shape{n}, t})};
  }
  std::vector<uint16_t> h(static_cast<size_t>(n));
  std::memcpy(h.data(), bits.data(), bits.size());
  return {to_double(h)};
}

// Bits and values of `v` rounded to element type e, as a kernel stores them.
HostData round_host(cuda::ElemType e, const std::vector<double>& v) {
  HostData d;
  if (e == cuda::ElemType::kF16) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(static_cast<float>(v[i]));
    d.bits.resize(2 * v.size());
    std::memcpy(d.bits.data(), h.data(), d.bits.size());
    d.values = to_double(h);
  } else {
    Tensor t({static_cast<int64_t>(v.size())},
             e == cuda::ElemType::kF32 ? DType::kF32 : DType::kBF16);
    reference::store_f64(t.view(), v);
    const auto* p = static_cast<const unsigned char*>(t.raw());
    d.bits.assign(p, p + t.nbytes());
    d.values = reference::load_f64(t.view());
  }
  return d;
}

// Forward, then backward on the forward's own statistics, through the host entry (every element
// type; tensors `misalign` elements off a 16-byte boundary; the Context capped by `limits`), each
// against the float64 reference, for one member of the family: with a residual the forward also
// writes h (compared exactly with x + residual rounded to the dtype, which the reference
// normalizes) and the backward takes h as x and adds dh_in; x is drawn from [x_lo, x_lo + 2).
// Returns the paths taken.
struct HostRun {
  cuda::PathInfo fwd, bwd;
};
HostRun check_host(cuda::ElemType e, const Shape2& s, int misalign, const cuda::Limits& limits = {},
                   const NormOp& v = kNormOps[0], double x_lo = 1.0) {
  SCOPED_TRACE(label(s, elem_name(e)) + ", " + testing::op_label(v) + ", misalign " +
               std::to_string(misalign) + ", max_groups " + std::to_string(limits.max_groups) +
               ", l2_bytes " + std::to_string(limits.l2_bytes) + ", x from " +
               std::to_string(x_lo));
  const Tolerances& tol = e == cuda::ElemType::kF16    ? kF16Tol
                          : e == cuda::ElemType::kBF16 ? kBF16Tol
                                                       : kF32Tol;
  const bool centred = v.norm == Norm::kLayerNorm;
  const size_t n = static_cast<size_t>(s.rows * s.cols), c = s.cols, r = s.rows;
  const size_t es = cuda::elem_size(e);
  const uint64_t seed =
      test_seed() ^ static_cast<uint64_t>(s.cols * 977 + s.rows * 31 + misalign + int(e) * 7);
  const HostData x = random_host(e, n, seed + 1, x_lo, x_lo + 2.0),
                 dy = random_host(e, n, seed + 2, -1.0, 1.0),
                 gamma = random_host(e, c, seed + 3, 0.5, 1.5),
                 beta = random_host(e, c, seed + 4, -0.5, 0.5);
  HostData residual, dh_in, h = x;
  if (v.residual) {
    residual = random_host(e, n, seed + 5, -1.0, 1.0);
    dh_in = random_host(e, n, seed + 6, -1.0, 1.0);
    std::vector<double> sum(n);
    for (size_t i = 0; i < n; ++i) sum[i] = x.values[i] + residual.values[i];
    h = round_host(e, sum);
  }
  auto data = [](const HostData& d) { return d.bits.empty() ? nullptr : d.bits.data(); };
  HostRun run;

  std::vector<double> ry(n), rmean(r), rrstd(r);
  reference::norm_forward_f64(v.norm, h.values.data(), gamma.values.data(),
                              centred ? beta.values.data() : nullptr, s.rows, s.cols, kDefaultEps,
                              ry.data(), rmean.data(), rrstd.data());
  std::vector<unsigned char> y(n * es, 0xff), hout(v.residual ? n * es : 0, 0xff);  // NaN bits
  std::vector<float> mean(r, NAN), rstd(r, NAN);
  cuda::HostForward fwd;
  fwd.args = {.dtype = e,
              .norm = cuda_norm(v.norm),
              .x = x.bits.data(),
              .residual = data(residual),
              .gamma = gamma.bits.data(),
              .beta = centred ? beta.bits.data() : nullptr,
              .y = y.data(),
              .h = v.residual ? hout.data() : nullptr,
              .mean = centred ? mean.data() : nullptr,
              .rstd = rstd.data(),
              .rows = s.rows,
              .cols = s.cols,
              .eps = static_cast<float>(kDefaultEps)};
  fwd.misalign_elems = misalign;
  fwd.limits = limits;
  const cuda::CudaError fe = cuda::norm_forward_host(fwd, &run.fwd);
  EXPECT_TRUE(fe.ok()) << cuda::cuda_error_string(fe);
  if (!fe.ok()) return run;
  if (v.residual) {
    EXPECT_TRUE(AllClose("h", host_values(e, hout).view(), h.values, {0, 0}));
  }
  EXPECT_TRUE(AllClose("y", host_values(e, y).view(), ry, tol.y));
  if (centred) {
    EXPECT_TRUE(AllClose("mean", f32_view(mean), rmean, tol.stats));
  }
  EXPECT_TRUE(AllClose(centred ? "rstd" : "rrms", f32_view(rstd), rrstd, tol.stats));

  const std::vector<double> md(mean.begin(), mean.end()), rd(rstd.begin(), rstd.end());
  std::vector<double> rdx(n), rdg(c), rdb(c);
  reference::norm_backward_f64(v.norm, h.values.data(), dy.values.data(), gamma.values.data(),
                               centred ? md.data() : nullptr, rd.data(),
                               v.residual ? dh_in.values.data() : nullptr, s.rows, s.cols,
                               rdx.data(), rdg.data(), centred ? rdb.data() : nullptr);
  std::vector<unsigned char> dx(n * es, 0xff);
  std::vector<float> dgamma(c, NAN), dbeta(c, NAN);
  cuda::HostBackward bwd;
  bwd.args = {.dtype = e,
              .norm = cuda_norm(v.norm),
              .x = h.bits.data(),
              .dy = dy.bits.data(),
              .gamma = gamma.bits.data(),
              .mean = centred ? mean.data() : nullptr,
              .rstd = rstd.data(),
              .dh_in = data(dh_in),
              .dx = dx.data(),
              .dgamma = dgamma.data(),
              .dbeta = centred ? dbeta.data() : nullptr,
              .rows = s.rows,
              .cols = s.cols};
  bwd.misalign_elems = misalign;
  bwd.limits = limits;
  const cuda::CudaError be = cuda::norm_backward_host(bwd, &run.bwd);
  EXPECT_TRUE(be.ok()) << cuda::cuda_error_string(be);
  if (!be.ok()) return run;
  EXPECT_TRUE(AllClose("dx", host_values(e, dx).view(), rdx, tol.dx));
  EXPECT_TRUE(AllClose("dgamma", f32_view(dgamma), rdg, tol.dparam));
  if (centred) {
    EXPECT_TRUE(AllClose("dbeta", f32_view(dbeta), rdb, tol.dparam));
  }
  return run;
}

TEST(LayerNormCuda, HalfConversionsRoundTrip) {
  // Host-side helpers of this file; no device needed.
  EXPECT_EQ(half_to_double(float_to_half(1.f)), 1.0);
  EXPECT_EQ(half_to_double(float_to_half(65504.f)), 65504.0);
  EXPECT_EQ(half_to_double(float_to_half(5.9604645e-08f)), std::ldexp(1.0, -24));
  EXPECT_EQ(half_to_double(float_to_half(-2.5f)), -2.5);
  EXPECT_EQ(half_to_double(float_to_half(1.f + 1.f / 2048)), 1.0);  // ties go to even
  EXPECT_EQ(half_to_double(float_to_half(1.f + 3.f / 2048)), 1.0 + 2.0 / 1024);
  EXPECT_EQ(half_to_double(float_to_half(65520.f)), std::numeric_limits<double>::infinity());
}

TEST(LayerNormCuda, HostDataRoundTrip) {
  // Host-side helpers of this file: outputs are decoded as the inputs were made; no device needed.
  for (cuda::ElemType e : {cuda::ElemType::kF32, cuda::ElemType::kBF16, cuda::ElemType::kF16}) {
    SCOPED_TRACE(elem_name(e));
    const HostData d = random_host(e, 257, 99, -3.0, 3.0);
    ASSERT_EQ(d.bits.size(), 257 * cuda::elem_size(e));
    EXPECT_EQ(host_values(e, d.bits).v, d.values);
    EXPECT_NE(d.values.front(), d.values.back());
  }
}

TEST(LayerNormCuda, MatchesReferenceF16) {
  TN_SKIP_WITHOUT_CUDA();
  for (const NormOp& v : kNormOps)
    for (const Shape2& s : kShapes) check_host(cuda::ElemType::kF16, s, 0, {}, v);
}

// Row starts off 16 bytes for every tensor: 2-, 4- and 8-byte accesses instead of 16. The
// residual variants add residual, h and dh_in to the tensors whose row starts set the width.
TEST(LayerNormCuda, UnalignedTensorsF16) {
  TN_SKIP_WITHOUT_CUDA();
  for (const NormOp& v : {kNormOps[0], kNormOps[3]})
    for (int misalign : {1, 2, 4})
      for (const Shape2& s :
           {Shape2{33, 1024, "rows"}, Shape2{5, 8462, "cluster"}, Shape2{3, 70000, "split"}})
        check_host(cuda::ElemType::kF16, s, misalign, {}, v);
}

TEST(LayerNormCuda, UnalignedTensorsF32) {
  TN_SKIP_WITHOUT_CUDA();
  for (const NormOp& v : {kNormOps[0], kNormOps[2]})
    for (int misalign : {1, 2})
      for (const Shape2& s :
           {Shape2{17, 8192, "rows"}, Shape2{5, 8462, "cluster"}, Shape2{3, 70000, "split"}})
        check_host(cuda::ElemType::kF32, s, misalign, {}, v);
}

// Rows far from 0 (x in 1e4 + [-1, 1), as the registry's large-offset case): an fp32 sum of the
// raw row would put ~1e-3 into the mean and so into every y, past the f32 band; the kernels sum
// h - h0 for the row's first element h0 and centre as (h - h0) - mean(h - h0). Every path, with
// and without the residual (h0 then is x + residual as stored); the grid capped at 2 groups so
// that the register paths' prefetch of the next row's h0 is covered too.
TEST(LayerNormCuda, LargeOffsetF32) {
  TN_SKIP_WITHOUT_CUDA();
  cuda::Limits limits;
  limits.max_groups = 2;
  for (const NormOp& v : {kNormOps[0], kNormOps[2]})
    for (const Shape2& s : {Shape2{16, 1024, "rows"}, Shape2{5, 4100, "rows, two chunks a thread"},
                            Shape2{5, 8462, "cluster"}, Shape2{3, 65537, "split"}})
      check_host(cuda::ElemType::kF32, s, 0, limits, v, 1e4 - 1.0);
}

// The persistent grid capped at 2 groups (blocks, or clusters), so every group loops over several
// rows: the next row's prefetch, reuse of the reduction buffers, and dgamma/dbeta summed across
// rows in registers, then over groups. The split cases also cut the L2 budget to
// batch_rows * 6 * C * es bytes: forward batches of 3 * batch_rows rows, backward batches of
// batch_rows, and 2 blocks per segment carrying dgamma/dbeta from batch to batch.
struct LimitedCase {
  const char* path;
  int cluster;         // blocks per row (register paths)
  int64_t batch_rows;  // backward split batch (split path)
  Shape2 shape;
};
const LimitedCase kLimitedCases[] = {
    {"rows", 1, 0, {69, 203, "16 row groups a block; groups loop 3 and 2 times, the last partly"}},
    {"rows", 1, 0, {25, 1001, "4 row groups a block; groups loop 4 and 3 times, the last 1 row"}},
    {"rows", 1, 0, {7, 4100, "two chunks a thread (16-bit: next row prefetched); 4 and 3 times"}},
    {"cluster", 2, 0, {7, 8462, "cluster of 2; clusters loop 4 and 3 times"}},
    {"cluster", 4, 0, {7, 20000, "cluster of 4; clusters loop 4 and 3 times"}},
    {"cluster", 8, 0, {5, 65536, "cluster of 8; clusters loop 3 and 2 times"}},
    {"split", 0, 3, {13, 65537, "forward batches 9+4, backward 3+3+3+3+1: 2 rows in block 0"}},
    {"split", 0, 2, {7, 300000, "forward batches 6+1, backward 2+2+2+1"}},
};

// Every member of the family on every limited case. The forward split batches a third as many
// rows with a residual (its L2 share holds x, residual and h, not x alone).
void check_limited(cuda::ElemType e) {
  for (const NormOp& v : kNormOps)
    for (const LimitedCase& k : kLimitedCases) {
      const Shape2& s = k.shape;
      SCOPED_TRACE(label(s, elem_name(e)) + ", " + testing::op_label(v));
      cuda::Limits limits;
      limits.max_groups = 2;
      limits.l2_bytes = k.batch_rows * 6 * s.cols * static_cast<int64_t>(cuda::elem_size(e));
      const HostRun run = check_host(e, s, 0, limits, v);
      EXPECT_EQ(std::string(run.fwd.path), k.path);
      EXPECT_EQ(std::string(run.bwd.path), k.path);
      if (k.batch_rows == 0) {
        EXPECT_EQ(run.fwd.cluster, k.cluster);
        EXPECT_EQ(run.bwd.cluster, k.cluster);
        EXPECT_EQ(run.fwd.grid, 2 * k.cluster) << "the grid cap did not hold";
        EXPECT_EQ(run.bwd.grid, 2 * k.cluster) << "the grid cap did not hold";
      } else {
        // grid = segments * rows of a batch (forward), segments * blocks per segment (backward);
        // the backward takes 2 blocks per segment on any device of more than 74 SMs.
        const int64_t fwd_batch = std::min((v.residual ? 1 : 3) * k.batch_rows, s.rows);
        EXPECT_EQ(run.fwd.grid, run.fwd.cluster * fwd_batch);
        EXPECT_EQ(run.fwd.batches, (s.rows + fwd_batch - 1) / fwd_batch);
        EXPECT_EQ(run.bwd.grid, run.bwd.cluster * 2);
        EXPECT_EQ(run.bwd.batches, (s.rows + k.batch_rows - 1) / k.batch_rows);
      }
    }
}

TEST(LayerNormCuda, LimitedGridF32) {
  TN_SKIP_WITHOUT_CUDA();
  check_limited(cuda::ElemType::kF32);
}

TEST(LayerNormCuda, LimitedGridBF16) {
  TN_SKIP_WITHOUT_CUDA();
  check_limited(cuda::ElemType::kBF16);
}

TEST(LayerNormCuda, LimitedGridF16) {
  TN_SKIP_WITHOUT_CUDA();
  check_limited(cuda::ElemType::kF16);
}

#endif  // TILENORM_HAVE_CUDA

}  // namespace
}  // namespace tilenorm
