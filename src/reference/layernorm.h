// The float64 reference: plain loops, the oracle every backend is judged against.
// Formulas: docs/layernorm.md. Row-major [rows, C].
#pragma once

#include <cstdint>
#include <vector>

#include "tilenorm/tensor.h"

namespace tilenorm::reference {

// y may be null (statistics only); beta may be null (0).
void layernorm_forward_f64(const double* x, const double* gamma, const double* beta, int64_t rows,
                           int64_t C, double eps, double* y, double* mean, double* rstd);

// dgamma and dbeta are overwritten.
void layernorm_backward_f64(const double* x, const double* dy, const double* gamma,
                            const double* mean, const double* rstd, int64_t rows, int64_t C,
                            double* dx, double* dgamma, double* dbeta);

// Any-dtype view <-> float64 vector (bf16 stores round to nearest even).
std::vector<double> load_f64(ConstTensorView t);
void store_f64(TensorView t, const std::vector<double>& v);

}  // namespace tilenorm::reference
