// The simulated device's runtime: the device profile, errors with cudaGetLastError semantics,
// exactly sized device allocations in one reserved address range, copies and fills checked
// against them, streams, events, attribute and occupancy queries, and the bf16/fp16 conversions.
#include <dlfcn.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "cuda/sim/sim_internal.h"

namespace tilenorm::cuda::sim {

// ---- conversions ---------------------------------------------------------------------------

unsigned short float_to_bf16_rn(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  uint32_t r = x >> 16;
  const uint32_t rem = x & 0xffffu;
  if (rem > 0x8000u || (rem == 0x8000u && (r & 1u) != 0)) ++r;
  return static_cast<unsigned short>(r);
}

unsigned short float_to_half_rn(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return 0x7fff;
  if (ax >= 0x477ff000u) return static_cast<unsigned short>(sign | 0x7c00u);  // >= 65520: inf
  const uint32_t e = ax >> 23, mant = ax & 0x7fffffu;
  uint32_t r = 0, rem = 0, half = 0;
  if (e < 113) {  // below 2^-14: a subnormal half (units of 2^-24) or zero
    const uint32_t m = e == 0 ? mant : (mant | 0x800000u);
    const uint32_t shift = (e == 0 ? 1 : e) <= 126 ? 126 - (e == 0 ? 1 : e) : 0;
    if (shift >= 25) return static_cast<unsigned short>(sign);
    r = m >> shift;
    rem = m & ((1u << shift) - 1);
    half = 1u << (shift - 1);
  } else {
    r = ((e - 112) << 10) | (mant >> 13);
    rem = mant & 0x1fffu;
    half = 0x1000u;
  }
  if (rem > half || (rem == half && (r & 1u) != 0)) ++r;
  return static_cast<unsigned short>(sign | r);
}

float half_to_float(unsigned short h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    const float v = static_cast<float>(m) * 0x1p-24f;
    return sign != 0 ? -v : v;
  }
  return std::bit_cast<float>(sign | ((e + 112) << 23) | (m << 13));
}

namespace detail {

// ---- device profile ------------------------------------------------------------------------

namespace {

// H100 SXM5 80GB and H200 141GB as the CUDA runtime reports them: 132 SMs in 8 GPCs, 228 KiB
// shared memory per SM (227 KiB a block with the opt-in, 48 KiB without), 64 Ki registers.
constexpr DeviceProfile kH100{"NVIDIA H100 80GB HBM3 (simulated)",
                              132,
                              50 << 20,
                              size_t{80} << 30,
                              228 << 10,
                              48 << 10,
                              227 << 10,
                              65536,
                              65536,
                              2048,
                              32,
                              8};
constexpr DeviceProfile kH200{"NVIDIA H200 (simulated)",
                              132,
                              60 << 20,
                              size_t{141} << 30,
                              228 << 10,
                              48 << 10,
                              227 << 10,
                              65536,
                              65536,
                              2048,
                              32,
                              8};

const DeviceProfile* g_profile = [] {
  const char* s = std::getenv("TILENORM_CUDA_SIM_DEVICE");
  return s != nullptr && std::string(s) == "h200" ? &kH200 : &kH100;
}();

// The registers a thread is assumed to use: nvcc's counts exist only in a GPU build.
constexpr int kAssumedRegs = 64;

}  // namespace

const DeviceProfile& device() { return *g_profile; }

// ---- errors --------------------------------------------------------------------------------

namespace {
thread_local cudaError_t g_last_error = cudaSuccess;  // per host thread, as CUDA's
}

void set_last_error(cudaError_t e) {
  if (e != cudaSuccess) g_last_error = e;
}

// ---- memory --------------------------------------------------------------------------------

namespace {

constexpr size_t kArenaBytes = size_t{1} << 38;  // reserved, never committed up front
constexpr size_t kAlign = 256;                   // cudaMalloc's alignment
constexpr size_t kRedZone = 512;                 // no allocation within this past another's end

struct Memory {
  std::mutex mu;
  uintptr_t lo = 0, hi = 0;
  std::map<uintptr_t, std::unique_ptr<Allocation>> live;  // by base
  std::map<uintptr_t, size_t> free;                       // free ranges by start
  size_t live_bytes = 0;

  Memory() {
    void* p = mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "cuda-sim: cannot reserve the device address range\n");
      std::abort();
    }
    lo = reinterpret_cast<uintptr_t>(p);
    hi = lo + kArenaBytes;
    free[lo] = kArenaBytes;
  }

  uintptr_t take(size_t bytes) {
    const size_t need = (bytes + kRedZone + kAlign - 1) / kAlign * kAlign;
    for (auto it = free.begin(); it != free.end(); ++it) {
      if (it->second < need) continue;
      const uintptr_t base = it->first;
      const size_t rest = it->second - need;
      free.erase(it);
      if (rest > 0) free[base + need] = rest;
      return base;
    }
    return 0;
  }

  void give(uintptr_t base, size_t bytes) {
    const size_t len = (bytes + kRedZone + kAlign - 1) / kAlign * kAlign;
    // Return whole pages to the system (they read as zero when reused).
    const uintptr_t page = 4096, first = (base + page - 1) & ~(page - 1),
                    last = (base + len) & ~(page - 1);
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
    auto [it, inserted] = free.emplace(base, len);
    (void)inserted;
    if (auto next = std::next(it); next != free.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free.erase(next);
    }
    if (it != free.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free.erase(it);
      }
    }
  }
};

Memory& memory() {
  static Memory* m = new Memory();  // lives as long as the process: allocations may outlive main
  return *m;
}

// The last allocation found (one simulated thread runs at a time; cudaFree clears it).
Allocation* t_last_hit = nullptr;

// The allocation holding [p, p + bytes), or null.
Allocation* holding(const void* p, size_t bytes) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  Allocation* al = find_allocation(a);
  if (al == nullptr || a + bytes > al->base + al->bytes) return nullptr;
  return al;
}

}  // namespace

bool in_arena(uintptr_t a) {
  const Memory& m = memory();
  return a >= m.lo && a < m.hi;
}

Allocation* find_allocation(uintptr_t a) {
  if (Allocation* c = t_last_hit; c != nullptr && a >= c->base && a < c->base + c->bytes) return c;
  Memory& m = memory();
  auto it = m.live.upper_bound(a);
  if (it == m.live.begin()) return nullptr;
  --it;
  Allocation* al = it->second.get();
  if (a >= al->base + al->bytes) return nullptr;
  t_last_hit = al;
  return al;
}

}  // namespace detail

// ---- control -------------------------------------------------------------------------------

const char* report_kind_name(ReportKind k) {
  switch (k) {
    case ReportKind::kRace:
      return "racecheck";
    case ReportKind::kMemory:
      return "memcheck";
    case ReportKind::kUninit:
      return "initcheck";
    case ReportKind::kSync:
      return "synccheck";
    case ReportKind::kHang:
      return "hang";
    case ReportKind::kLaunch:
      return "launch";
  }
  return "?";
}

bool set_device_profile(const std::string& name) {
  if (name == "h100")
    detail::g_profile = &detail::kH100;
  else if (name == "h200")
    detail::g_profile = &detail::kH200;
  else
    return false;
  return true;
}

// ---- attribute and occupancy queries -------------------------------------------------------

namespace {

std::mutex g_attr_mu;
std::map<const void*, int> g_max_dynamic_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize

// Blocks of `threads` threads and `smem` dynamic shared bytes one SM holds.
int blocks_per_sm(int threads, size_t smem) {
  const auto& d = detail::device();
  if (threads <= 0 || threads > 1024) return 0;
  const int warps = (threads + 31) / 32;
  int n = std::min(d.blocks_per_sm, d.threads_per_sm / (warps * 32));
  n = std::min(n, d.regs_per_sm / (warps * 32 * detail::kAssumedRegs));
  const size_t per_block = smem + 1024;  // the runtime reserves 1 KiB a block
  n = std::min<int>(n, static_cast<int>(d.smem_per_sm / per_block));
  return std::max(n, 0);
}

}  // namespace

cudaError_t func_get_attributes(cudaFuncAttributes* attr, const void* kernel) {
  if (attr == nullptr || kernel == nullptr) return cudaErrorInvalidValue;
  *attr = {};
  attr->maxThreadsPerBlock = 1024;
  attr->numRegs = detail::kAssumedRegs;
  attr->ptxVersion = 90;
  attr->binaryVersion = 90;
  std::lock_guard lock(g_attr_mu);
  auto it = g_max_dynamic_smem.find(kernel);
  attr->maxDynamicSharedSizeBytes =
      it != g_max_dynamic_smem.end() ? it->second : detail::device().smem_per_block;
  return cudaSuccess;
}

cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (kernel == nullptr) return cudaErrorInvalidDeviceFunction;
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > detail::device().smem_per_block_optin) return cudaErrorInvalidValue;
    std::lock_guard lock(g_attr_mu);
    g_max_dynamic_smem[kernel] = value;
  }
  return cudaSuccess;
}

int max_dynamic_smem(const void* kernel) {
  std::lock_guard lock(g_attr_mu);
  auto it = g_max_dynamic_smem.find(kernel);
  return it != g_max_dynamic_smem.end() ? it->second : detail::device().smem_per_block;
}

cudaError_t occupancy_blocks(int* n, const void* kernel, int threads, size_t smem) {
  if (n == nullptr || kernel == nullptr) return cudaErrorInvalidValue;
  *n = blocks_per_sm(threads, smem);
  return cudaSuccess;
}

cudaError_t occupancy_clusters(int* n, const void* kernel, const cudaLaunchConfig_t* config) {
  if (n == nullptr || kernel == nullptr || config == nullptr) return cudaErrorInvalidValue;
  unsigned cluster = 1;
  for (unsigned i = 0; i < config->numAttrs; ++i)
    if (config->attrs[i].id == cudaLaunchAttributeClusterDimension) {
      const auto& c = config->attrs[i].val.clusterDim;
      cluster = c.x * c.y * c.z;
    }
  if (cluster == 0 || cluster > 8) return cudaErrorInvalidValue;
  const dim3 b = config->blockDim;
  const int per_sm = blocks_per_sm(static_cast<int>(b.x * b.y * b.z), config->dynamicSmemBytes);
  // A cluster's blocks share one GPC: the SMs split over the GPCs as evenly as they go.
  const auto& d = detail::device();
  int total = 0;
  for (int g = 0; g < d.gpcs; ++g) {
    const int sms = d.sms / d.gpcs + (g < d.sms % d.gpcs ? 1 : 0);
    total += sms * per_sm / static_cast<int>(cluster);
  }
  *n = total;
  return cudaSuccess;
}

}  // namespace tilenorm::cuda::sim

// ---- the runtime API -----------------------------------------------------------------------

namespace sim = tilenorm::cuda::sim;
namespace simd = tilenorm::cuda::sim::detail;

struct CUstream_st {
  int id;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
};

namespace {

std::mutex g_handles_mu;
std::set<CUstream_st*> g_streams;
std::set<CUevent_st*> g_events;

cudaError_t fail(cudaError_t e) {
  simd::set_last_error(e);
  return e;
}

}  // namespace

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define TN_SIM_ERR(x) \
  case x:             \
    return #x;
    TN_SIM_ERR(cudaSuccess)
    TN_SIM_ERR(cudaErrorInvalidValue)
    TN_SIM_ERR(cudaErrorMemoryAllocation)
    TN_SIM_ERR(cudaErrorInitializationError)
    TN_SIM_ERR(cudaErrorInvalidConfiguration)
    TN_SIM_ERR(cudaErrorInvalidMemcpyDirection)
    TN_SIM_ERR(cudaErrorInsufficientDriver)
    TN_SIM_ERR(cudaErrorInvalidDeviceFunction)
    TN_SIM_ERR(cudaErrorNoDevice)
    TN_SIM_ERR(cudaErrorInvalidDevice)
    TN_SIM_ERR(cudaErrorNoKernelImageForDevice)
    TN_SIM_ERR(cudaErrorJitCompilerNotFound)
    TN_SIM_ERR(cudaErrorUnsupportedPtxVersion)
    TN_SIM_ERR(cudaErrorInvalidResourceHandle)
    TN_SIM_ERR(cudaErrorNotReady)
    TN_SIM_ERR(cudaErrorIllegalAddress)
    TN_SIM_ERR(cudaErrorLaunchOutOfResources)
    TN_SIM_ERR(cudaErrorMisalignedAddress)
    TN_SIM_ERR(cudaErrorLaunchFailure)
    TN_SIM_ERR(cudaErrorNotSupported)
    TN_SIM_ERR(cudaErrorInvalidClusterSize)
    TN_SIM_ERR(cudaErrorUnknown)
#undef TN_SIM_ERR
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorInvalidDeviceFunction:
      return "invalid device function";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure (the simulated device's checks reported it)";
    case cudaErrorInvalidClusterSize:
      return "invalid cluster size";
    default:
      return cudaGetErrorName(e);
  }
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = simd::g_last_error;
  simd::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return simd::g_last_error; }

cudaError_t cudaGetDeviceCount(int* n) {
  if (n == nullptr) return fail(cudaErrorInvalidValue);
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  const auto& d = simd::device();
  *prop = {};
  std::snprintf(prop->name, sizeof prop->name, "%s", d.name);
  prop->totalGlobalMem = d.global_bytes;
  prop->sharedMemPerBlock = d.smem_per_block;
  prop->regsPerBlock = d.regs_per_block;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = d.sms;
  prop->l2CacheSize = d.l2_bytes;
  prop->maxThreadsPerMultiProcessor = d.threads_per_sm;
  prop->sharedMemPerMultiprocessor = d.smem_per_sm;
  prop->regsPerMultiprocessor = d.regs_per_sm;
  prop->sharedMemPerBlockOptin = d.smem_per_block_optin;
  prop->maxBlocksPerMultiProcessor = d.blocks_per_sm;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  const auto& d = simd::device();
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      break;
    case cudaDevAttrMaxGridDimX:
      *value = 2147483647;
      break;
    case cudaDevAttrMaxGridDimY:
    case cudaDevAttrMaxGridDimZ:
      *value = 65535;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = d.smem_per_block;
      break;
    case cudaDevAttrWarpSize:
      *value = 32;
      break;
    case cudaDevAttrMaxRegistersPerBlock:
      *value = d.regs_per_block;
      break;
    case cudaDevAttrMultiProcessorCount:
      *value = d.sms;
      break;
    case cudaDevAttrL2CacheSize:
      *value = d.l2_bytes;
      break;
    case cudaDevAttrMaxThreadsPerMultiProcessor:
      *value = d.threads_per_sm;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
      *value = d.smem_per_sm;
      break;
    case cudaDevAttrMaxRegistersPerMultiprocessor:
      *value = d.regs_per_sm;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = d.smem_per_block_optin;
      break;
    default:
      return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

// Launches run synchronously: every queued kernel has finished.
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  auto& m = simd::memory();
  std::lock_guard lock(m.mu);
  if (bytes > simd::device().global_bytes - m.live_bytes) return fail(cudaErrorMemoryAllocation);
  const uintptr_t base = m.take(bytes);
  if (base == 0) return fail(cudaErrorMemoryAllocation);
  auto al = std::make_unique<simd::Allocation>();
  al->base = base;
  al->bytes = bytes;
  al->written.assign(bytes, 0);
  m.live_bytes += bytes;
  m.live[base] = std::move(al);
  *p = reinterpret_cast<void*>(base);
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  auto& m = simd::memory();
  std::lock_guard lock(m.mu);
  auto it = m.live.find(reinterpret_cast<uintptr_t>(p));
  if (it == m.live.end()) return fail(cudaErrorInvalidValue);
  const size_t bytes = it->second->bytes;
  if (simd::t_last_hit == it->second.get()) simd::t_last_hit = nullptr;
  m.live.erase(it);
  m.live_bytes -= bytes;
  m.give(reinterpret_cast<uintptr_t>(p), bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return fail(cudaErrorInvalidValue);
  auto& m = simd::memory();
  std::lock_guard lock(m.mu);
  const bool dev_dst = simd::in_arena(reinterpret_cast<uintptr_t>(dst));
  const bool dev_src = simd::in_arena(reinterpret_cast<uintptr_t>(src));
  if (kind == cudaMemcpyDefault)
    kind = dev_dst ? (dev_src ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                   : (dev_src ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  const bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind > cudaMemcpyDefault) return fail(cudaErrorInvalidMemcpyDirection);
  simd::Allocation* d = want_dst ? simd::holding(dst, bytes) : nullptr;
  if ((want_dst && d == nullptr) || (want_src && simd::holding(src, bytes) == nullptr) ||
      (!want_dst && dev_dst) || (!want_src && dev_src))
    return fail(cudaErrorInvalidValue);
  std::memcpy(dst, src, bytes);
  if (d != nullptr)
    std::memset(d->written.data() + (reinterpret_cast<uintptr_t>(dst) - d->base), 1, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  auto& m = simd::memory();
  std::lock_guard lock(m.mu);
  simd::Allocation* d = simd::holding(p, bytes);
  if (d == nullptr) return fail(cudaErrorInvalidValue);
  std::memset(p, value, bytes);
  std::memset(d->written.data() + (reinterpret_cast<uintptr_t>(p) - d->base), 1, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(p, value, bytes);
}

namespace tilenorm::cuda::sim::detail {
bool valid_stream(cudaStream_t s) {
  if (s == nullptr) return true;
  std::lock_guard lock(g_handles_mu);
  return g_streams.count(s) != 0;
}
}  // namespace tilenorm::cuda::sim::detail

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  if (s == nullptr) return fail(cudaErrorInvalidValue);
  static int next = 1;
  std::lock_guard lock(g_handles_mu);
  *s = new CUstream_st{next++};
  g_streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard lock(g_handles_mu);
  if (s == nullptr || g_streams.erase(s) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  return simd::valid_stream(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  if (e == nullptr) return fail(cudaErrorInvalidValue);
  std::lock_guard lock(g_handles_mu);
  *e = new CUevent_st{std::chrono::steady_clock::now()};
  g_events.insert(*e);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  std::lock_guard lock(g_handles_mu);
  if (e == nullptr || g_events.erase(e) == 0) return fail(cudaErrorInvalidResourceHandle);
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!simd::valid_stream(s)) return fail(cudaErrorInvalidResourceHandle);
  std::lock_guard lock(g_handles_mu);
  if (g_events.count(e) == 0) return fail(cudaErrorInvalidResourceHandle);
  e->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  std::lock_guard lock(g_handles_mu);
  return g_events.count(e) != 0 ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
// Host time between the records: the simulator's, not a GPU's.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  std::lock_guard lock(g_handles_mu);
  if (ms == nullptr) return fail(cudaErrorInvalidValue);
  if (g_events.count(start) == 0 || g_events.count(end) == 0)
    return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}
