// The CUDA backend on device memory (include/tilenorm/cuda.h): the host API's validation, then
// the kernels on the caller's pointers and stream. Built whether or not the backend is; without
// it, a valid call is Unsupported.
#include "backends.h"
#include "tilenorm/cuda.h"
#include "validate.h"
#ifdef TILENORM_HAVE_CUDA
#include "cuda/norm_cuda.h"
#endif

namespace tilenorm {

const char* cuda_dtype_name(CudaDType dtype) {
  switch (dtype) {
    case CudaDType::kF32:
      return "f32";
    case CudaDType::kBF16:
      return "bf16";
    case CudaDType::kF16:
      return "f16";
  }
  return "?";
}

#ifdef TILENORM_HAVE_CUDA
struct CudaContext::Impl {
  cuda::Context context;
};
CudaContext::CudaContext() : impl_(std::make_unique<Impl>()) {}
#else
struct CudaContext::Impl {};
CudaContext::CudaContext() = default;
#endif
CudaContext::~CudaContext() = default;

namespace {

// The checks see the data tensors as one dtype (they share the call's CudaDType) and the
// statistics and parameter gradients as its f32 statistics; x_type names the real one.
constexpr DType kData = DType::kF32;

DataType x_type(CudaDType dtype) {
  return {.name = cuda_dtype_name(dtype),
          .size = dtype == CudaDType::kF32 ? size_t{4} : size_t{2},
          .f64 = false};
}

ConstTensorView data(const CudaConstTensor& t) { return {t.data, t.shape, kData}; }
TensorView data(const CudaTensor& t) { return {t.data, t.shape, kData}; }
ConstTensorView stat(const CudaConstTensor& t) { return {t.data, t.shape, DType::kF32}; }
TensorView stat(const CudaTensor& t) { return {t.data, t.shape, DType::kF32}; }

#ifdef TILENORM_HAVE_CUDA
cuda::ElemType elem_type(CudaDType dtype) {
  switch (dtype) {
    case CudaDType::kBF16:
      return cuda::ElemType::kBF16;
    case CudaDType::kF16:
      return cuda::ElemType::kF16;
    case CudaDType::kF32:
      break;
  }
  return cuda::ElemType::kF32;
}
#endif

Status validate(const NormForwardArgs& a, const NormForwardOutputs& o, CudaDType dtype) {
  return validate_forward(std::nullopt, a, o, x_type(dtype));
}
Status validate(const NormBackwardArgs& a, const NormBackwardOutputs& o, CudaDType dtype) {
  return validate_backward(std::nullopt, a, o, x_type(dtype));
}

// The host API's checks, then the kernels on the device pointers (Unsupported in a build
// without the backend).
template <typename Args, typename Outputs>
Status run_validated(CudaContext& context, CudaDType dtype, const Args& a, const Outputs& o,
                     CUstream_st* stream) {
  TN_RETURN_IF_ERROR(validate(a, o, dtype));
#ifdef TILENORM_HAVE_CUDA
  return cuda::norm_device(context.impl()->context, elem_type(dtype), a, o, stream);
#else
  (void)context;
  (void)stream;
  return check_built(Backend::kCuda);  // Unsupported
#endif
}

}  // namespace

Status cuda_available() {
#ifdef TILENORM_HAVE_CUDA
  return cuda::device_status();
#else
  return check_built(Backend::kCuda);  // Unsupported
#endif
}

Status cuda_norm_forward(CudaContext& context, const CudaNormForwardArgs& args,
                         const CudaNormForwardOutputs& out, CUstream_st* stream) {
  const NormForwardOutputs o{
      .y = data(out.y), .mean = stat(out.mean), .rstd = stat(out.rstd), .h = data(out.h)};
  const NormForwardArgs a{.norm = args.norm,
                          .x = data(args.x),
                          .residual = data(args.residual),
                          .gamma = data(args.gamma),
                          .beta = data(args.beta),
                          .eps = args.eps};
  return run_validated(context, args.dtype, a, o, stream);
}

Status cuda_norm_backward(CudaContext& context, const CudaNormBackwardArgs& args,
                          const CudaNormBackwardOutputs& out, CUstream_st* stream) {
  const NormBackwardOutputs o{
      .dx = data(out.dx), .dgamma = stat(out.dgamma), .dbeta = stat(out.dbeta)};
  const NormBackwardArgs a{.norm = args.norm,
                           .x = data(args.x),
                           .dy = data(args.dy),
                           .gamma = data(args.gamma),
                           .mean = stat(args.mean),
                           .rstd = stat(args.rstd),
                           .dh_in = data(args.dh_in)};
  return run_validated(context, args.dtype, a, o, stream);
}

}  // namespace tilenorm
