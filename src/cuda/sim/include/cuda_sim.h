// The CUDA language and runtime as the simulated device (src/cuda/sim) provides them: the CUDA
// headers the backend includes all forward here, so that the .cu sources compile unchanged as
// host C++20. Kernels run as one fiber per CUDA thread (sim.cc); see docs/cuda.md.
//
// - Qualifiers (__global__, __device__, __launch_bounds__) are empty; __shared__ is thread_local:
//   every block of a running cluster runs on its own OS thread, so each block has private shared
//   memory, and a cluster peer's is reached by thread-pointer offset (map_shared_rank).
// - threadIdx, blockIdx, blockDim, gridDim are variables the scheduler sets before it resumes a
//   thread (only one simulated thread runs at a time).
// - Barriers, shuffles and cluster syncs are calls into the scheduler, with the caller's source
//   location for reports.
#pragma once

#include <math.h>  // sqrtf and the other C float functions kernels call unqualified

#include <bit>
#include <cstddef>
#include <cstdint>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers ----------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ thread_local
#define __constant__

// ---- vector types --------------------------------------------------------------------------

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}     // NOLINT(google-explicit-constructor)
  constexpr operator uint3() const { return {x, y, z}; }  // NOLINT(google-explicit-constructor)
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) int2 {
  int x, y;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
static_assert(alignof(uint4) == 16 && sizeof(uint4) == 16 && alignof(float2) == 8);

// ---- built-in variables --------------------------------------------------------------------

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
constexpr int warpSize = 32;

// ---- bit casts and conversions -------------------------------------------------------------

inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline float __int_as_float(int i) { return std::bit_cast<float>(i); }
inline int __float_as_int(float f) { return std::bit_cast<int>(f); }

struct __nv_bfloat16 {
  unsigned short __x;
};
struct __half {
  unsigned short __x;
};
using nv_bfloat16 = __nv_bfloat16;
using half = __half;

namespace tilenorm::cuda::sim {
// CUDA's round-to-nearest-even conversions, bit for bit: a NaN becomes the canonical 0x7fff in
// both formats (sign and payload dropped), as the device's cvt.rn does.
unsigned short float_to_bf16_rn(float f);
unsigned short float_to_half_rn(float f);
float half_to_float(unsigned short h);
}  // namespace tilenorm::cuda::sim

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  return {tilenorm::cuda::sim::float_to_bf16_rn(f)};
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float(unsigned{b.__x} << 16); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return {u}; }
inline __half __float2half_rn(float f) { return {tilenorm::cuda::sim::float_to_half_rn(f)}; }
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float __half2float(__half h) { return tilenorm::cuda::sim::half_to_float(h.__x); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { return {u}; }

// ---- the scheduler's entry points ----------------------------------------------------------

namespace tilenorm::cuda::sim {

enum class ShuffleOp { kIdx, kUp, kDown, kXor };
// A warp shuffle of up to 8 bytes of value bits: waits for every lane `mask` names.
uint64_t shuffle(ShuffleOp op, unsigned mask, uint64_t bits, int lane_arg, int width,
                 const std::source_location& loc);
void sync_threads(const std::source_location& loc);
void sync_warp(unsigned mask, const std::source_location& loc);
void cluster_sync(const std::source_location& loc);
// The address of `p` (in this block's shared memory) in the shared memory of cluster rank `rank`.
void* map_shared_rank(const void* p, unsigned rank, const std::source_location& loc);
// The kernel files' one `extern __shared__` array, defined by the file that includes them (this
// many bytes, in static TLS like every __shared__ variable): launches bound its accesses by their
// dynamic shared-memory size.
bool register_dynamic_smem(const void* p, size_t bytes);
dim3 cluster_dims();    // blocks per cluster in each dimension
unsigned block_rank();  // this block's rank in its cluster

template <typename T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t b = 0;
  __builtin_memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
T from_bits(uint64_t b) {
  T v;
  __builtin_memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace tilenorm::cuda::sim

inline void __syncthreads(std::source_location loc = std::source_location::current()) {
  tilenorm::cuda::sim::sync_threads(loc);
}
inline void __syncwarp(unsigned mask = 0xffffffffu,
                       std::source_location loc = std::source_location::current()) {
  tilenorm::cuda::sim::sync_warp(mask, loc);
}

#define TN_SIM_SHUFFLE(name, op, argtype)                                          \
  template <typename T>                                                            \
  T name(unsigned mask, T var, argtype arg, int width = warpSize,                  \
         std::source_location loc = std::source_location::current()) {             \
    namespace s = tilenorm::cuda::sim;                                             \
    return s::from_bits<T>(                                                        \
        s::shuffle(op, mask, s::to_bits(var), static_cast<int>(arg), width, loc)); \
  }
TN_SIM_SHUFFLE(__shfl_sync, tilenorm::cuda::sim::ShuffleOp::kIdx, int)
TN_SIM_SHUFFLE(__shfl_up_sync, tilenorm::cuda::sim::ShuffleOp::kUp, unsigned)
TN_SIM_SHUFFLE(__shfl_down_sync, tilenorm::cuda::sim::ShuffleOp::kDown, unsigned)
TN_SIM_SHUFFLE(__shfl_xor_sync, tilenorm::cuda::sim::ShuffleOp::kXor, int)
#undef TN_SIM_SHUFFLE

namespace cooperative_groups {

// The thread block cluster of the calling block (sm_90).
class cluster_group {
 public:
  void sync(std::source_location loc = std::source_location::current()) const {
    tilenorm::cuda::sim::cluster_sync(loc);
  }
  template <typename T>
  T* map_shared_rank(T* p, unsigned rank,
                     std::source_location loc = std::source_location::current()) const {
    return static_cast<T*>(tilenorm::cuda::sim::map_shared_rank(p, rank, loc));
  }
  unsigned block_rank() const { return tilenorm::cuda::sim::block_rank(); }
  unsigned num_blocks() const {
    const dim3 d = tilenorm::cuda::sim::cluster_dims();
    return d.x * d.y * d.z;
  }
  dim3 dim_blocks() const { return tilenorm::cuda::sim::cluster_dims(); }
  unsigned num_threads() const { return num_blocks() * blockDim.x * blockDim.y * blockDim.z; }
};
inline cluster_group this_cluster() { return {}; }

}  // namespace cooperative_groups

// ---- runtime -------------------------------------------------------------------------------

// The error codes the backend names, with CUDA's values.
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoKernelImageForDevice = 209,
  cudaErrorJitCompilerNotFound = 221,
  cudaErrorUnsupportedPtxVersion = 222,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorInvalidClusterSize = 912,
  cudaErrorUnknown = 999,
};
using cudaError_t = cudaError;

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxGridDimX = 5,
  cudaDevAttrMaxGridDimY = 6,
  cudaDevAttrMaxGridDimZ = 7,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMaxRegistersPerBlock = 12,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrL2CacheSize = 38,
  cudaDevAttrMaxThreadsPerMultiProcessor = 39,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
  cudaDevAttrMaxRegistersPerMultiprocessor = 82,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
  int l2CacheSize;
  int maxThreadsPerMultiProcessor;
  size_t sharedMemPerMultiprocessor;
  int regsPerMultiprocessor;
  size_t sharedMemPerBlockOptin;
  int maxBlocksPerMultiProcessor;
};

struct cudaFuncAttributes {
  size_t sharedSizeBytes;
  size_t constSizeBytes;
  size_t localSizeBytes;
  int maxThreadsPerBlock;
  int numRegs;
  int ptxVersion;
  int binaryVersion;
  int maxDynamicSharedSizeBytes;
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributeNonPortableClusterSizeAllowed = 11,
};

enum cudaLaunchAttributeID {
  cudaLaunchAttributeClusterDimension = 4,
};
union cudaLaunchAttributeValue {
  struct {
    unsigned x, y, z;
  } clusterDim;
  char pad[64];
};
struct cudaLaunchAttribute {
  cudaLaunchAttributeID id;
  cudaLaunchAttributeValue val;
};
struct cudaLaunchConfig_t {
  dim3 gridDim;
  dim3 blockDim;
  size_t dynamicSmemBytes;
  cudaStream_t stream;
  cudaLaunchAttribute* attrs;
  unsigned numAttrs;
};

const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMalloc(void** p, size_t bytes);
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

namespace tilenorm::cuda::sim {
cudaError_t func_get_attributes(cudaFuncAttributes* attr, const void* kernel);
cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value);
cudaError_t occupancy_blocks(int* n, const void* kernel, int threads, size_t smem);
cudaError_t occupancy_clusters(int* n, const void* kernel, const cudaLaunchConfig_t* config);
// Runs `thunk(payload)` as the kernel `kernel` on the simulated device, synchronously.
cudaError_t launch(const cudaLaunchConfig_t* config, const void* kernel, void (*thunk)(void*),
                   void* payload);
}  // namespace tilenorm::cuda::sim

template <typename T>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* kernel) {
  return tilenorm::cuda::sim::func_get_attributes(attr, reinterpret_cast<const void*>(kernel));
}
template <typename T>
cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
  return tilenorm::cuda::sim::func_set_attribute(reinterpret_cast<const void*>(kernel), attr,
                                                 value);
}
template <typename T>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, T kernel, int threads,
                                                          size_t smem) {
  return tilenorm::cuda::sim::occupancy_blocks(n, reinterpret_cast<const void*>(kernel), threads,
                                               smem);
}
template <typename T>
cudaError_t cudaOccupancyMaxActiveClusters(int* n, T kernel, const cudaLaunchConfig_t* config) {
  return tilenorm::cuda::sim::occupancy_clusters(n, reinterpret_cast<const void*>(kernel), config);
}

// The one launch entry: the arguments are converted to the kernel's parameter types and kept for
// the launch (which runs before this returns), as the runtime copies them.
template <typename... Params, typename... Args>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(Params...),
                               Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel argument count");
  struct Payload {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> args;
  };
  Payload payload{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  return tilenorm::cuda::sim::launch(
      config, reinterpret_cast<const void*>(kernel),
      [](void* p) {
        auto* q = static_cast<Payload*>(p);
        std::apply(q->kernel, q->args);
      },
      &payload);
}
