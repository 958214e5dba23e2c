// Float64 backward of the family (LayerNorm, RMSNorm): x-hat recomputed from the saved mean and
// rstd (rrms), the row sums, dx, and the column sums dgamma, dbeta.
#include <vector>

#include "backends.h"
#include "reference/norm.h"

namespace tilenorm::reference {

void norm_backward_f64(Norm norm, const double* x, const double* dy, const double* gamma,
                       const double* mean, const double* rstd, const double* dh_in, int64_t rows,
                       int64_t C, double* dx, double* dgamma, double* dbeta) {
  const NormTraits traits = norm_traits(norm);
  for (int64_t i = 0; i < C; ++i) {
    dgamma[i] = 0;
    if (dbeta) dbeta[i] = 0;
  }
  const double inv_c = 1.0 / static_cast<double>(C);
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = x + r * C;
    const double* dyr = dy + r * C;
    const double mu = traits.has_mean ? mean[r] : 0.0;
    double s1 = 0, s2 = 0;  // sum(g) (the mean(g) term), sum(g * xhat)
    for (int64_t i = 0; i < C; ++i) {
      const double xhat = (xr[i] - mu) * rstd[r];
      const double g = dyr[i] * gamma[i];
      if (traits.mean_g_term) s1 += g;
      s2 += g * xhat;
      dgamma[i] += dyr[i] * xhat;
      if (dbeta) dbeta[i] += dyr[i];
    }
    s1 *= inv_c;
    s2 *= inv_c;
    for (int64_t i = 0; i < C; ++i) {
      const double xhat = (xr[i] - mu) * rstd[r];
      dx[r * C + i] =
          rstd[r] * (dyr[i] * gamma[i] - s1 - xhat * s2) + (dh_in ? dh_in[r * C + i] : 0.0);
    }
  }
}

Status norm_backward(const NormBackwardArgs& args, const NormBackwardOutputs& out,
                     const NormOptions& opt) {
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const auto x = load_f64(args.x), dy = load_f64(args.dy), gamma = load_f64(args.gamma);
  const auto mean = args.mean.empty() ? std::vector<double>{} : load_f64(args.mean);
  const auto rstd = load_f64(args.rstd);
  const auto dh_in = args.dh_in.empty() ? std::vector<double>{} : load_f64(args.dh_in);
  std::vector<double> dx(x.size()), dgamma(C), dbeta(C);
  norm_backward_f64(args.norm, x.data(), dy.data(), gamma.data(),
                    mean.empty() ? nullptr : mean.data(), rstd.data(),
                    dh_in.empty() ? nullptr : dh_in.data(), rows, C, dx.data(), dgamma.data(),
                    dbeta.data());
  store_f64(out.dx, dx);
  store_f64(out.dgamma, dgamma);
  if (!out.dbeta.empty()) store_f64(out.dbeta, dbeta);
  if (opt.report) opt.report->path = "float64";
  return {};
}

}  // namespace tilenorm::reference
