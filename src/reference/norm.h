// The float64 reference: plain loops, the oracle every backend is judged against.
// Formulas: docs/layernorm.md. Row-major [rows, C].
#pragma once

#include <cstdint>
#include <vector>

#include "tilenorm/norm.h"
#include "tilenorm/tensor.h"

namespace tilenorm::reference {

// The family in one loop nest (include/tilenorm/norm.h): RMSNorm is LayerNorm with mean := 0, no
// beta and no mean(g) term. y may be null (statistics only); beta may be null (0); mean may be
// null for RMSNorm (rstd is then rrms).
void norm_forward_f64(Norm norm, const double* x, const double* gamma, const double* beta,
                      int64_t rows, int64_t C, double eps, double* y, double* mean, double* rstd);

// dgamma is overwritten; dbeta too, and may be null for RMSNorm; mean may be null for RMSNorm;
// dh_in may be null, else it is added to dx.
void norm_backward_f64(Norm norm, const double* x, const double* dy, const double* gamma,
                       const double* mean, const double* rstd, const double* dh_in, int64_t rows,
                       int64_t C, double* dx, double* dgamma, double* dbeta);

inline void layernorm_forward_f64(const double* x, const double* gamma, const double* beta,
                                  int64_t rows, int64_t C, double eps, double* y, double* mean,
                                  double* rstd) {
  norm_forward_f64(Norm::kLayerNorm, x, gamma, beta, rows, C, eps, y, mean, rstd);
}

inline void layernorm_backward_f64(const double* x, const double* dy, const double* gamma,
                                   const double* mean, const double* rstd, int64_t rows, int64_t C,
                                   double* dx, double* dgamma, double* dbeta) {
  norm_backward_f64(Norm::kLayerNorm, x, dy, gamma, mean, rstd, nullptr, rows, C, dx, dgamma,
                    dbeta);
}

// Any-dtype view <-> float64 vector (bf16 stores round to nearest even).
std::vector<double> load_f64(const ConstTensorView& t);
void store_f64(const TensorView& t, const std::vector<double>& v);

}  // namespace tilenorm::reference
