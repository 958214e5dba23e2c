// The CUDA backend's Context: the current device's properties, cached occupancy and a reusable
// workspace. Op-independent; the ops are free functions taking a Context.
#include <algorithm>
#include <tuple>

#include "cuda/cuda_try.h"
#include "cuda/norm_common.cuh"
#include "cuda/norm_cuda.h"

namespace tilenorm::cuda {

Context::~Context() {
  if (workspace_ != nullptr) {
    cudaDeviceSynchronize();  // kernels still queued may use it
    cudaFree(workspace_);
  }
}

CudaError Context::init() {
  int device = 0;
  TN_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  if (device == device_) return {};
  if (workspace_ != nullptr) {
    TN_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    TN_CUDA_TRY(cudaFree(workspace_), "cudaFree(workspace)");
    workspace_ = nullptr;
    workspace_bytes_ = 0;
  }
  capacity_cache_.clear();
  TN_RETURN_IF_CUDA_ERROR(check_kernel_image());
  int l2 = 0;
  TN_CUDA_TRY(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device),
              "cudaDeviceGetAttribute(MultiProcessorCount)");
  TN_CUDA_TRY(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device),
              "cudaDeviceGetAttribute(L2CacheSize)");
  l2_bytes_ = l2;
  device_ = device;
  return {};
}

CudaError Context::reserve(size_t bytes, CUstream_st* stream) {
  if (bytes <= workspace_bytes_) return {};
  if (workspace_ != nullptr) {
    TN_CUDA_TRY(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    TN_CUDA_TRY(cudaFree(workspace_), "cudaFree(workspace)");
    workspace_ = nullptr;
    workspace_bytes_ = 0;
  }
  TN_CUDA_TRY(cudaMalloc(&workspace_, bytes), "cudaMalloc(workspace)");
  workspace_bytes_ = bytes;
  return {};
}

CudaError Context::capacity(const void* kernel, int threads, int cluster, size_t smem,
                            int64_t* out) {
  const auto key = std::make_tuple(kernel, threads, cluster, smem);
  if (auto it = capacity_cache_.find(key); it != capacity_cache_.end()) {
    *out = it->second;
    return {};
  }
  int n = 0;
  if (cluster == 1) {
    TN_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, smem),
                "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
    n *= sms_;
  } else {
    const detail::Launch l(cluster, dim3(threads), smem, nullptr, cluster);
    TN_CUDA_TRY(cudaOccupancyMaxActiveClusters(&n, kernel, &l.config),
                "cudaOccupancyMaxActiveClusters");
  }
  capacity_cache_[key] = n;
  *out = n;
  return {};
}

int64_t Context::cap_groups(int64_t groups) const {
  return limits_.max_groups > 0 ? std::min(groups, limits_.max_groups) : groups;
}

int64_t Context::l2_budget() const {
  return limits_.l2_bytes > 0 ? std::min(l2_bytes_, limits_.l2_bytes) : l2_bytes_;
}

}  // namespace tilenorm::cuda
