// GPU benchmark (bench/gpu/run.sh): the device-to-device copy ceiling and tilenorm's CUDA
// norm_forward / norm_backward (LayerNorm and RMSNorm, each without and with the fused residual
// add) on device memory (no host transfers), timed with CUDA events: warm-up, then `iters` calls
// queued back to back, median of the per-call times. Each configuration is validated once before
// timing: outputs are pre-filled with NaN and no NaN may remain (the inputs are finite);
// conformance itself is norm_cuda_test's job. Prints one JSON object per line.
//
//   norm_cuda_bench [--iters N] [--warmup N] [--dtypes bf16,f32,f16] [--shapes 64x1048576,...]
//                        [--norms layernorm,rmsnorm] [--residual off,on]
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/norm_cuda.h"

namespace {

using tilenorm::cuda::ElemType;
using tilenorm::cuda::NormKind;

#define BENCH_CHECK(call)                                                                         \
  do {                                                                                            \
    const cudaError_t e_ = (call);                                                                \
    if (e_ != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

#define BENCH_CHECK_TN(expr)                                                                  \
  do {                                                                                        \
    const tilenorm::cuda::CudaError e_ = (expr);                                              \
    if (!e_.ok()) {                                                                           \
      std::fprintf(stderr, "%s: %s\n", #expr, tilenorm::cuda::cuda_error_string(e_).c_str()); \
      std::exit(1);                                                                           \
    }                                                                                         \
  } while (0)

// Uniform [lo, hi) from a hash of the index, rounded to T.
template <typename T>
__global__ void fill_uniform(T* p, int64_t n, uint32_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9e3779b1u ^ static_cast<uint32_t>(i >> 32) ^ seed;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    const float u = lo + (hi - lo) * (h >> 8) * (1.0f / 16777216.0f);
    if constexpr (std::is_same_v<T, float>) p[i] = u;
    if constexpr (std::is_same_v<T, __nv_bfloat16>) p[i] = __float2bfloat16_rn(u);
    if constexpr (std::is_same_v<T, __half>) p[i] = __float2half_rn(u);
  }
}

// Counts NaN among n elements of type t (f32 for the statistics and parameter gradients).
__global__ void count_nan(const void* p, int64_t n, ElemType t, unsigned long long* out) {
  unsigned long long c = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    if (t == ElemType::kF32) {
      c += isnan(static_cast<const float*>(p)[i]);
    } else {
      const uint16_t abs = static_cast<const uint16_t*>(p)[i] & 0x7fffu;
      c += abs > (t == ElemType::kBF16 ? 0x7f80u : 0x7c00u);
    }
  }
  if (c) atomicAdd(out, c);
}

struct Buffer {
  void* p = nullptr;
  explicit Buffer(size_t bytes) { BENCH_CHECK(cudaMalloc(&p, bytes)); }
  ~Buffer() { cudaFree(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

void fill(void* p, ElemType t, int64_t n, uint32_t seed, float lo, float hi) {
  const int blocks = 1024, threads = 256;
  switch (t) {
    case ElemType::kF32:
      fill_uniform<<<blocks, threads>>>(static_cast<float*>(p), n, seed, lo, hi);
      break;
    case ElemType::kBF16:
      fill_uniform<<<blocks, threads>>>(static_cast<__nv_bfloat16*>(p), n, seed, lo, hi);
      break;
    case ElemType::kF16:
      fill_uniform<<<blocks, threads>>>(static_cast<__half*>(p), n, seed, lo, hi);
      break;
  }
  BENCH_CHECK(cudaGetLastError());
}

unsigned long long nan_count(const void* p, int64_t n, ElemType t) {
  Buffer out(sizeof(unsigned long long));
  BENCH_CHECK(cudaMemset(out.p, 0, sizeof(unsigned long long)));
  count_nan<<<1024, 256>>>(p, n, t, static_cast<unsigned long long*>(out.p));
  BENCH_CHECK(cudaGetLastError());
  unsigned long long c = 0;
  BENCH_CHECK(cudaMemcpy(&c, out.p, sizeof c, cudaMemcpyDeviceToHost));
  return c;
}

// Median milliseconds of fn() over `iters` calls queued back to back after `warmup` calls.
template <typename F>
double time_ms(F&& fn, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn();
  BENCH_CHECK(cudaDeviceSynchronize());
  std::vector<cudaEvent_t> ev(2 * iters);
  for (auto& e : ev) BENCH_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < iters; ++i) {
    BENCH_CHECK(cudaEventRecord(ev[2 * i]));
    fn();
    BENCH_CHECK(cudaEventRecord(ev[2 * i + 1]));
  }
  BENCH_CHECK(cudaDeviceSynchronize());
  std::vector<float> ms(iters);
  for (int i = 0; i < iters; ++i)
    BENCH_CHECK(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]));
  for (auto& e : ev) BENCH_CHECK(cudaEventDestroy(e));
  std::sort(ms.begin(), ms.end());
  return ms[iters / 2];
}

// The byte model of docs/performance.md (GPU section, "Byte model"), for the norm family:
// forward reads x (and residual), writes y (and h), reads gamma (and beta), writes mean (LayerNorm)
// and rstd/rrms; backward reads x (h), dy (and dh_in), writes dx, reads gamma, writes dgamma (and
// dbeta), reads mean (LayerNorm) and rstd/rrms.
double fwd_bytes(NormKind norm, bool residual, int64_t n, int64_t d, int es) {
  const int params = norm == NormKind::kLayerNorm ? 2 : 1;  // gamma, beta; mean, rstd
  return (residual ? 4.0 : 2.0) * n * d * es + 1.0 * params * d * es + 4.0 * params * n;
}
double bwd_bytes(NormKind norm, bool residual, int64_t n, int64_t d, int es) {
  const int params = norm == NormKind::kLayerNorm ? 2 : 1;  // dgamma, dbeta; mean, rstd
  return (residual ? 4.0 : 3.0) * n * d * es + (1.0 + params) * d * es + 4.0 * params * n;
}

const char* dtype_name(ElemType t) {
  return t == ElemType::kF32 ? "float32" : t == ElemType::kBF16 ? "bfloat16" : "float16";
}

void bench_copy(int warmup, int iters) {
  const size_t n = size_t{1} << 30;
  Buffer a(n), b(n);
  BENCH_CHECK(cudaMemset(a.p, 1, n));
  const double ms = time_ms(
      [&] { BENCH_CHECK(cudaMemcpyAsync(b.p, a.p, n, cudaMemcpyDeviceToDevice)); }, warmup, iters);
  std::printf("{\"impl\": \"copy\", \"bytes\": %zu, \"ms\": %.5f, \"GBps\": %.1f}\n", 2 * n, ms,
              2.0 * n / (ms * 1e-3) / 1e9);
}

bool bench_shape(ElemType t, NormKind norm, bool residual, int64_t rows, int64_t cols, int warmup,
                 int iters) {
  const bool has_mean = norm == NormKind::kLayerNorm;  // LayerNorm: mean, beta and dbeta too
  const int es = static_cast<int>(tilenorm::cuda::elem_size(t));
  const int64_t n = rows * cols;
  // The optional tensors take one element when absent, so every Buffer holds an allocation.
  const int64_t nr = residual ? n : 1, rc = has_mean ? rows : 1, cc = has_mean ? cols : 1;
  Buffer x(n * es), dy(n * es), y(n * es), dx(n * es), gamma(cols * es), beta(cc * es),
      mean(rc * 4), rstd(rows * 4), dgamma(cols * 4), dbeta(cc * 4), res(nr * es), h(nr * es),
      dh(nr * es);
  fill(x.p, t, n, 1, 1.f, 3.f);
  fill(dy.p, t, n, 2, -1.f, 1.f);
  fill(gamma.p, t, cols, 3, 0.5f, 1.5f);
  fill(beta.p, t, cc, 4, -0.5f, 0.5f);
  fill(res.p, t, nr, 5, -1.f, 1.f);
  fill(dh.p, t, nr, 6, -1.f, 1.f);
  for (const Buffer* o : {&y, &dx}) BENCH_CHECK(cudaMemset(o->p, 0xff, n * es));
  BENCH_CHECK(cudaMemset(h.p, 0xff, nr * es));
  for (const Buffer* o : {&mean, &rstd}) BENCH_CHECK(cudaMemset(o->p, 0xff, rows * 4));
  for (const Buffer* o : {&dgamma, &dbeta}) BENCH_CHECK(cudaMemset(o->p, 0xff, cols * 4));

  tilenorm::cuda::Context ctx;
  tilenorm::cuda::ForwardDeviceArgs fa;  // C++17: no designated initializers
  fa.dtype = t;
  fa.norm = norm;
  fa.x = x.p;
  fa.residual = residual ? res.p : nullptr;
  fa.gamma = gamma.p;
  fa.beta = has_mean ? beta.p : nullptr;
  fa.y = y.p;
  fa.h = residual ? h.p : nullptr;
  fa.mean = has_mean ? static_cast<float*>(mean.p) : nullptr;
  fa.rstd = static_cast<float*>(rstd.p);
  fa.rows = rows;
  fa.cols = cols;
  fa.eps = 1e-5f;
  tilenorm::cuda::BackwardDeviceArgs ba;
  ba.dtype = t;
  ba.norm = norm;
  ba.x = residual ? h.p : x.p;
  ba.dy = dy.p;
  ba.gamma = gamma.p;
  ba.mean = fa.mean;
  ba.rstd = fa.rstd;
  ba.dh_in = residual ? dh.p : nullptr;
  ba.dx = dx.p;
  ba.dgamma = static_cast<float*>(dgamma.p);
  ba.dbeta = has_mean ? static_cast<float*>(dbeta.p) : nullptr;
  ba.rows = rows;
  ba.cols = cols;
  tilenorm::cuda::PathInfo fwd_info, bwd_info;
  BENCH_CHECK_TN(tilenorm::cuda::norm_forward(ctx, fa, nullptr, &fwd_info));
  BENCH_CHECK_TN(tilenorm::cuda::norm_backward(ctx, ba, nullptr, &bwd_info));
  BENCH_CHECK(cudaDeviceSynchronize());
  constexpr ElemType f32 = ElemType::kF32;
  unsigned long long nans = nan_count(y.p, n, t) + nan_count(rstd.p, rows, f32) +
                            nan_count(dx.p, n, t) + nan_count(dgamma.p, cols, f32);
  if (has_mean) nans += nan_count(mean.p, rows, f32) + nan_count(dbeta.p, cols, f32);
  if (residual) nans += nan_count(h.p, n, t);

  const double f_ms = time_ms(
      [&] { BENCH_CHECK_TN(tilenorm::cuda::norm_forward(ctx, fa, nullptr)); }, warmup, iters);
  const double b_ms = time_ms(
      [&] { BENCH_CHECK_TN(tilenorm::cuda::norm_backward(ctx, ba, nullptr)); }, warmup, iters);
  const struct {
    const char* dir;
    double ms, bytes;
    const tilenorm::cuda::PathInfo& info;
  } rs[] = {{"fwd", f_ms, fwd_bytes(norm, residual, rows, cols, es), fwd_info},
            {"bwd", b_ms, bwd_bytes(norm, residual, rows, cols, es), bwd_info}};
  for (const auto& r : rs)
    std::printf(
        "{\"impl\": \"tilenorm\", \"norm\": \"%s\", \"residual\": %s, \"dir\": \"%s\", "
        "\"dtype\": \"%s\", \"n\": %lld, \"d\": %lld, \"ms\": %.5f, \"GBps\": %.1f, "
        "\"path\": \"%s\", \"blocks_per_row\": %d, \"threads\": %d, \"grid\": %lld, "
        "\"batches\": %lld, \"nan_outputs\": %llu}\n",
        has_mean ? "layernorm" : "rmsnorm", residual ? "true" : "false", r.dir, dtype_name(t),
        static_cast<long long>(rows), static_cast<long long>(cols), r.ms,
        r.bytes / (r.ms * 1e-3) / 1e9, r.info.path, r.info.cluster, r.info.threads,
        static_cast<long long>(r.info.grid), static_cast<long long>(r.info.batches), nans);
  std::fflush(stdout);
  return nans == 0;
}

// "a,b,c" -> {"a", "b", "c"}
std::vector<std::string> split_list(const std::string& value) {
  std::vector<std::string> out;
  for (size_t p = 0; p < value.size();) {
    const size_t q = std::min(value.find(',', p), value.size());
    out.push_back(value.substr(p, q - p));
    p = q + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 50, warmup = 5;
  std::vector<ElemType> dtypes = {ElemType::kBF16, ElemType::kF32};
  std::vector<NormKind> norms = {NormKind::kLayerNorm, NormKind::kRmsNorm};
  std::vector<bool> residuals = {false, true};
  std::vector<std::pair<int64_t, int64_t>> shapes = {{32768, 1024}, {16384, 4096}, {8192, 8192},
                                                     {4096, 8462},  {1024, 65536}, {64, 1048576}};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--iters") {
      iters = std::max(1, std::atoi(value.c_str()));
    } else if (flag == "--warmup") {
      warmup = std::max(0, std::atoi(value.c_str()));
    } else if (flag == "--dtypes") {
      dtypes.clear();
      for (const std::string& d : split_list(value))
        dtypes.push_back(d == "f32"   ? ElemType::kF32
                         : d == "f16" ? ElemType::kF16
                                      : ElemType::kBF16);
    } else if (flag == "--norms") {
      norms.clear();
      for (const std::string& d : split_list(value))
        norms.push_back(d == "rmsnorm" ? NormKind::kRmsNorm : NormKind::kLayerNorm);
    } else if (flag == "--residual") {
      residuals.clear();
      for (const std::string& d : split_list(value)) residuals.push_back(d == "on");
    } else if (flag == "--shapes") {
      shapes.clear();
      for (const std::string& d : split_list(value)) {
        long long r = 0, c = 0;
        if (std::sscanf(d.c_str(), "%lldx%lld", &r, &c) == 2 && r > 0 && c > 0)
          shapes.emplace_back(r, c);
      }
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::string why;
  if (!tilenorm::cuda::device_available(&why)) {
    std::fprintf(stderr, "no CUDA device: %s\n", why.c_str());
    return 1;
  }
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("{\"impl\": \"device\", \"gpu\": \"%s\", \"sms\": %d, \"l2_MiB\": %d}\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20);
  bench_copy(3, 20);
  bool ok = true;
  for (NormKind norm : norms)
    for (bool residual : residuals)
      for (ElemType t : dtypes)
        for (const auto& [rows, cols] : shapes)
          ok = bench_shape(t, norm, residual, rows, cols, warmup, iters) && ok;
  return ok ? 0 : 1;
}
