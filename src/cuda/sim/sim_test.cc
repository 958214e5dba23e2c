// The simulated CUDA device: its conversions against an exact rounding, its runtime's limits and
// errors, and each check against a small kernel that plants the fault it must name (racecheck,
// memcheck, initcheck, synccheck, hangs), plus clean runs of the backend's kernels with no report
// and bitwise identical results across schedule seeds. Compiled with the kernels' instrumentation.
#include "cuda/sim/sim.h"

#include <cooperative_groups.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/norm_cuda.h"

namespace tilenorm::cuda::sim {
namespace {

namespace cg = cooperative_groups;

// ---- helpers -------------------------------------------------------------------------------

// Launches `kernel` with grid/block (and a cluster of `cluster` blocks along x) and returns the
// reports it made.
template <typename... P, typename... A>
std::vector<Report> run(dim3 grid, dim3 block, int cluster, size_t smem, void (*kernel)(P...),
                        A... args) {
  take_reports();
  cudaLaunchConfig_t config{};
  cudaLaunchAttribute attr{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  if (cluster > 1) {
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = static_cast<unsigned>(cluster);
    attr.val.clusterDim.y = attr.val.clusterDim.z = 1;
    config.attrs = &attr;
    config.numAttrs = 1;
  }
  const cudaError_t e = cudaLaunchKernelEx(&config, kernel, args...);
  std::vector<Report> r = take_reports();
  EXPECT_EQ(e == cudaSuccess, r.empty()) << cudaGetErrorName(e);
  cudaGetLastError();
  return r;
}

// The one report of `kind` whose message contains every `needle`; the test fails otherwise.
::testing::AssertionResult reported(const std::vector<Report>& reports, ReportKind kind,
                                    std::initializer_list<const char*> needles) {
  std::string all;
  for (const Report& r : reports) {
    all += std::string(report_kind_name(r.kind)) + ": " + r.kernel + ": " + r.message + "\n";
    if (r.kind != kind) continue;
    bool ok = true;
    for (const char* n : needles) ok = ok && r.message.find(n) != std::string::npos;
    if (ok) return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "no " << report_kind_name(kind) << " report naming the fault among:\n"
         << all;
}

struct DeviceBuffer {
  explicit DeviceBuffer(size_t bytes, bool zero = true) : bytes(bytes) {
    EXPECT_EQ(cudaMalloc(&p, bytes), cudaSuccess);
    if (zero) {
      EXPECT_EQ(cudaMemset(p, 0, bytes), cudaSuccess);
    }
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
  void* p = nullptr;
  size_t bytes;
};

// ---- conversions ---------------------------------------------------------------------------

// Finite non-negative values of a 16-bit format in increasing order, then the value from which
// rounding gives infinity (max + half an ulp rounds up: ties go to the even infinity).
std::vector<std::pair<double, uint16_t>> positive_values(bool half) {
  std::vector<std::pair<double, uint16_t>> v;
  for (uint32_t h = 0; h < (half ? 0x7c00u : 0x7f80u); ++h) {
    const auto u = static_cast<uint16_t>(h);
    v.push_back(
        {half ? __half2float(__ushort_as_half(u)) : __bfloat162float(__ushort_as_bfloat16(u)), u});
  }
  const double max = v.back().first, ulp = max - v[v.size() - 2].first;
  v.push_back({max + ulp, static_cast<uint16_t>(half ? 0x7c00 : 0x7f80)});
  return v;
}

// The value nearest to f >= 0 (ties to the even bit pattern), by search over all of them.
uint16_t nearest_even(double f, const std::vector<std::pair<double, uint16_t>>& v) {
  auto it = std::lower_bound(v.begin(), v.end(), std::make_pair(f, uint16_t{0}));
  if (it == v.end()) return v.back().second;
  if (it == v.begin() || it->first == f) return it->second;
  const auto lo = it - 1;
  const double dl = f - lo->first, dh = it->first - f;
  if (dl != dh) return dl < dh ? lo->second : it->second;
  return (lo->second & 1) == 0 ? lo->second : it->second;
}

TEST(CudaSim, ConversionsRoundToNearestEven) {
  for (const bool half : {true, false}) {
    const auto values = positive_values(half);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> mag(-30.f, half ? 17.f : 128.f);
    for (int i = 0; i < 300000; ++i) {
      float f = std::ldexp(std::uniform_real_distribution<float>(1.f, 2.f)(rng),
                           static_cast<int>(mag(rng)));
      if (i % 3 == 0) {  // an exact tie: halfway between two neighbours
        const size_t k = rng() % (values.size() - 2);
        f = static_cast<float>((values[k].first + values[k + 1].first) / 2);
      }
      const uint16_t want = nearest_even(f, values);
      const uint16_t got = half ? __half_as_ushort(__float2half_rn(f))
                                : __bfloat16_as_ushort(__float2bfloat16_rn(f));
      ASSERT_EQ(got, want) << (half ? "fp16 " : "bf16 ") << f;
      const uint16_t neg = half ? __half_as_ushort(__float2half_rn(-f))
                                : __bfloat16_as_ushort(__float2bfloat16_rn(-f));
      ASSERT_EQ(neg, want | 0x8000u) << f;
    }
  }
  // NaN: CUDA's canonical 0x7fff, sign and payload dropped; infinities kept.
  for (const uint32_t nan : {0x7fc00000u, 0xffc00001u, 0x7f800001u}) {
    EXPECT_EQ(__bfloat16_as_ushort(__float2bfloat16_rn(std::bit_cast<float>(nan))), 0x7fff);
    EXPECT_EQ(__half_as_ushort(__float2half_rn(std::bit_cast<float>(nan))), 0x7fff);
  }
  EXPECT_EQ(__half_as_ushort(__float2half_rn(INFINITY)), 0x7c00);
  EXPECT_EQ(__half_as_ushort(__float2half_rn(65519.99f)), 0x7bff);
  EXPECT_EQ(__half_as_ushort(__float2half_rn(65520.f)), 0x7c00);
  EXPECT_EQ(__bfloat16_as_ushort(__float2bfloat16_rn(-INFINITY)), 0xff80);
  // Every half converts to float and back unchanged.
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const auto u = static_cast<uint16_t>(h);
    if ((u & 0x7c00u) == 0x7c00u && (u & 0x3ffu) != 0) continue;  // NaN
    ASSERT_EQ(__half_as_ushort(__float2half_rn(__half2float(__ushort_as_half(u)))), u) << h;
  }
}

// ---- runtime -------------------------------------------------------------------------------

TEST(CudaSim, DeviceProfiles) {
  cudaDeviceProp p{};
  ASSERT_EQ(cudaGetDeviceProperties(&p, 0), cudaSuccess);
  EXPECT_EQ(p.major, 9);
  EXPECT_EQ(p.multiProcessorCount, 132);
  EXPECT_NE(std::string(p.name).find("simulated"), std::string::npos);
  int l2 = 0;
  ASSERT_TRUE(set_device_profile("h200"));
  ASSERT_EQ(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0), cudaSuccess);
  EXPECT_EQ(l2, 60 << 20);
  ASSERT_TRUE(set_device_profile("h100"));
  ASSERT_EQ(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0), cudaSuccess);
  EXPECT_EQ(l2, 50 << 20);
  EXPECT_FALSE(set_device_profile("a100"));
  EXPECT_EQ(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 1), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST(CudaSim, MemoryIsExactlySized) {
  DeviceBuffer b(100);
  std::vector<char> host(101, 1);
  EXPECT_EQ(cudaMemcpy(b.p, host.data(), 100, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(b.p, host.data(), 101, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(host.data(), b.as<char>() + 1, 100, cudaMemcpyDeviceToHost),
            cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemset(b.as<char>() + 50, 0, 51), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(host.data()), cudaErrorInvalidValue);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.p) % 256, 0u);
  cudaGetLastError();
}

__global__ void noop() {}

TEST(CudaSim, LaunchLimitsAsTheDevice) {
  EXPECT_TRUE(reported(run(dim3(1), dim3(1025), 1, 0, noop), ReportKind::kLaunch, {"1024"}));
  EXPECT_TRUE(reported(run(dim3(1, 65536), dim3(32), 1, 0, noop), ReportKind::kLaunch, {"65535"}));
  EXPECT_TRUE(reported(run(dim3(16), dim3(32), 16, 0, noop), ReportKind::kLaunch, {"cluster"}));
  EXPECT_TRUE(reported(run(dim3(4), dim3(32), 3, 0, noop), ReportKind::kLaunch, {"dividing"}));
  EXPECT_TRUE(reported(run(dim3(1), dim3(32), 1, 48 * 1024 + 4, noop), ReportKind::kLaunch,
                       {"cudaFuncAttributeMaxDynamicSharedMemorySize"}));
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(1);
  config.blockDim = dim3(2048);
  EXPECT_EQ(cudaLaunchKernelEx(&config, noop), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);  // then cleared
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
  config.blockDim = dim3(32);
  config.stream = s;
  EXPECT_EQ(cudaLaunchKernelEx(&config, noop), cudaSuccess);
  ASSERT_EQ(cudaStreamDestroy(s), cudaSuccess);
  EXPECT_EQ(cudaLaunchKernelEx(&config, noop), cudaErrorInvalidResourceHandle);
  take_reports();
  cudaGetLastError();
}

// ---- execution -----------------------------------------------------------------------------

// A block sum through shared memory, a shuffle butterfly and a cluster exchange: the results are
// exact (integers), so any lost or doubled term shows.
__global__ void sums(const int* in, int* out) {
  __shared__ int part[32];
  const int t = static_cast<int>(threadIdx.x), lane = t & 31;
  int v = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  if (lane == 0) part[t >> 5] = v;
  __syncthreads();
  int s = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) s += part[w];
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  int total = 0;
  for (unsigned r = 0; r < cluster.num_blocks(); ++r) total += cluster.map_shared_rank(part, r)[0];
  cluster.sync();
  if (t == 0) out[blockIdx.x * 2] = s;
  if (t == 1) out[blockIdx.x * 2 + 1] = total;
  const int down = __shfl_down_sync(0xffffffffu, t, 3), up = __shfl_up_sync(0xffffffffu, t, 5),
            idx = __shfl_sync(0xffffffffu, t, 7, 8);
  if (down != (lane + 3 < 32 ? t + 3 : t) || up != (lane >= 5 ? t - 5 : t) || idx != (t & ~7) + 7)
    out[blockIdx.x * 2] = -1;
}

TEST(CudaSim, BarriersShufflesAndClustersAreExact) {
  const int blocks = 8, threads = 128;
  std::vector<int> in(blocks * threads);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i % 97);
  DeviceBuffer din(in.size() * 4), dout(blocks * 2 * 4);
  ASSERT_EQ(cudaMemcpy(din.p, in.data(), in.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
  for (int cluster : {1, 2, 4, 8}) {
    for (uint64_t seed : {0, 1, 2}) {
      set_schedule_seed(seed);
      EXPECT_TRUE(
          run(dim3(blocks), dim3(threads), cluster, 0, sums, din.as<const int>(), dout.as<int>())
              .empty());
      std::vector<int> out(blocks * 2);
      ASSERT_EQ(cudaMemcpy(out.data(), dout.p, out.size() * 4, cudaMemcpyDeviceToHost),
                cudaSuccess);
      for (int b = 0; b < blocks; ++b) {
        int s = 0, w0 = 0;
        for (int t = 0; t < threads; ++t) s += in[b * threads + t];
        for (int q = b / cluster * cluster; q < b / cluster * cluster + cluster; ++q)
          for (int t = 0; t < 32; ++t) w0 += in[q * threads + t];
        EXPECT_EQ(out[b * 2], s) << "block " << b << " cluster " << cluster;
        EXPECT_EQ(out[b * 2 + 1], w0) << "block " << b << " cluster " << cluster;
      }
    }
  }
  set_schedule_seed(0);
}

// ---- racecheck -----------------------------------------------------------------------------

__global__ void race_no_barrier(int* out) {
  __shared__ int s[64];
  s[threadIdx.x] = static_cast<int>(threadIdx.x);
  // Missing __syncthreads: thread t reads what thread t + 32 (another warp) wrote.
  out[threadIdx.x] = s[(threadIdx.x + 32) % 64];
}

__global__ void race_in_warp(int* out) {
  __shared__ int s[32];
  s[threadIdx.x] = static_cast<int>(threadIdx.x);
  // Lanes of one warp: no __syncwarp, so independent thread scheduling may reorder them.
  out[threadIdx.x] = s[threadIdx.x ^ 1];
}

__global__ void race_cluster_peer(int* out) {
  __shared__ int s[1];
  cg::cluster_group cluster = cg::this_cluster();
  if (threadIdx.x == 0) s[0] = static_cast<int>(blockIdx.x);
  cluster.sync();
  // Read the peer's value, then overwrite the own one with no cluster.sync between: the peer's
  // read of this block's s races with this write.
  const int peer = *cluster.map_shared_rank(s, cluster.block_rank() ^ 1);
  if (threadIdx.x == 0) s[0] = peer + 100;
  cluster.sync();
  out[blockIdx.x] = peer;
}

TEST(CudaSim, RacecheckNamesSharedMemoryHazards) {
  DeviceBuffer out(64 * 4);
  EXPECT_TRUE(reported(run(dim3(1), dim3(64), 1, 0, race_no_barrier, out.as<int>()),
                       ReportKind::kRace, {"read-after-write", "sim_test.cc:"}));
  EXPECT_TRUE(reported(run(dim3(1), dim3(32), 1, 0, race_in_warp, out.as<int>()), ReportKind::kRace,
                       {"hazard", "sim_test.cc:"}));
  EXPECT_TRUE(reported(run(dim3(2), dim3(32), 2, 0, race_cluster_peer, out.as<int>()),
                       ReportKind::kRace, {"hazard", "cluster rank"}));
}

// ---- memcheck ------------------------------------------------------------------------------

__global__ void read_past_end(const float* in, float* out, int n) {
  out[threadIdx.x] = in[threadIdx.x + static_cast<unsigned>(n)];  // in holds n elements
}

__global__ void misaligned_vector(const float* in, float* out) {
  // A 16-byte vector from an address 4-byte aligned only.
  reinterpret_cast<uint4*>(out)[threadIdx.x] = reinterpret_cast<const uint4*>(in + 1)[0];
}

alignas(16) thread_local float test_dynamic[256];
[[maybe_unused]] const bool test_dynamic_registered =
    register_dynamic_smem(test_dynamic, sizeof test_dynamic);

__global__ void dynamic_smem_overrun(float* out) {
  test_dynamic[threadIdx.x] = 1.f;  // 64 threads, 128 bytes launched
  __syncthreads();
  out[threadIdx.x] = test_dynamic[threadIdx.x];
}

__global__ void peer_after_exit(int* out) {
  __shared__ int s[1];
  cg::cluster_group cluster = cg::this_cluster();
  s[0] = 1;
  cluster.sync();
  out[blockIdx.x] = *cluster.map_shared_rank(s, cluster.block_rank() ^ 1);
  // Missing final cluster.sync: a block may exit while its peer still reads its s.
}

TEST(CudaSim, MemcheckNamesBoundsAlignmentAndExitedPeers) {
  DeviceBuffer in(32 * 4), out(64 * 4);
  EXPECT_TRUE(reported(
      run(dim3(1), dim3(32), 1, 0, read_past_end, in.as<const float>(), out.as<float>(), 30),
      ReportKind::kMemory, {"invalid global read", "past the end of a 128-byte"}));
  EXPECT_TRUE(reported(
      run(dim3(1), dim3(1), 1, 0, misaligned_vector, in.as<const float>(), out.as<float>()),
      ReportKind::kMemory, {"misaligned 16-byte global read"}));
  EXPECT_TRUE(reported(run(dim3(1), dim3(64), 1, 128, dynamic_smem_overrun, out.as<float>()),
                       ReportKind::kMemory, {"dynamic shared memory (128 bytes launched)"}));
  EXPECT_TRUE(run(dim3(1), dim3(32), 1, 128, dynamic_smem_overrun, out.as<float>()).empty());
  EXPECT_TRUE(reported(run(dim3(2), dim3(32), 2, 0, peer_after_exit, out.as<int>()),
                       ReportKind::kMemory, {"which has exited"}));
}

// ---- initcheck -----------------------------------------------------------------------------

__global__ void copy(const float* in, float* out) { out[threadIdx.x] = in[threadIdx.x]; }

__global__ void read_unwritten_shared(float* out) {
  __shared__ float s[64];
  if (threadIdx.x < 32) s[threadIdx.x] = 1.f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];  // 32..63 never written
}

TEST(CudaSim, InitcheckNamesReadsOfUnwrittenMemory) {
  DeviceBuffer in(32 * 4, false), out(64 * 4);
  EXPECT_TRUE(reported(run(dim3(1), dim3(32), 1, 0, copy, in.as<const float>(), out.as<float>()),
                       ReportKind::kUninit, {"global memory never written"}));
  ASSERT_EQ(cudaMemset(in.p, 0, 16 * 4), cudaSuccess);  // half of it
  EXPECT_TRUE(reported(run(dim3(1), dim3(32), 1, 0, copy, in.as<const float>(), out.as<float>()),
                       ReportKind::kUninit, {"byte 64 of a 128-byte allocation"}));
  ASSERT_EQ(cudaMemset(in.p, 0, 32 * 4), cudaSuccess);
  EXPECT_TRUE(run(dim3(1), dim3(32), 1, 0, copy, in.as<const float>(), out.as<float>()).empty());
  EXPECT_TRUE(reported(run(dim3(1), dim3(64), 1, 0, read_unwritten_shared, out.as<float>()),
                       ReportKind::kUninit, {"shared memory", "never written"}));
}

// ---- synccheck and hangs -------------------------------------------------------------------

__global__ void divergent_barrier(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void mask_missing_lane(int* out) {
  const int v = __shfl_xor_sync(0x7fffffffu, static_cast<int>(threadIdx.x), 1);
  out[threadIdx.x] = v;
}

__global__ void lane_exits_while_named(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void masks_disagree(int* out) {
  const unsigned mask = threadIdx.x == 0 ? 0x0000ffffu : 0xffffffffu;
  out[threadIdx.x] = __shfl_down_sync(mask, static_cast<int>(threadIdx.x), 1);
}

__global__ void exits_before_barrier(int* out) {
  if (threadIdx.x == 5) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void peer_finishes_early(int* out) {
  if (cg::this_cluster().block_rank() == 0) return;
  cg::this_cluster().sync();
  out[blockIdx.x] = 1;
}

__global__ void shuffle_versus_barrier(int* out) {
  if (threadIdx.x == 0) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
  }
}

TEST(CudaSim, SynccheckNamesDivergenceAndMaskViolations) {
  DeviceBuffer out(64 * 4);
  EXPECT_TRUE(reported(run(dim3(1), dim3(64), 1, 0, divergent_barrier, out.as<int>()),
                       ReportKind::kSync, {"divergent __syncthreads", "sim_test.cc:"}));
  EXPECT_TRUE(reported(run(dim3(1), dim3(32), 1, 0, mask_missing_lane, out.as<int>()),
                       ReportKind::kSync, {"does not name the calling lane 31"}));
  EXPECT_TRUE(reported(run(dim3(1), dim3(32), 1, 0, lane_exits_while_named, out.as<int>()),
                       ReportKind::kSync, {"exited while named in it"}));
  EXPECT_TRUE(reported(run(dim3(1), dim3(32), 1, 0, masks_disagree, out.as<int>()),
                       ReportKind::kSync, {"masks disagree"}));
  EXPECT_TRUE(reported(run(dim3(1), dim3(64), 1, 0, exits_before_barrier, out.as<int>()),
                       ReportKind::kSync, {"exited without reaching it", "thread (5,0,0)"}));
  EXPECT_TRUE(reported(run(dim3(2), dim3(32), 2, 0, peer_finishes_early, out.as<int>()),
                       ReportKind::kSync, {"cluster rank(s) 0 finished"}));
  EXPECT_TRUE(reported(run(dim3(1), dim3(32), 1, 0, shuffle_versus_barrier, out.as<int>()),
                       ReportKind::kHang, {"wait at __syncthreads", "wait at a shuffle"}));
}

// ---- the backend's kernels -----------------------------------------------------------------

// Forward and backward of the backend on one shape, through its host entry: outputs as bits.
std::vector<uint32_t> run_backend(ElemType e, NormKind n, bool residual, int64_t rows, int64_t cols,
                                  const Limits& limits) {
  const size_t es = elem_size(e), count = static_cast<size_t>(rows * cols);
  std::mt19937 rng(static_cast<unsigned>(rows * 131 + cols));
  auto raw = [&](size_t k) {
    std::vector<uint8_t> v(k * es);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (size_t i = 0; i < k; ++i) {
      const float f = u(rng);
      if (e == ElemType::kF32) {
        std::memcpy(&v[i * 4], &f, 4);
      } else {
        const uint16_t h = e == ElemType::kBF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(f))
                                                : __half_as_ushort(__float2half_rn(f));
        std::memcpy(&v[i * 2], &h, 2);
      }
    }
    return v;
  };
  const auto x = raw(count), res = raw(count), gamma = raw(cols), beta = raw(cols), dy = raw(count);
  std::vector<uint8_t> y(count * es), h(count * es), dx(count * es);
  std::vector<float> mean(rows), rstd(rows), dgamma(cols), dbeta(cols);
  const bool layer = n == NormKind::kLayerNorm;
  HostForward f;
  f.args = {e,
            n,
            x.data(),
            residual ? res.data() : nullptr,
            gamma.data(),
            layer ? beta.data() : nullptr,
            y.data(),
            residual ? h.data() : nullptr,
            layer ? mean.data() : nullptr,
            rstd.data(),
            rows,
            cols,
            1e-5f};
  f.limits = limits;
  EXPECT_TRUE(norm_forward_host(f).ok());
  HostBackward b;
  b.args = {e,
            n,
            residual ? h.data() : x.data(),
            dy.data(),
            gamma.data(),
            layer ? mean.data() : nullptr,
            rstd.data(),
            residual ? dy.data() : nullptr,
            dx.data(),
            dgamma.data(),
            layer ? dbeta.data() : nullptr,
            rows,
            cols};
  b.limits = limits;
  EXPECT_TRUE(norm_backward_host(b).ok());
  std::vector<uint32_t> bits;
  auto add = [&](const void* p, size_t bytes) {
    const size_t at = bits.size();
    bits.resize(at + (bytes + 3) / 4);
    std::memcpy(bits.data() + at, p, bytes);
  };
  add(y.data(), y.size());
  add(h.data(), h.size());
  add(dx.data(), dx.size());
  add(mean.data(), mean.size() * 4);
  add(rstd.data(), rstd.size() * 4);
  add(dgamma.data(), dgamma.size() * 4);
  add(dbeta.data(), dbeta.size() * 4);
  return bits;
}

// Every path (rows with several row groups, a cluster of 2, 4 and 8, split with several batches;
// groups looping over rows) with every check on: no report, and the same bits for three
// schedule seeds (the order of threads between barriers and of blocks).
TEST(CudaSim, BackendKernelsCleanAndDeterministicAcrossSeeds) {
  struct Shape {
    int64_t rows, cols;
    Limits limits;
  };
  const Shape shapes[] = {{25, 1001, {2, 0}}, {7, 4100, {2, 0}},  {5, 8462, {2, 0}},
                          {3, 20000, {0, 0}}, {3, 65536, {1, 0}}, {7, 65537, {0, 600000}},
                          {5, 1, {0, 0}}};
  for (const Shape& s : shapes)
    for (ElemType e : {ElemType::kF32, ElemType::kBF16, ElemType::kF16}) {
      const NormKind n = s.cols % 2 == 0 ? NormKind::kRmsNorm : NormKind::kLayerNorm;
      std::vector<uint32_t> first;
      for (uint64_t seed : {0, 7, 12345}) {
        set_schedule_seed(seed);
        take_reports();
        const std::vector<uint32_t> bits =
            run_backend(e, n, e != ElemType::kF32, s.rows, s.cols, s.limits);
        const auto reports = take_reports();
        EXPECT_TRUE(reports.empty()) << s.rows << "x" << s.cols << ": " << reports.front().message;
        if (first.empty())
          first = bits;
        else
          EXPECT_TRUE(bits == first) << s.rows << "x" << s.cols << " seed " << seed;
      }
    }
  set_schedule_seed(0);
}

// One Context reused over shapes whose workspace grows and shrinks, on a stream of its own: the
// same bits as the host entry (a fresh Context and the default stream each call).
TEST(CudaSim, ReusedContextOnAStream) {
  Context ctx;
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
           {5, 1000}, {3, 8462}, {2, 70000}, {4, 1000}, {3, 65537}}) {
    const size_t n = static_cast<size_t>(rows * cols);
    std::mt19937 rng(static_cast<unsigned>(cols));
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> x(n), dy(n), gamma(cols), beta(cols);
    for (auto* v : {&x, &dy, &gamma, &beta})
      for (float& f : *v) f = u(rng);
    // The host entry's results.
    std::vector<float> y(n), mean(rows), rstd(rows), dx(n), dgamma(cols), dbeta(cols);
    HostForward hf;
    hf.args = {ElemType::kF32, NormKind::kLayerNorm, x.data(), nullptr,
               gamma.data(),   beta.data(),          y.data(), nullptr,
               mean.data(),    rstd.data(),          rows,     cols,
               1e-5f};
    ASSERT_TRUE(norm_forward_host(hf).ok());
    HostBackward hb;
    hb.args = {ElemType::kF32,
               NormKind::kLayerNorm,
               x.data(),
               dy.data(),
               gamma.data(),
               mean.data(),
               rstd.data(),
               nullptr,
               dx.data(),
               dgamma.data(),
               dbeta.data(),
               rows,
               cols};
    ASSERT_TRUE(norm_backward_host(hb).ok());
    // The device entry on the reused Context and the stream.
    DeviceBuffer dxin(n * 4), ddy(n * 4), dgam(cols * 4), dbet(cols * 4), dyout(n * 4),
        dmean(rows * 4), drstd(rows * 4), ddx(n * 4), ddg(cols * 4), ddb(cols * 4);
    ASSERT_EQ(cudaMemcpy(dxin.p, x.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(ddy.p, dy.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dgam.p, gamma.data(), cols * 4, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dbet.p, beta.data(), cols * 4, cudaMemcpyHostToDevice), cudaSuccess);
    const ForwardDeviceArgs fa{
        ElemType::kF32,    NormKind::kLayerNorm, dxin.p, nullptr, dgam.p, dbet.p, dyout.p, nullptr,
        dmean.as<float>(), drstd.as<float>(),    rows,   cols,    1e-5f};
    ASSERT_TRUE(norm_forward(ctx, fa, stream).ok());
    const BackwardDeviceArgs ba{ElemType::kF32,
                                NormKind::kLayerNorm,
                                dxin.p,
                                ddy.p,
                                dgam.p,
                                dmean.as<float>(),
                                drstd.as<float>(),
                                nullptr,
                                ddx.p,
                                ddg.as<float>(),
                                ddb.as<float>(),
                                rows,
                                cols};
    ASSERT_TRUE(norm_backward(ctx, ba, stream).ok());
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    auto same = [&](const DeviceBuffer& d, const std::vector<float>& want, const char* name) {
      std::vector<float> got(want.size());
      ASSERT_EQ(cudaMemcpy(got.data(), d.p, got.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0)
          << name << " " << rows << "x" << cols;
    };
    same(dyout, y, "y");
    same(dmean, mean, "mean");
    same(drstd, rstd, "rstd");
    same(ddx, dx, "dx");
    same(ddg, dgamma, "dgamma");
    same(ddb, dbeta, "dbeta");
  }
  EXPECT_TRUE(take_reports().empty());
  ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

}  // namespace
}  // namespace tilenorm::cuda::sim
