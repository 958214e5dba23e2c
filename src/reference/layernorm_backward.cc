// Float64 LayerNorm backward: x-hat recomputed from the saved mean/rstd, both row sums, dx,
// and the column sums dgamma, dbeta.
#include <vector>

#include "backends.h"
#include "reference/layernorm.h"

namespace tilenorm::reference {

void layernorm_backward_f64(const double* x, const double* dy, const double* gamma,
                            const double* mean, const double* rstd, int64_t rows, int64_t C,
                            double* dx, double* dgamma, double* dbeta) {
  for (int64_t i = 0; i < C; ++i) dgamma[i] = dbeta[i] = 0;
  const double inv_c = 1.0 / static_cast<double>(C);
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = x + r * C;
    const double* dyr = dy + r * C;
    double s1 = 0, s2 = 0;  // sum(g), sum(g * xhat)
    for (int64_t i = 0; i < C; ++i) {
      const double xhat = (xr[i] - mean[r]) * rstd[r];
      const double g = dyr[i] * gamma[i];
      s1 += g;
      s2 += g * xhat;
      dgamma[i] += dyr[i] * xhat;
      dbeta[i] += dyr[i];
    }
    s1 *= inv_c;
    s2 *= inv_c;
    for (int64_t i = 0; i < C; ++i) {
      const double xhat = (xr[i] - mean[r]) * rstd[r];
      dx[r * C + i] = rstd[r] * (dyr[i] * gamma[i] - s1 - xhat * s2);
    }
  }
}

Status layernorm_backward(const LayerNormBackwardArgs& args, const LayerNormBackwardOutputs& out,
                          const LayerNormOptions& opt) {
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const auto x = load_f64(args.x), dy = load_f64(args.dy), gamma = load_f64(args.gamma);
  const auto mean = load_f64(args.mean), rstd = load_f64(args.rstd);
  std::vector<double> dx(x.size()), dgamma(C), dbeta(C);
  layernorm_backward_f64(x.data(), dy.data(), gamma.data(), mean.data(), rstd.data(), rows, C,
                         dx.data(), dgamma.data(), dbeta.data());
  store_f64(out.dx, dx);
  store_f64(out.dgamma, dgamma);
  store_f64(out.dbeta, dbeta);
  if (opt.report) opt.report->path = "float64";
  return {};
}

}  // namespace tilenorm::reference
