// The public API: validate once, then dispatch to a backend.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <optional>

#include <fmt/format.h>

#include "backends.h"

namespace tilenorm {

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kReference: return "reference";
    case Backend::kCpu: return "cpu";
    case Backend::kTile: return "tile";
    case Backend::kCuda: return "cuda";
  }
  return "?";
}

std::optional<Backend> parse_backend(std::string_view name) {
  for (Backend b : all_backends())
    if (name == backend_name(b)) return b;
  return std::nullopt;
}

std::vector<Backend> all_backends() {
  return {Backend::kReference, Backend::kCpu, Backend::kTile, Backend::kCuda};
}

bool backend_built(Backend backend) {
#ifdef TILENORM_HAVE_CUDA
  constexpr bool kCuda = true;
#else
  constexpr bool kCuda = false;
#endif
  return backend != Backend::kCuda || kCuda;
}

DType layernorm_stat_dtype(DType x) { return x == DType::kF64 ? DType::kF64 : DType::kF32; }

namespace {

Status check_present(const char* name, ConstTensorView t) {
  if (t.empty()) return Status::invalid_argument(fmt::format("{} is missing", name));
  return {};
}

Status check_dtype(const char* name, ConstTensorView t, DType want) {
  if (t.dtype == want) return {};
  return Status::invalid_argument(
      fmt::format("{} has dtype {}, expected {}", name, dtype_name(t.dtype), dtype_name(want)));
}

Status check_shape(const char* name, const Shape& got, const Shape& want) {
  if (got == want) return {};
  return Status::invalid_argument(
      fmt::format("{} has shape {}, expected {}", name, got.to_string(), want.to_string()));
}

// x decides C, rows and the data dtype for every other tensor.
Status check_x(const char* name, ConstTensorView x) {
  TN_RETURN_IF_ERROR(check_present(name, x));
  if (x.shape.rank() == 0)
    return Status::invalid_argument(fmt::format("{} must have rank >= 1, got a scalar", name));
  // f64 is checked against the backend by the caller.
  if (x.dtype != DType::kF32 && x.dtype != DType::kBF16 && x.dtype != DType::kF64)
    return Status::invalid_argument(
        fmt::format("{} has unsupported dtype {}", name, dtype_name(x.dtype)));
  for (int64_t d : x.shape.dims())
    if (d < 0)
      return Status::invalid_argument(
          fmt::format("{} has a negative dim (shape {})", name, x.shape.to_string()));
  // Every other tensor's shape is derived from x's, so checking x's size covers them all.
  const std::optional<int64_t> numel = x.shape.checked_numel();
  if (!numel || *numel > PTRDIFF_MAX / static_cast<int64_t>(dtype_size(x.dtype)))
    return Status::invalid_argument(
        fmt::format("{} has shape {}, whose size in bytes overflows", name, x.shape.to_string()));
  if (x.shape.cols() == 0)
    return Status::invalid_argument(
        fmt::format("{} has C = 0 (shape {}): nothing to normalize", name, x.shape.to_string()));
  if (*numel == 0)
    return Status::invalid_argument(
        fmt::format("{} is empty (shape {})", name, x.shape.to_string()));
  return {};
}

Status check_backend(Backend backend, ConstTensorView x) {
  if (!backend_built(backend))
    return Status::unsupported(fmt::format(
        "backend '{}' is not built into this binary (configure with nvcc present, preset 'cuda')",
        backend_name(backend)));
  if (x.dtype == DType::kF64 && backend != Backend::kReference)
    return Status::invalid_argument(fmt::format(
        "x has dtype f64, which only the reference backend accepts (backend '{}' takes f32 or bf16)",
        backend_name(backend)));
  return {};
}

// eps must be a positive normal number of the dtype the statistics are computed in: f32 for
// f32 and bf16 data on every backend (the reference too, so that it judges the others on the
// same problem), f64 for f64 data. A smaller eps is lost in var + eps (a constant row's rstd
// becomes 1/sqrt(0) = Inf and its y NaN); a larger one is Inf in f32.
Status check_eps(double eps, DType x_dtype) {
  if (!std::isfinite(eps) || eps <= 0)
    return Status::invalid_argument(fmt::format("eps must be finite and > 0, got {}", eps));
  const bool f64 = x_dtype == DType::kF64;
  const double lo = f64 ? DBL_MIN : FLT_MIN, hi = f64 ? DBL_MAX : FLT_MAX;
  const char* compute = f64 ? "f64" : "f32";
  if (eps < lo)
    return Status::invalid_argument(fmt::format(
        "eps {} is below {}, the smallest normal {} number ({} data is normalized in {})", eps, lo,
        compute, dtype_name(x_dtype), compute));
  if (eps > hi)
    return Status::invalid_argument(
        fmt::format("eps {} is above {}, the largest {} number ({} data is normalized in {})", eps,
                    hi, compute, dtype_name(x_dtype), compute));
  return {};
}

Status dispatch_forward(Backend backend, const LayerNormForwardArgs& a,
                        const LayerNormForwardOutputs& o, const LayerNormOptions& opt) {
  switch (backend) {
    case Backend::kReference: return reference::layernorm_forward(a, o, opt);
    case Backend::kCpu: return cpu::layernorm_forward(a, o, opt);
    case Backend::kTile: return tile::layernorm_forward(a, o, opt);
    case Backend::kCuda:
#ifdef TILENORM_HAVE_CUDA
      return cuda::layernorm_forward(a, o, opt);
#else
      break;
#endif
  }
  return Status::unsupported(fmt::format("backend '{}' is not built", backend_name(backend)));
}

Status dispatch_backward(Backend backend, const LayerNormBackwardArgs& a,
                         const LayerNormBackwardOutputs& o, const LayerNormOptions& opt) {
  switch (backend) {
    case Backend::kReference: return reference::layernorm_backward(a, o, opt);
    case Backend::kCpu: return cpu::layernorm_backward(a, o, opt);
    case Backend::kTile: return tile::layernorm_backward(a, o, opt);
    case Backend::kCuda:
#ifdef TILENORM_HAVE_CUDA
      return cuda::layernorm_backward(a, o, opt);
#else
      break;
#endif
  }
  return Status::unsupported(fmt::format("backend '{}' is not built", backend_name(backend)));
}

Status validate_forward(Backend backend, const LayerNormForwardArgs& a,
                        const LayerNormForwardOutputs& o) {
  TN_RETURN_IF_ERROR(check_x("x", a.x));
  TN_RETURN_IF_ERROR(check_backend(backend, a.x));
  const Shape c_shape{a.x.shape.cols()}, stats_shape = a.x.shape.leading();
  const DType stats = layernorm_stat_dtype(a.x.dtype);
  TN_RETURN_IF_ERROR(check_present("gamma", a.gamma));
  TN_RETURN_IF_ERROR(check_shape("gamma", a.gamma.shape, c_shape));
  TN_RETURN_IF_ERROR(check_dtype("gamma", a.gamma, a.x.dtype));
  if (!a.beta.empty()) {
    TN_RETURN_IF_ERROR(check_shape("beta", a.beta.shape, c_shape));
    TN_RETURN_IF_ERROR(check_dtype("beta", a.beta, a.x.dtype));
  }
  TN_RETURN_IF_ERROR(check_eps(a.eps, a.x.dtype));
  TN_RETURN_IF_ERROR(check_present("y", o.y));
  TN_RETURN_IF_ERROR(check_shape("y", o.y.shape, a.x.shape));
  TN_RETURN_IF_ERROR(check_dtype("y", o.y, a.x.dtype));
  TN_RETURN_IF_ERROR(check_present("mean", o.mean));
  TN_RETURN_IF_ERROR(check_shape("mean", o.mean.shape, stats_shape));
  TN_RETURN_IF_ERROR(check_dtype("mean", o.mean, stats));
  TN_RETURN_IF_ERROR(check_present("rstd", o.rstd));
  TN_RETURN_IF_ERROR(check_shape("rstd", o.rstd.shape, stats_shape));
  TN_RETURN_IF_ERROR(check_dtype("rstd", o.rstd, stats));
  return {};
}

Status validate_backward(Backend backend, const LayerNormBackwardArgs& a,
                         const LayerNormBackwardOutputs& o) {
  TN_RETURN_IF_ERROR(check_x("x", a.x));
  TN_RETURN_IF_ERROR(check_backend(backend, a.x));
  const Shape c_shape{a.x.shape.cols()}, stats_shape = a.x.shape.leading();
  const DType stats = layernorm_stat_dtype(a.x.dtype);
  TN_RETURN_IF_ERROR(check_present("dy", a.dy));
  TN_RETURN_IF_ERROR(check_shape("dy", a.dy.shape, a.x.shape));
  TN_RETURN_IF_ERROR(check_dtype("dy", a.dy, a.x.dtype));
  TN_RETURN_IF_ERROR(check_present("gamma", a.gamma));
  TN_RETURN_IF_ERROR(check_shape("gamma", a.gamma.shape, c_shape));
  TN_RETURN_IF_ERROR(check_dtype("gamma", a.gamma, a.x.dtype));
  TN_RETURN_IF_ERROR(check_present("mean", a.mean));
  TN_RETURN_IF_ERROR(check_shape("mean", a.mean.shape, stats_shape));
  TN_RETURN_IF_ERROR(check_dtype("mean", a.mean, stats));
  TN_RETURN_IF_ERROR(check_present("rstd", a.rstd));
  TN_RETURN_IF_ERROR(check_shape("rstd", a.rstd.shape, stats_shape));
  TN_RETURN_IF_ERROR(check_dtype("rstd", a.rstd, stats));
  TN_RETURN_IF_ERROR(check_present("dx", o.dx));
  TN_RETURN_IF_ERROR(check_shape("dx", o.dx.shape, a.x.shape));
  TN_RETURN_IF_ERROR(check_dtype("dx", o.dx, a.x.dtype));
  TN_RETURN_IF_ERROR(check_present("dgamma", o.dgamma));
  TN_RETURN_IF_ERROR(check_shape("dgamma", o.dgamma.shape, c_shape));
  TN_RETURN_IF_ERROR(check_dtype("dgamma", o.dgamma, stats));
  TN_RETURN_IF_ERROR(check_present("dbeta", o.dbeta));
  TN_RETURN_IF_ERROR(check_shape("dbeta", o.dbeta.shape, c_shape));
  TN_RETURN_IF_ERROR(check_dtype("dbeta", o.dbeta, stats));
  return {};
}

}  // namespace

Status layernorm_forward(Backend backend, const LayerNormForwardArgs& args,
                         const LayerNormForwardOutputs& out, const LayerNormOptions& options) {
  TN_RETURN_IF_ERROR(validate_forward(backend, args, out));
  return dispatch_forward(backend, args, out, options);
}

Status layernorm_backward(Backend backend, const LayerNormBackwardArgs& args,
                          const LayerNormBackwardOutputs& out, const LayerNormOptions& options) {
  TN_RETURN_IF_ERROR(validate_backward(backend, args, out));
  return dispatch_backward(backend, args, out, options);
}

Status layernorm_forward(Backend backend, const LayerNormForwardArgs& args,
                         LayerNormForwardResult* result, const LayerNormOptions& options) {
  TN_RETURN_IF_ERROR(check_x("x", args.x));
  const DType sd = layernorm_stat_dtype(args.x.dtype);
  LayerNormForwardResult r{Tensor(args.x.shape, args.x.dtype), Tensor(args.x.shape.leading(), sd),
                           Tensor(args.x.shape.leading(), sd)};
  TN_RETURN_IF_ERROR(layernorm_forward(backend, args, {r.y.view(), r.mean.view(), r.rstd.view()},
                                       options));
  *result = std::move(r);
  return {};
}

Status layernorm_backward(Backend backend, const LayerNormBackwardArgs& args,
                          LayerNormBackwardResult* result, const LayerNormOptions& options) {
  TN_RETURN_IF_ERROR(check_x("x", args.x));
  const DType sd = layernorm_stat_dtype(args.x.dtype);
  const Shape c_shape{args.x.shape.cols()};
  LayerNormBackwardResult r{Tensor(args.x.shape, args.x.dtype), Tensor(c_shape, sd),
                            Tensor(c_shape, sd)};
  TN_RETURN_IF_ERROR(layernorm_backward(
      backend, args, {r.dx.view(), r.dgamma.view(), r.dbeta.view()}, options));
  *result = std::move(r);
  return {};
}

}  // namespace tilenorm
