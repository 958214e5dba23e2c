#include "test_util.h"

#include <cstdlib>
#include <cstring>

#include "reference/layernorm.h"

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

ForwardRef reference_forward(ConstTensorView x, ConstTensorView gamma, ConstTensorView beta,
                             double eps) {
  const int64_t rows = x.shape.rows(), C = x.shape.cols();
  const auto xv = reference::load_f64(x), gv = reference::load_f64(gamma);
  const auto bv = beta.empty() ? std::vector<double>{} : reference::load_f64(beta);
  ForwardRef r{std::vector<double>(xv.size()), std::vector<double>(rows),
               std::vector<double>(rows)};
  reference::layernorm_forward_f64(xv.data(), gv.data(), bv.empty() ? nullptr : bv.data(), rows, C,
                                   eps, r.y.data(), r.mean.data(), r.rstd.data());
  return r;
}

BackwardRef reference_backward(ConstTensorView x, ConstTensorView dy, ConstTensorView gamma,
                               ConstTensorView mean, ConstTensorView rstd) {
  const int64_t rows = x.shape.rows(), C = x.shape.cols();
  const auto xv = reference::load_f64(x), dyv = reference::load_f64(dy),
             gv = reference::load_f64(gamma), mv = reference::load_f64(mean),
             rv = reference::load_f64(rstd);
  BackwardRef r{std::vector<double>(xv.size()), std::vector<double>(C), std::vector<double>(C)};
  reference::layernorm_backward_f64(xv.data(), dyv.data(), gv.data(), mv.data(), rv.data(), rows, C,
                                    r.dx.data(), r.dgamma.data(), r.dbeta.data());
  return r;
}

::testing::AssertionResult AllClose(const char* name, ConstTensorView got,
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

}  // namespace tilenorm::testing
