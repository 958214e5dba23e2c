// The CUDA backend behind the public API: host views are copied to the device, the kernels of
// layernorm_cuda.cu run, and the results are copied back. Every CUDA call is checked.
#include "cuda/layernorm_cuda.h"

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

// One device allocation holding a copy of a host tensor (or room for an output), placed
// `misalign` bytes past the 256-byte aligned start that cudaMalloc returns.
class DeviceTensor {
 public:
  DeviceTensor() = default;
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  ~DeviceTensor() {
    if (base_ != nullptr) cudaFree(base_);
  }

  // Allocates `bytes`; copies `host` in when given, else fills with 0xff bytes (NaN in f32,
  // bf16 and fp16) so unwritten outputs are visible.
  CudaError init(const void* host, size_t bytes, size_t misalign, const char* name) {
    bytes_ = bytes;
    TN_CUDA_TRY(cudaMalloc(&base_, bytes + misalign), name);
    ptr_ = static_cast<char*>(base_) + misalign;
    if (host != nullptr)
      TN_CUDA_TRY(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), name);
    else
      TN_CUDA_TRY(cudaMemset(ptr_, 0xff, bytes), name);
    return {};
  }
  CudaError copy_to(void* host, const char* name) const {
    TN_CUDA_TRY(cudaMemcpy(host, ptr_, bytes_, cudaMemcpyDeviceToHost), name);
    return {};
  }
  void* get() const { return ptr_; }

 private:
  void* base_ = nullptr;
  void* ptr_ = nullptr;
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

CudaError layernorm_forward_host(const HostForward& call, PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(check_device());
  const ForwardDeviceArgs& h = call.args;
  const size_t es = elem_size(h.dtype), mis = call.misalign_elems * es;
  const size_t n = static_cast<size_t>(h.rows * h.cols), c = h.cols, r = h.rows;
  DeviceTensor x, gamma, beta, y, mean, rstd;
  TN_RETURN_IF_CUDA_ERROR(x.init(h.x, n * es, mis, "cudaMalloc/cudaMemcpy(x)"));
  TN_RETURN_IF_CUDA_ERROR(gamma.init(h.gamma, c * es, mis, "cudaMalloc/cudaMemcpy(gamma)"));
  if (h.beta != nullptr)
    TN_RETURN_IF_CUDA_ERROR(beta.init(h.beta, c * es, mis, "cudaMalloc/cudaMemcpy(beta)"));
  TN_RETURN_IF_CUDA_ERROR(y.init(nullptr, n * es, mis, "cudaMalloc/cudaMemset(y)"));
  TN_RETURN_IF_CUDA_ERROR(mean.init(nullptr, r * 4, 0, "cudaMalloc/cudaMemset(mean)"));
  TN_RETURN_IF_CUDA_ERROR(rstd.init(nullptr, r * 4, 0, "cudaMalloc/cudaMemset(rstd)"));

  ForwardDeviceArgs d = h;
  d.x = x.get();
  d.gamma = gamma.get();
  d.beta = h.beta != nullptr ? beta.get() : nullptr;
  d.y = y.get();
  d.mean = static_cast<float*>(mean.get());
  d.rstd = static_cast<float*>(rstd.get());
  {
    Context ctx(call.limits);
    TN_RETURN_IF_CUDA_ERROR(layernorm_forward(ctx, d, nullptr, info));
    TN_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize(layernorm_forward kernels)");
  }
  TN_RETURN_IF_CUDA_ERROR(y.copy_to(h.y, "cudaMemcpy(y)"));
  TN_RETURN_IF_CUDA_ERROR(mean.copy_to(h.mean, "cudaMemcpy(mean)"));
  TN_RETURN_IF_CUDA_ERROR(rstd.copy_to(h.rstd, "cudaMemcpy(rstd)"));
  return {};
}

CudaError layernorm_backward_host(const HostBackward& call, PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(check_device());
  const BackwardDeviceArgs& h = call.args;
  const size_t es = elem_size(h.dtype), mis = call.misalign_elems * es;
  const size_t n = static_cast<size_t>(h.rows * h.cols), c = h.cols, r = h.rows;
  DeviceTensor x, dy, gamma, mean, rstd, dx, dgamma, dbeta;
  TN_RETURN_IF_CUDA_ERROR(x.init(h.x, n * es, mis, "cudaMalloc/cudaMemcpy(x)"));
  TN_RETURN_IF_CUDA_ERROR(dy.init(h.dy, n * es, mis, "cudaMalloc/cudaMemcpy(dy)"));
  TN_RETURN_IF_CUDA_ERROR(gamma.init(h.gamma, c * es, mis, "cudaMalloc/cudaMemcpy(gamma)"));
  TN_RETURN_IF_CUDA_ERROR(mean.init(h.mean, r * 4, 0, "cudaMalloc/cudaMemcpy(mean)"));
  TN_RETURN_IF_CUDA_ERROR(rstd.init(h.rstd, r * 4, 0, "cudaMalloc/cudaMemcpy(rstd)"));
  TN_RETURN_IF_CUDA_ERROR(dx.init(nullptr, n * es, mis, "cudaMalloc/cudaMemset(dx)"));
  TN_RETURN_IF_CUDA_ERROR(dgamma.init(nullptr, c * 4, 0, "cudaMalloc/cudaMemset(dgamma)"));
  TN_RETURN_IF_CUDA_ERROR(dbeta.init(nullptr, c * 4, 0, "cudaMalloc/cudaMemset(dbeta)"));

  BackwardDeviceArgs d = h;
  d.x = x.get();
  d.dy = dy.get();
  d.gamma = gamma.get();
  d.mean = static_cast<const float*>(mean.get());
  d.rstd = static_cast<const float*>(rstd.get());
  d.dx = dx.get();
  d.dgamma = static_cast<float*>(dgamma.get());
  d.dbeta = static_cast<float*>(dbeta.get());
  {
    Context ctx(call.limits);
    TN_RETURN_IF_CUDA_ERROR(layernorm_backward(ctx, d, nullptr, info));
    TN_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize(layernorm_backward kernels)");
  }
  TN_RETURN_IF_CUDA_ERROR(dx.copy_to(h.dx, "cudaMemcpy(dx)"));
  TN_RETURN_IF_CUDA_ERROR(dgamma.copy_to(h.dgamma, "cudaMemcpy(dgamma)"));
  TN_RETURN_IF_CUDA_ERROR(dbeta.copy_to(h.dbeta, "cudaMemcpy(dbeta)"));
  return {};
}

namespace {

ElemType elem_type(DType t) { return t == DType::kBF16 ? ElemType::kBF16 : ElemType::kF32; }

Status to_status(const CudaError& e) {
  if (cuda_error_is_no_device(e))
    return Status::unsupported("backend 'cuda': " + unusable_reason(e));
  return Status::internal("backend 'cuda': " + cuda_error_string(e));
}

void fill_report(const PathInfo& info, RunReport* report) {
  if (report == nullptr) return;
  report->path = info.path;
  report->metrics = {{"blocks_per_row_or_segments", info.cluster},
                     {"threads_per_block", info.threads},
                     {"grid_blocks", static_cast<double>(info.grid)}};
}

}  // namespace

Status layernorm_forward(const LayerNormForwardArgs& args, const LayerNormForwardOutputs& out,
                         const LayerNormOptions& opt) {
  HostForward call;
  call.args = {elem_type(args.x.dtype),
               args.x.data,
               args.gamma.data,
               args.beta.data,
               out.y.data,
               out.mean.as<float>(),
               out.rstd.as<float>(),
               args.x.shape.rows(),
               args.x.shape.cols(),
               static_cast<float>(args.eps)};
  PathInfo info;
  if (const CudaError e = layernorm_forward_host(call, &info); !e.ok()) return to_status(e);
  fill_report(info, opt.report);
  return {};
}

Status layernorm_backward(const LayerNormBackwardArgs& args, const LayerNormBackwardOutputs& out,
                          const LayerNormOptions& opt) {
  HostBackward call;
  call.args = {
      elem_type(args.x.dtype), args.x.data,           args.dy.data,       args.gamma.data,
      args.mean.as<float>(),   args.rstd.as<float>(), out.dx.data,        out.dgamma.as<float>(),
      out.dbeta.as<float>(),   args.x.shape.rows(),   args.x.shape.cols()};
  PathInfo info;
  if (const CudaError e = layernorm_backward_host(call, &info); !e.ok()) return to_status(e);
  fill_report(info, opt.report);
  return {};
}

}  // namespace tilenorm::cuda
