// The public API: validate once, then dispatch to a backend.
#include <fmt/format.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>

#include "backends.h"
#include "tilenorm/layernorm.h"
#include "tilenorm/rmsnorm.h"
#include "validate.h"

namespace tilenorm {

const char* backend_name(Backend backend) {
  switch (backend) {
    case Backend::kReference:
      return "reference";
    case Backend::kCpu:
      return "cpu";
    case Backend::kTile:
      return "tile";
    case Backend::kCuda:
      return "cuda";
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

DType norm_stat_dtype(DType x) { return x == DType::kF64 ? DType::kF64 : DType::kF32; }

namespace {

Status check_present(const char* name, const ConstTensorView& t) {
  if (t.empty()) return Status::invalid_argument(fmt::format("{} is missing", name));
  return {};
}

Status check_dtype(const char* name, const ConstTensorView& t, DType want) {
  if (t.dtype == want) return {};
  return Status::invalid_argument(
      fmt::format("{} has dtype {}, expected {}", name, dtype_name(t.dtype), dtype_name(want)));
}

Status check_shape(const char* name, const Shape& got, const Shape& want) {
  if (got == want) return {};
  return Status::invalid_argument(
      fmt::format("{} has shape {}, expected {}", name, got.to_string(), want.to_string()));
}

// x decides C, rows and the data dtype for every other tensor; x_type is its element type.
Status check_x(const char* name, const ConstTensorView& x, const DataType& x_type) {
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
  if (!numel || *numel > PTRDIFF_MAX / static_cast<int64_t>(x_type.size))
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

Status check_backend(Backend backend, const ConstTensorView& x) {
  TN_RETURN_IF_ERROR(check_built(backend));
  if (x.dtype == DType::kF64 && backend != Backend::kReference && backend != Backend::kCpu)
    return Status::invalid_argument(
        fmt::format("x has dtype f64, which only the reference and cpu backends accept (backend "
                    "'{}' takes f32 or bf16)",
                    backend_name(backend)));
  return {};
}

// eps must be a positive normal number of the dtype the statistics are computed in: f32 for
// f32 and bf16 data on every backend (the reference too, so that it judges the others on the
// same problem), f64 for f64 data. A smaller eps is lost in var + eps (a constant row's rstd
// becomes 1/sqrt(0) = Inf and its y NaN); a larger one is Inf in f32.
Status check_eps(double eps, const DataType& x_type) {
  if (!std::isfinite(eps) || eps <= 0)
    return Status::invalid_argument(fmt::format("eps must be finite and > 0, got {}", eps));
  const bool f64 = x_type.f64;
  const double lo = f64 ? DBL_MIN : FLT_MIN, hi = f64 ? DBL_MAX : FLT_MAX;
  const char* compute = f64 ? "f64" : "f32";
  if (eps < lo)
    return Status::invalid_argument(fmt::format(
        "eps {} is below {}, the smallest normal {} number ({} data is normalized in {})", eps, lo,
        compute, x_type.name, compute));
  if (eps > hi)
    return Status::invalid_argument(
        fmt::format("eps {} is above {}, the largest {} number ({} data is normalized in {})", eps,
                    hi, compute, x_type.name, compute));
  return {};
}

Status dispatch_forward(Backend backend, const NormForwardArgs& a, const NormForwardOutputs& o,
                        const NormOptions& opt) {
  switch (backend) {
    case Backend::kReference:
      return reference::norm_forward(a, o, opt);
    case Backend::kCpu:
      return cpu::norm_forward(a, o, opt);
    case Backend::kTile:
      return tile::norm_forward(a, o, opt);
    case Backend::kCuda:
#ifdef TILENORM_HAVE_CUDA
      return cuda::norm_forward(a, o, opt);
#else
      break;
#endif
  }
  return Status::unsupported(fmt::format("backend '{}' is not built", backend_name(backend)));
}

Status dispatch_backward(Backend backend, const NormBackwardArgs& a, const NormBackwardOutputs& o,
                         const NormOptions& opt) {
  switch (backend) {
    case Backend::kReference:
      return reference::norm_backward(a, o, opt);
    case Backend::kCpu:
      return cpu::norm_backward(a, o, opt);
    case Backend::kTile:
      return tile::norm_backward(a, o, opt);
    case Backend::kCuda:
#ifdef TILENORM_HAVE_CUDA
      return cuda::norm_backward(a, o, opt);
#else
      break;
#endif
  }
  return Status::unsupported(fmt::format("backend '{}' is not built", backend_name(backend)));
}

// A tensor shaped and typed like x.
Status check_like_x(const char* name, const ConstTensorView& t, const ConstTensorView& x) {
  TN_RETURN_IF_ERROR(check_present(name, t));
  TN_RETURN_IF_ERROR(check_shape(name, t.shape, x.shape));
  return check_dtype(name, t, x.dtype);
}

Status check_per_column(const char* name, const ConstTensorView& t, const ConstTensorView& x,
                        DType dtype) {
  TN_RETURN_IF_ERROR(check_present(name, t));
  TN_RETURN_IF_ERROR(check_shape(name, t.shape, Shape{x.shape.cols()}));
  return check_dtype(name, t, dtype);
}

Status check_per_row(const char* name, const ConstTensorView& t, const ConstTensorView& x) {
  TN_RETURN_IF_ERROR(check_present(name, t));
  TN_RETURN_IF_ERROR(check_shape(name, t.shape, x.shape.leading()));
  return check_dtype(name, t, norm_stat_dtype(x.dtype));
}

Status check_absent(const char* name, const ConstTensorView& t, const char* why) {
  if (t.empty()) return {};
  return Status::invalid_argument(fmt::format("{} must not be given {}", name, why));
}

// The name of the statistic rstd stands for: rrms for RMSNorm.
const char* rstd_name(Norm norm) { return norm == Norm::kRmsNorm ? "rrms" : "rstd"; }

// No exception crosses the public API: an allocation that fails (a valid shape too large for
// memory, scratch, the owning forms' outputs) is ResourceExhausted, anything else a backend
// throws (a thread that cannot start) is Internal.
template <class F>
Status guarded(F&& run) {
  try {
    return run();
  } catch (const std::bad_alloc&) {
    return Status::resource_exhausted("out of memory");
  } catch (const std::exception& e) {
    return Status::internal(fmt::format("run-time failure: {}", e.what()));
  }
}

Status norm_forward(Backend backend, const NormForwardArgs& a, const NormForwardOutputs& o,
                    const NormOptions& opt) {
  TN_RETURN_IF_ERROR(validate_forward(backend, a, o, data_type(a.x.dtype)));
  return guarded([&] { return dispatch_forward(backend, a, o, opt); });
}

Status norm_backward(Backend backend, const NormBackwardArgs& a, const NormBackwardOutputs& o,
                     const NormOptions& opt) {
  TN_RETURN_IF_ERROR(validate_backward(backend, a, o, data_type(a.x.dtype)));
  return guarded([&] { return dispatch_backward(backend, a, o, opt); });
}

// Outputs of the owning forms: x-shaped tensors, per-row statistics, per-column gradients.
Tensor like_x(const ConstTensorView& x) { return Tensor(x.shape, x.dtype); }
Tensor per_row(const ConstTensorView& x) {
  return Tensor(x.shape.leading(), norm_stat_dtype(x.dtype));
}
Tensor per_column(const ConstTensorView& x) {
  return Tensor(Shape{x.shape.cols()}, norm_stat_dtype(x.dtype));
}

}  // namespace

Status check_built(Backend backend) {
  if (backend_built(backend)) return {};
  return Status::unsupported(fmt::format(
      "backend '{}' is not built into this binary (configure with nvcc present, preset 'cuda')",
      backend_name(backend)));
}

DataType data_type(DType dtype) {
  return {.name = dtype_name(dtype), .size = dtype_size(dtype), .f64 = dtype == DType::kF64};
}

Status validate_forward(std::optional<Backend> backend, const NormForwardArgs& a,
                        const NormForwardOutputs& o, const DataType& x_type) {
  TN_RETURN_IF_ERROR(check_x("x", a.x, x_type));
  if (backend) TN_RETURN_IF_ERROR(check_backend(*backend, a.x));
  const bool layer = a.norm == Norm::kLayerNorm;
  TN_RETURN_IF_ERROR(check_per_column("gamma", a.gamma, a.x, a.x.dtype));
  if (!a.beta.empty()) TN_RETURN_IF_ERROR(check_per_column("beta", a.beta, a.x, a.x.dtype));
  if (!a.residual.empty()) TN_RETURN_IF_ERROR(check_like_x("residual", a.residual, a.x));
  TN_RETURN_IF_ERROR(check_eps(a.eps, x_type));
  TN_RETURN_IF_ERROR(check_like_x("y", o.y, a.x));
  if (a.residual.empty())
    TN_RETURN_IF_ERROR(check_absent("h", o.h, "without a residual"));
  else
    TN_RETURN_IF_ERROR(check_like_x("h", o.h, a.x));
  if (layer) TN_RETURN_IF_ERROR(check_per_row("mean", o.mean, a.x));
  return check_per_row(rstd_name(a.norm), o.rstd, a.x);
}

Status validate_backward(std::optional<Backend> backend, const NormBackwardArgs& a,
                         const NormBackwardOutputs& o, const DataType& x_type) {
  TN_RETURN_IF_ERROR(check_x("x", a.x, x_type));
  if (backend) TN_RETURN_IF_ERROR(check_backend(*backend, a.x));
  const bool layer = a.norm == Norm::kLayerNorm;
  const DType stats = norm_stat_dtype(a.x.dtype);
  TN_RETURN_IF_ERROR(check_like_x("dy", a.dy, a.x));
  TN_RETURN_IF_ERROR(check_per_column("gamma", a.gamma, a.x, a.x.dtype));
  if (layer) TN_RETURN_IF_ERROR(check_per_row("mean", a.mean, a.x));
  TN_RETURN_IF_ERROR(check_per_row(rstd_name(a.norm), a.rstd, a.x));
  if (!a.dh_in.empty()) TN_RETURN_IF_ERROR(check_like_x("dh_in", a.dh_in, a.x));
  TN_RETURN_IF_ERROR(check_like_x("dx", o.dx, a.x));
  TN_RETURN_IF_ERROR(check_per_column("dgamma", o.dgamma, a.x, stats));
  if (layer) TN_RETURN_IF_ERROR(check_per_column("dbeta", o.dbeta, a.x, stats));
  return {};
}

const char* norm_name(Norm norm) { return norm_traits(norm).name; }

std::optional<Norm> parse_norm(std::string_view name) {
  for (Norm n : {Norm::kLayerNorm, Norm::kRmsNorm})
    if (name == norm_name(n)) return n;
  return std::nullopt;
}

Status layernorm_forward(Backend backend, const LayerNormForwardArgs& args,
                         const LayerNormForwardOutputs& out, const LayerNormOptions& options) {
  return norm_forward(backend,
                      {.norm = Norm::kLayerNorm,
                       .x = args.x,
                       .residual = args.residual,
                       .gamma = args.gamma,
                       .beta = args.beta,
                       .eps = args.eps},
                      {.y = out.y, .mean = out.mean, .rstd = out.rstd, .h = out.h}, options);
}

Status layernorm_backward(Backend backend, const LayerNormBackwardArgs& args,
                          const LayerNormBackwardOutputs& out, const LayerNormOptions& options) {
  return norm_backward(backend,
                       {.norm = Norm::kLayerNorm,
                        .x = args.x,
                        .dy = args.dy,
                        .gamma = args.gamma,
                        .mean = args.mean,
                        .rstd = args.rstd,
                        .dh_in = args.dh_in},
                       {.dx = out.dx, .dgamma = out.dgamma, .dbeta = out.dbeta}, options);
}

Status rmsnorm_forward(Backend backend, const RmsNormForwardArgs& args,
                       const RmsNormForwardOutputs& out, const NormOptions& options) {
  return norm_forward(backend,
                      {.norm = Norm::kRmsNorm,
                       .x = args.x,
                       .residual = args.residual,
                       .gamma = args.gamma,
                       .eps = args.eps},
                      {.y = out.y, .rstd = out.rrms, .h = out.h}, options);
}

Status rmsnorm_backward(Backend backend, const RmsNormBackwardArgs& args,
                        const RmsNormBackwardOutputs& out, const NormOptions& options) {
  return norm_backward(backend,
                       {.norm = Norm::kRmsNorm,
                        .x = args.x,
                        .dy = args.dy,
                        .gamma = args.gamma,
                        .rstd = args.rrms,
                        .dh_in = args.dh_in},
                       {.dx = out.dx, .dgamma = out.dgamma}, options);
}

Status layernorm_forward(Backend backend, const LayerNormForwardArgs& args,
                         LayerNormForwardResult* result, const LayerNormOptions& options) {
  return guarded([&]() -> Status {
    TN_RETURN_IF_ERROR(check_x("x", args.x, data_type(args.x.dtype)));
    LayerNormForwardResult r{.y = like_x(args.x),
                             .mean = per_row(args.x),
                             .rstd = per_row(args.x),
                             .h = args.residual.empty() ? Tensor() : like_x(args.x)};
    TN_RETURN_IF_ERROR(layernorm_forward(
        backend, args,
        {.y = r.y.view(), .mean = r.mean.view(), .rstd = r.rstd.view(), .h = r.h.view()}, options));
    *result = std::move(r);
    return {};
  });
}

Status layernorm_backward(Backend backend, const LayerNormBackwardArgs& args,
                          LayerNormBackwardResult* result, const LayerNormOptions& options) {
  return guarded([&]() -> Status {
    TN_RETURN_IF_ERROR(check_x("x", args.x, data_type(args.x.dtype)));
    LayerNormBackwardResult r{
        .dx = like_x(args.x), .dgamma = per_column(args.x), .dbeta = per_column(args.x)};
    TN_RETURN_IF_ERROR(layernorm_backward(
        backend, args, {.dx = r.dx.view(), .dgamma = r.dgamma.view(), .dbeta = r.dbeta.view()},
        options));
    *result = std::move(r);
    return {};
  });
}

Status rmsnorm_forward(Backend backend, const RmsNormForwardArgs& args,
                       RmsNormForwardResult* result, const NormOptions& options) {
  return guarded([&]() -> Status {
    TN_RETURN_IF_ERROR(check_x("x", args.x, data_type(args.x.dtype)));
    RmsNormForwardResult r{.y = like_x(args.x),
                           .rrms = per_row(args.x),
                           .h = args.residual.empty() ? Tensor() : like_x(args.x)};
    TN_RETURN_IF_ERROR(rmsnorm_forward(
        backend, args, {.y = r.y.view(), .rrms = r.rrms.view(), .h = r.h.view()}, options));
    *result = std::move(r);
    return {};
  });
}

Status rmsnorm_backward(Backend backend, const RmsNormBackwardArgs& args,
                        RmsNormBackwardResult* result, const NormOptions& options) {
  return guarded([&]() -> Status {
    TN_RETURN_IF_ERROR(check_x("x", args.x, data_type(args.x.dtype)));
    RmsNormBackwardResult r{.dx = like_x(args.x), .dgamma = per_column(args.x)};
    TN_RETURN_IF_ERROR(
        rmsnorm_backward(backend, args, {.dx = r.dx.view(), .dgamma = r.dgamma.view()}, options));
    *result = std::move(r);
    return {};
  });
}

}  // namespace tilenorm
