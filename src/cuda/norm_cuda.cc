// The CUDA backend behind the public API: host views are copied to the device, the kernels of
// norm_forward.cu / norm_backward.cu run, and the results are copied back. Every CUDA call is
// checked.
#include "cuda/norm_cuda.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "backends.h"
#include "cuda/cuda_try.h"

namespace tilenorm::cuda {

std::string cuda_error_string(const CudaError& e) {
  const auto err = static_cast<cudaError_t>(e.code);
  return fmt::format("{}: {} ({})", e.call, cudaGetErrorString(err), cudaGetErrorName(err));
}

bool cuda_error_is_no_kernel_image(const CudaError& e) {
  const auto err = static_cast<cudaError_t>(e.code);
  return err == cudaErrorNoKernelImageForDevice || err == cudaErrorUnsupportedPtxVersion ||
         err == cudaErrorJitCompilerNotFound;
}

bool cuda_error_is_no_device(const CudaError& e) {
  const auto err = static_cast<cudaError_t>(e.code);
  return err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver ||
         err == cudaErrorNotSupported || cuda_error_is_no_kernel_image(e);
}

CudaError current_device(DeviceInfo* out) {
  int device = 0;
  cudaDeviceProp prop{};
  TN_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  TN_CUDA_TRY(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  *out = {device, prop.name, prop.major, prop.minor};
  return {};
}

size_t elem_size(ElemType t) { return t == ElemType::kF32 ? 4 : 2; }

namespace {

// "CUDA device 0 'NVIDIA A100-SXM4-80GB' (compute capability 8.0)"
std::string device_description() {
  DeviceInfo d;
  if (!current_device(&d).ok()) return "the current CUDA device";
  return fmt::format("CUDA device {} '{}' (compute capability {}.{})", d.index, d.name, d.cc_major,
                     d.cc_minor);
}

// Why the kernels cannot run here, for a no-device or no-kernel-image error.
std::string unusable_reason(const CudaError& e) {
  if (!cuda_error_is_no_kernel_image(e)) return "no usable CUDA device: " + cuda_error_string(e);
  return fmt::format(
      "{} cannot run the kernels, which are built for sm_90 only (compute capability 9.0, and "
      "newer through a driver that compiles compute_90 PTX): {}",
      device_description(), cuda_error_string(e));
}

CudaError check_device() {
  int n = 0;
  TN_CUDA_TRY(cudaGetDeviceCount(&n), "cudaGetDeviceCount");
  if (n == 0) return {cudaErrorNoDevice, "cudaGetDeviceCount"};
  return check_kernel_image();
}

// One device allocation (or none) holding a copy of a host tensor or room for an output, placed
// `misalign` bytes past the 256-byte aligned start that cudaMalloc returns. A null host pointer
// stands for an absent tensor: nothing is allocated and get() is null.
class DeviceTensor {
 public:
  DeviceTensor() = default;
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  ~DeviceTensor() {
    if (base_ != nullptr) cudaFree(base_);
  }

  // An input: `bytes` copied from `host`.
  CudaError input(const void* host, size_t bytes, size_t misalign, const char* name) {
    if (host == nullptr) return {};
    TN_RETURN_IF_CUDA_ERROR(alloc(bytes, misalign, name));
    TN_CUDA_TRY(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), name);
    return {};
  }
  // An output copied back to `host` by copy_out: filled with 0xff bytes (NaN in f32, bf16 and
  // fp16) so that unwritten elements are visible.
  CudaError output(void* host, size_t bytes, size_t misalign, const char* name) {
    if (host == nullptr) return {};
    host_ = host;
    TN_RETURN_IF_CUDA_ERROR(alloc(bytes, misalign, name));
    TN_CUDA_TRY(cudaMemset(ptr_, 0xff, bytes), name);
    return {};
  }
  CudaError copy_out(const char* name) const {
    if (host_ != nullptr)
      TN_CUDA_TRY(cudaMemcpy(host_, ptr_, bytes_, cudaMemcpyDeviceToHost), name);
    return {};
  }
  void* get() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }

 private:
  CudaError alloc(size_t bytes, size_t misalign, const char* name) {
    bytes_ = bytes;
    TN_CUDA_TRY(cudaMalloc(&base_, bytes + misalign), name);
    ptr_ = static_cast<char*>(base_) + misalign;
    return {};
  }

  void* base_ = nullptr;
  void* ptr_ = nullptr;
  void* host_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace

bool device_available(std::string* why) {
  if (const CudaError e = check_device(); !e.ok()) {
    if (why) *why = unusable_reason(e);
    return false;
  }
  return true;
}

CudaError norm_forward_host(const HostForward& call, PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(check_device());
  const ForwardDeviceArgs& a = call.args;
  const size_t es = elem_size(a.dtype), mis = call.misalign_elems * es;
  const size_t n = static_cast<size_t>(a.rows * a.cols), c = a.cols, r = a.rows;
  DeviceTensor x, residual, gamma, beta, y, h, mean, rstd;
  TN_RETURN_IF_CUDA_ERROR(x.input(a.x, n * es, mis, "cudaMalloc/cudaMemcpy(x)"));
  TN_RETURN_IF_CUDA_ERROR(
      residual.input(a.residual, n * es, mis, "cudaMalloc/cudaMemcpy(residual)"));
  TN_RETURN_IF_CUDA_ERROR(gamma.input(a.gamma, c * es, mis, "cudaMalloc/cudaMemcpy(gamma)"));
  TN_RETURN_IF_CUDA_ERROR(beta.input(a.beta, c * es, mis, "cudaMalloc/cudaMemcpy(beta)"));
  TN_RETURN_IF_CUDA_ERROR(y.output(a.y, n * es, mis, "cudaMalloc/cudaMemset(y)"));
  TN_RETURN_IF_CUDA_ERROR(h.output(a.h, n * es, mis, "cudaMalloc/cudaMemset(h)"));
  TN_RETURN_IF_CUDA_ERROR(mean.output(a.mean, r * 4, 0, "cudaMalloc/cudaMemset(mean)"));
  TN_RETURN_IF_CUDA_ERROR(rstd.output(a.rstd, r * 4, 0, "cudaMalloc/cudaMemset(rstd)"));

  ForwardDeviceArgs d = a;
  d.x = x.get();
  d.residual = residual.get();
  d.gamma = gamma.get();
  d.beta = beta.get();
  d.y = y.get();
  d.h = h.get();
  d.mean = mean.f32();
  d.rstd = rstd.f32();
  {
    Context ctx(call.limits);
    TN_RETURN_IF_CUDA_ERROR(norm_forward(ctx, d, nullptr, info));
    TN_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize(norm_forward kernels)");
  }
  TN_RETURN_IF_CUDA_ERROR(y.copy_out("cudaMemcpy(y)"));
  TN_RETURN_IF_CUDA_ERROR(h.copy_out("cudaMemcpy(h)"));
  TN_RETURN_IF_CUDA_ERROR(mean.copy_out("cudaMemcpy(mean)"));
  TN_RETURN_IF_CUDA_ERROR(rstd.copy_out("cudaMemcpy(rstd)"));
  return {};
}

CudaError norm_backward_host(const HostBackward& call, PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(check_device());
  const BackwardDeviceArgs& a = call.args;
  const size_t es = elem_size(a.dtype), mis = call.misalign_elems * es;
  const size_t n = static_cast<size_t>(a.rows * a.cols), c = a.cols, r = a.rows;
  DeviceTensor x, dy, gamma, mean, rstd, dh_in, dx, dgamma, dbeta;
  TN_RETURN_IF_CUDA_ERROR(x.input(a.x, n * es, mis, "cudaMalloc/cudaMemcpy(x)"));
  TN_RETURN_IF_CUDA_ERROR(dy.input(a.dy, n * es, mis, "cudaMalloc/cudaMemcpy(dy)"));
  TN_RETURN_IF_CUDA_ERROR(gamma.input(a.gamma, c * es, mis, "cudaMalloc/cudaMemcpy(gamma)"));
  TN_RETURN_IF_CUDA_ERROR(mean.input(a.mean, r * 4, 0, "cudaMalloc/cudaMemcpy(mean)"));
  TN_RETURN_IF_CUDA_ERROR(rstd.input(a.rstd, r * 4, 0, "cudaMalloc/cudaMemcpy(rstd)"));
  TN_RETURN_IF_CUDA_ERROR(dh_in.input(a.dh_in, n * es, mis, "cudaMalloc/cudaMemcpy(dh_in)"));
  TN_RETURN_IF_CUDA_ERROR(dx.output(a.dx, n * es, mis, "cudaMalloc/cudaMemset(dx)"));
  TN_RETURN_IF_CUDA_ERROR(dgamma.output(a.dgamma, c * 4, 0, "cudaMalloc/cudaMemset(dgamma)"));
  TN_RETURN_IF_CUDA_ERROR(dbeta.output(a.dbeta, c * 4, 0, "cudaMalloc/cudaMemset(dbeta)"));

  BackwardDeviceArgs d = a;
  d.x = x.get();
  d.dy = dy.get();
  d.gamma = gamma.get();
  d.mean = mean.f32();
  d.rstd = rstd.f32();
  d.dh_in = dh_in.get();
  d.dx = dx.get();
  d.dgamma = dgamma.f32();
  d.dbeta = dbeta.f32();
  {
    Context ctx(call.limits);
    TN_RETURN_IF_CUDA_ERROR(norm_backward(ctx, d, nullptr, info));
    TN_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize(norm_backward kernels)");
  }
  TN_RETURN_IF_CUDA_ERROR(dx.copy_out("cudaMemcpy(dx)"));
  TN_RETURN_IF_CUDA_ERROR(dgamma.copy_out("cudaMemcpy(dgamma)"));
  TN_RETURN_IF_CUDA_ERROR(dbeta.copy_out("cudaMemcpy(dbeta)"));
  return {};
}

namespace {

ElemType elem_type(DType t) { return t == DType::kBF16 ? ElemType::kBF16 : ElemType::kF32; }

NormKind norm_kind(Norm n) {
  return n == Norm::kRmsNorm ? NormKind::kRmsNorm : NormKind::kLayerNorm;
}

Status to_status(const CudaError& e) {
  if (cuda_error_is_no_device(e))
    return Status::unsupported("backend 'cuda': " + unusable_reason(e));
  return Status::internal("backend 'cuda': " + cuda_error_string(e));
}

Status to_status_or_ok(const CudaError& e) { return e.ok() ? Status{} : to_status(e); }

// A host call's outcome: its error, or OK with its path in the report.
Status report_or_status(const CudaError& e, const PathInfo& info, RunReport* report) {
  if (!e.ok()) return to_status(e);
  if (report == nullptr) return {};
  report->path = info.path;
  report->metrics = {{"blocks_per_row_or_segments", info.cluster},
                     {"threads_per_block", info.threads},
                     {"grid_blocks", static_cast<double>(info.grid)}};
  return {};
}

// The pointers and extents of a validated call, for the kernels.
ForwardDeviceArgs device_args(ElemType dtype, const NormForwardArgs& args,
                              const NormForwardOutputs& out) {
  return {.dtype = dtype,
          .norm = norm_kind(args.norm),
          .x = args.x.data,
          .residual = args.residual.data,
          .gamma = args.gamma.data,
          .beta = args.beta.data,
          .y = out.y.data,
          .h = out.h.data,
          .mean = out.mean.as<float>(),
          .rstd = out.rstd.as<float>(),
          .rows = args.x.shape.rows(),
          .cols = args.x.shape.cols(),
          .eps = static_cast<float>(args.eps)};
}

BackwardDeviceArgs device_args(ElemType dtype, const NormBackwardArgs& args,
                               const NormBackwardOutputs& out) {
  return {.dtype = dtype,
          .norm = norm_kind(args.norm),
          .x = args.x.data,
          .dy = args.dy.data,
          .gamma = args.gamma.data,
          .mean = args.mean.as<float>(),
          .rstd = args.rstd.as<float>(),
          .dh_in = args.dh_in.data,
          .dx = out.dx.data,
          .dgamma = out.dgamma.as<float>(),
          .dbeta = out.dbeta.as<float>(),
          .rows = args.x.shape.rows(),
          .cols = args.x.shape.cols()};
}

}  // namespace

Status norm_forward(const NormForwardArgs& args, const NormForwardOutputs& out,
                    const NormOptions& opt) {
  HostForward call;
  call.args = device_args(elem_type(args.x.dtype), args, out);
  PathInfo info;
  return report_or_status(norm_forward_host(call, &info), info, opt.report);
}

Status norm_backward(const NormBackwardArgs& args, const NormBackwardOutputs& out,
                     const NormOptions& opt) {
  HostBackward call;
  call.args = device_args(elem_type(args.x.dtype), args, out);
  PathInfo info;
  return report_or_status(norm_backward_host(call, &info), info, opt.report);
}

Status norm_device(Context& context, ElemType dtype, const NormForwardArgs& args,
                   const NormForwardOutputs& out, CUstream_st* stream) {
  return to_status_or_ok(norm_forward(context, device_args(dtype, args, out), stream));
}

Status norm_device(Context& context, ElemType dtype, const NormBackwardArgs& args,
                   const NormBackwardOutputs& out, CUstream_st* stream) {
  return to_status_or_ok(norm_backward(context, device_args(dtype, args, out), stream));
}

Status device_status() {
  if (const CudaError e = check_device(); !e.ok()) return to_status(e);
  return {};
}

}  // namespace tilenorm::cuda
