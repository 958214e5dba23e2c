// Float64 forward of the norm family: mean (LayerNorm) and the biased variance by two passes over
// the row (common/row_stats.h), then y.
#include <cmath>
#include <vector>

#include "backends.h"
#include "common/row_stats.h"
#include "reference/norm.h"

namespace tilenorm::reference {

void norm_forward_f64(Norm norm, const double* x, const double* gamma, const double* beta,
                      int64_t rows, int64_t C, double eps, double* y, double* mean, double* rstd) {
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = x + r * C;
    double mu, rs;
    row_stats_f64(norm, xr, C, eps, &mu, &rs);
    if (mean) mean[r] = mu;
    rstd[r] = rs;
    if (y == nullptr) continue;
    for (int64_t i = 0; i < C; ++i)
      y[r * C + i] = (xr[i] - mu) * rs * gamma[i] + (beta ? beta[i] : 0.0);
  }
}

std::vector<double> load_f64(const ConstTensorView& t) {
  std::vector<double> v(static_cast<size_t>(t.shape.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = tensor_get(t, static_cast<int64_t>(i));
  return v;
}

void store_f64(const TensorView& t, const std::vector<double>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    switch (t.dtype) {
      case DType::kF32:
        t.as<float>()[k] = static_cast<float>(v[i]);
        break;
      case DType::kBF16:
        t.as<bf16>()[k] = float_to_bf16(static_cast<float>(v[i]));
        break;
      case DType::kF64:
        t.as<double>()[k] = v[i];
        break;
    }
  }
}

Status norm_forward(const NormForwardArgs& args, const NormForwardOutputs& out,
                    const NormOptions& opt) {
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  auto x = load_f64(args.x);
  if (!args.residual.empty()) {
    const auto residual = load_f64(args.residual);
    for (size_t i = 0; i < x.size(); ++i) x[i] += residual[i];
    // h is stored in the data dtype, and normalized as stored (what the backward will read).
    store_f64(out.h, x);
    x = load_f64(out.h);
  }
  const auto gamma = load_f64(args.gamma);
  const auto beta = args.beta.empty() ? std::vector<double>{} : load_f64(args.beta);
  std::vector<double> y(x.size()), mean(rows), rstd(rows);
  norm_forward_f64(args.norm, x.data(), gamma.data(), beta.empty() ? nullptr : beta.data(), rows, C,
                   args.eps, y.data(), mean.data(), rstd.data());
  store_f64(out.y, y);
  if (!out.mean.empty()) store_f64(out.mean, mean);
  store_f64(out.rstd, rstd);
  if (opt.report) opt.report->path = "float64";
  return {};
}

}  // namespace tilenorm::reference
