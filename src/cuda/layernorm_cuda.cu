// LayerNorm forward/backward CUDA kernels (fp32 statistics and accumulation) and their launch.
//
//   forward:  mu = (1/C) sum_i x_i,  rstd = 1/sqrt((1/C) sum_i (x_i - mu)^2 + eps),
//             y_i = (x_i - mu) * rstd * gamma_i + beta_i
//   backward: xhat = (x - mu) * rstd, g = dy * gamma,
//             dx = rstd * (g - (1/C) sum g - xhat * (1/C) sum g*xhat),
//             dgamma_i = sum_rows dy*xhat, dbeta_i = sum_rows dy
//
// Paths, chosen by C (plan_rows):
//   rows    C <= 8192: a row is held in the registers of one row group (blockDim.x threads,
//           8-element chunks each); blockDim.y row groups per block; x and dy read once.
//   cluster C <= 65536: the row is split over a thread block cluster of up to 8 blocks, each
//           holding its slice in registers; row sums are exchanged through distributed shared
//           memory. x and dy read once.
//   split   larger C: segments of a row go to different blocks, in row batches sized to fit
//           the L2 cache so that the second read of a batch is served there. Forward: segment
//           moments (Chan's combination), then normalize. Backward: segment sums of g and
//           g*xhat, then dx, with dgamma/dbeta partial rows carried from batch to batch.
// Both register paths run a persistent grid: a block (cluster) loops over rows, so gamma/beta
// stay in registers, and in the backward it accumulates dgamma/dbeta for its columns in fp32
// registers and writes one partial row per block (cluster) at the end. A second kernel sums the
// partial rows per column in a fixed order. Every reduction has a fixed order (no atomics), so
// results are bitwise reproducible on a given device.
//
// Loads/stores move an 8-element chunk with 16-byte vectors when the row start is 16-byte
// aligned, else with the widest aligned width (8, 4, 2 bytes); the last chunk of a row with
// C % 8 != 0 is moved element by element.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/cuda_try.h"
#include "cuda/layernorm_cuda.h"

namespace tilenorm::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kChunk = 8;            // elements per chunk
constexpr int kMaxRowThreads = 512;  // threads per block in the register paths
constexpr int kMaxWarps = kMaxRowThreads / 32;
constexpr int kMaxCluster = 8;  // the portable cluster size limit
constexpr int kSplitThreads = 256;
constexpr int kFwdSegVec = 8;  // forward split: 256 * 8 chunks = 16384 columns per segment
constexpr int kBwdSegVec = 2;  // backward split: 256 * 2 chunks = 4096 columns per segment
constexpr int kFinalizeTile = 32;

// ---- element types -------------------------------------------------------------------------

template <ElemType E>
struct Elem;
template <>
struct Elem<ElemType::kF32> {
  using Raw = uint32_t;
  static __device__ float load(Raw r) { return __uint_as_float(r); }
  static __device__ Raw store(float f) { return __float_as_uint(f); }
};
template <>
struct Elem<ElemType::kBF16> {
  using Raw = uint16_t;
  static __device__ float load(Raw r) { return __uint_as_float(uint32_t{r} << 16); }
  static __device__ Raw store(float f) { return __bfloat16_as_ushort(__float2bfloat16_rn(f)); }
};
template <>
struct Elem<ElemType::kF16> {
  using Raw = uint16_t;
  static __device__ float load(Raw r) { return __half2float(__ushort_as_half(r)); }
  static __device__ Raw store(float f) { return __half_as_ushort(__float2half_rn(f)); }
};

// ---- chunk I/O -----------------------------------------------------------------------------

template <typename Raw>
union Chunk {
  Raw e[kChunk];
  uint4 v16[kChunk * sizeof(Raw) / 16];
  uint2 v8[kChunk * sizeof(Raw) / 8];
  uint32_t v4[kChunk * sizeof(Raw) / 4];
};

// Widest access (bytes, <= 16) every chunk of a row can use: chunks start 16 or 32 bytes apart,
// so they share the alignment of the row start. `bits` is the OR of the row-start addresses of
// all tensors moved with that width.
__device__ __host__ inline int vec_width(uintptr_t bits) {
  if ((bits & 15) == 0) return 16;
  if ((bits & 7) == 0) return 8;
  if ((bits & 3) == 0) return 4;
  return 2;
}

__device__ inline uintptr_t addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Valid elements of the chunk starting at column `col`: 0..8.
__device__ inline int chunk_len(int64_t col, int64_t cols) {
  return col >= cols ? 0 : (cols - col >= kChunk ? kChunk : static_cast<int>(cols - col));
}

// Loads the first n elements at p (n <= 8); the rest are zero bits (0.0 in every dtype).
template <typename Raw>
__device__ inline Chunk<Raw> load_chunk(const Raw* p, int width, int n) {
  Chunk<Raw> c;
  if (n == kChunk && width == 16) {
#pragma unroll
    for (int i = 0; i < int(kChunk * sizeof(Raw) / 16); ++i)
      c.v16[i] = reinterpret_cast<const uint4*>(p)[i];
  } else if (n == kChunk && width == 8) {
#pragma unroll
    for (int i = 0; i < int(kChunk * sizeof(Raw) / 8); ++i)
      c.v8[i] = reinterpret_cast<const uint2*>(p)[i];
  } else if (n == kChunk && width == 4) {
#pragma unroll
    for (int i = 0; i < int(kChunk * sizeof(Raw) / 4); ++i)
      c.v4[i] = reinterpret_cast<const uint32_t*>(p)[i];
  } else {
#pragma unroll
    for (int i = 0; i < kChunk; ++i) c.e[i] = i < n ? p[i] : Raw{0};
  }
  return c;
}

template <typename Raw>
__device__ inline void store_chunk(Raw* p, int width, int n, const Chunk<Raw>& c) {
  if (n == kChunk && width == 16) {
#pragma unroll
    for (int i = 0; i < int(kChunk * sizeof(Raw) / 16); ++i)
      reinterpret_cast<uint4*>(p)[i] = c.v16[i];
  } else if (n == kChunk && width == 8) {
#pragma unroll
    for (int i = 0; i < int(kChunk * sizeof(Raw) / 8); ++i)
      reinterpret_cast<uint2*>(p)[i] = c.v8[i];
  } else if (n == kChunk && width == 4) {
#pragma unroll
    for (int i = 0; i < int(kChunk * sizeof(Raw) / 4); ++i)
      reinterpret_cast<uint32_t*>(p)[i] = c.v4[i];
  } else {
#pragma unroll
    for (int i = 0; i < kChunk; ++i)
      if (i < n) p[i] = c.e[i];
  }
}

template <ElemType E>
__device__ inline void load_floats(const typename Elem<E>::Raw* p, int width, int n,
                                   float (&v)[kChunk]) {
  const Chunk<typename Elem<E>::Raw> c = load_chunk(p, width, n);
#pragma unroll
  for (int i = 0; i < kChunk; ++i) v[i] = Elem<E>::load(c.e[i]);
}

template <ElemType E>
__device__ inline void store_floats(typename Elem<E>::Raw* p, int width, int n,
                                    const float (&v)[kChunk]) {
  Chunk<typename Elem<E>::Raw> c;
#pragma unroll
  for (int i = 0; i < kChunk; ++i) c.e[i] = Elem<E>::store(v[i]);
  store_chunk(p, width, n, c);
}

// Column of the first element of chunk slot k of thread t, in slice `slice` of a row whose
// slices are `vec * tpr` chunks wide. Consecutive threads take consecutive chunks (coalesced).
__device__ inline int64_t slot_col(int64_t slice, int k, int t, int tpr, int vec) {
  return ((slice * vec + k) * tpr + t) * kChunk;
}

// ---- cluster primitives (sm_90) ------------------------------------------------------------
// Every kernel here is built for sm_90 only (CMAKE_CUDA_ARCHITECTURES 90) and check_kernel_image
// refuses older devices, so the cluster API needs no fallback.

__device__ inline void cluster_sync() { cg::this_cluster().sync(); }

__device__ inline const float* cluster_peer(const float* p, int rank) {
  return cg::this_cluster().map_shared_rank(p, rank);
}

// ---- fixed-order reductions ----------------------------------------------------------------

// Sums kN values over the blockDim.x threads of this thread's row group (threadIdx.y), then
// over the `cluster` blocks of the cluster, in a fixed order; every thread of the row receives
// the same bits. Two alternating buffers make one barrier per call enough: a buffer is written
// again only two calls later, after every thread has passed the barrier of the call between.
// All threads of the block (and cluster) must call it the same number of times.
template <int kN>
struct RowSum {
  float (*warp_part)[kMaxWarps][kN];   // [2][warps][kN]
  float (*block_part)[kMaxWarps][kN];  // [2][row groups][kN], read by the cluster's blocks
  int phase = 0;

  __device__ void sum(float (&v)[kN], int cluster) {
#pragma unroll
    for (int i = 0; i < kN; ++i)
#pragma unroll
      for (int m = 16; m > 0; m >>= 1) v[i] += __shfl_xor_sync(0xffffffffu, v[i], m);
    const int lane = threadIdx.x & 31, warps_per_row = blockDim.x / 32;
    const int first_warp = threadIdx.y * warps_per_row;
    const int warp = first_warp + (threadIdx.x >> 5);
    if (lane == 0)
#pragma unroll
      for (int i = 0; i < kN; ++i) warp_part[phase][warp][i] = v[i];
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kN; ++i) {
      float s = 0.f;
      for (int w = 0; w < warps_per_row; ++w) s += warp_part[phase][first_warp + w][i];
      v[i] = s;
    }
    if (cluster > 1) {
      if (threadIdx.x == 0)
#pragma unroll
        for (int i = 0; i < kN; ++i) block_part[phase][threadIdx.y][i] = v[i];
      cluster_sync();
#pragma unroll
      for (int i = 0; i < kN; ++i) {
        float s = 0.f;
        for (int q = 0; q < cluster; ++q)
          s += cluster_peer(&block_part[phase][threadIdx.y][i], q)[0];
        v[i] = s;
      }
    }
    phase ^= 1;
  }
};

#define TN_ROW_SUM(name, n)                       \
  __shared__ float name##_warp[2][kMaxWarps][n];  \
  __shared__ float name##_block[2][kMaxWarps][n]; \
  RowSum<n> name { name##_warp, name##_block }

// Count, mean and sum of squared deviations of a set of values.
struct Moments {
  float n, mean, m2;
};

// Chan et al.'s pairwise combination; exact in n while n <= 2^24.
__device__ inline Moments combine(Moments a, Moments b) {
  if (b.n == 0.f) return a;
  if (a.n == 0.f) return b;
  const float n = a.n + b.n, d = b.mean - a.mean, f = b.n / n;
  return {n, a.mean + d * f, a.m2 + b.m2 + d * d * a.n * f};
}

// Moments of the first n (<= 8) values, by two passes over the registers.
__device__ inline Moments chunk_moments(const float (&v)[kChunk], int n) {
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < kChunk; ++i) s += i < n ? v[i] : 0.f;
  const float mean = s / static_cast<float>(n);
  float m2 = 0.f;
#pragma unroll
  for (int i = 0; i < kChunk; ++i) {
    const float d = v[i] - mean;
    m2 += i < n ? d * d : 0.f;
  }
  return {static_cast<float>(n), mean, m2};
}

// Combines one Moments per thread of a 1-D block in a fixed tree; every thread gets the result.
// Called once per block.
__device__ Moments block_moments(Moments m) {
  __shared__ Moments warp_m[32];
  __shared__ Moments total;
  for (int off = 16; off > 0; off >>= 1) {
    const Moments o{__shfl_down_sync(0xffffffffu, m.n, off),
                    __shfl_down_sync(0xffffffffu, m.mean, off),
                    __shfl_down_sync(0xffffffffu, m.m2, off)};
    if ((threadIdx.x & 31) + off < 32) m = combine(m, o);
  }
  if ((threadIdx.x & 31) == 0) warp_m[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    Moments s = warp_m[0];
    for (int w = 1; w < int(blockDim.x >> 5); ++w) s = combine(s, warp_m[w]);
    total = s;
  }
  __syncthreads();
  return total;
}

// ---- register paths ------------------------------------------------------------------------
// Grid: groups * cluster blocks; block (tpr, rpb). Cluster g (blocks g*cluster .. +cluster-1)
// owns rows g*rpb + ty, stepping by groups*rpb; block rank q of the cluster owns slice q of the
// row: chunk slots slot_col(q, k, t, tpr, kVec) for k < kVec.

template <ElemType E, int kVec>
__global__ void __launch_bounds__(kMaxRowThreads)
    layernorm_forward_rows(const typename Elem<E>::Raw* __restrict__ x,
                           const typename Elem<E>::Raw* __restrict__ gamma,
                           const typename Elem<E>::Raw* __restrict__ beta,
                           typename Elem<E>::Raw* __restrict__ y, float* __restrict__ mean,
                           float* __restrict__ rstd, int64_t rows, int64_t cols, float eps,
                           int cluster) {
  const int t = threadIdx.x, tpr = blockDim.x, rpb = blockDim.y;
  const int rank = blockIdx.x % cluster;
  const int64_t group = blockIdx.x / cluster, groups = gridDim.x / cluster;
  TN_ROW_SUM(red, 1);

  int64_t col[kVec];
  int len[kVec];
  float g[kVec][kChunk], b[kVec][kChunk];
  const int gw = vec_width(addr(gamma) | addr(beta));
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    col[k] = slot_col(rank, k, t, tpr, kVec);
    len[k] = chunk_len(col[k], cols);
    load_floats<E>(gamma + col[k], gw, len[k], g[k]);
    if (beta != nullptr) {
      load_floats<E>(beta + col[k], gw, len[k], b[k]);
    } else {
#pragma unroll
      for (int i = 0; i < kChunk; ++i) b[k][i] = 0.f;
    }
  }

  // The raw chunks of the next row are loaded before the reductions of the current one, so
  // their latency overlaps the barriers.
  using Raw = typename Elem<E>::Raw;
  Chunk<Raw> next[kVec];
  const int64_t stride = groups * rpb;
  auto prefetch = [&](int64_t first) {
    const int64_t r = first + threadIdx.y;
    const int64_t off = r < rows ? r * cols : 0;
    const int w = vec_width(addr(x + off) | addr(y + off));
#pragma unroll
    for (int k = 0; k < kVec; ++k) next[k] = load_chunk(x + off + col[k], w, r < rows ? len[k] : 0);
  };
  prefetch(group * rpb);
  for (int64_t first = group * rpb; first < rows; first += stride) {
    const int64_t r = first + threadIdx.y;
    const bool active = r < rows;
    const int64_t off = active ? r * cols : 0;
    const int w = vec_width(addr(x + off) | addr(y + off));
    float v[kVec][kChunk];
    float s[1] = {0.f};
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        v[k][i] = Elem<E>::load(next[k].e[i]);
        s[0] += v[k][i];  // padding is 0
      }
    }
    prefetch(first + stride);
    red.sum(s, cluster);
    const float mu = s[0] / static_cast<float>(cols);
    float q[1] = {0.f};
#pragma unroll
    for (int k = 0; k < kVec; ++k)
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float d = v[k][i] - mu;
        q[0] += (active && i < len[k]) ? d * d : 0.f;
      }
    red.sum(q, cluster);
    const float rs = 1.f / sqrtf(q[0] / static_cast<float>(cols) + eps);
    if (active) {
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        float o[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i) o[i] = (v[k][i] - mu) * rs * g[k][i] + b[k][i];
        if (len[k] > 0) store_floats<E>(y + off + col[k], w, len[k], o);
      }
      if (rank == 0 && t == 0) {
        mean[r] = mu;
        rstd[r] = rs;
      }
    }
  }
  if (cluster > 1) cluster_sync();  // no block leaves while a peer may still read its smem
}

template <ElemType E, int kVec>
__global__ void __launch_bounds__(kMaxRowThreads)
    layernorm_backward_rows(const typename Elem<E>::Raw* __restrict__ x,
                            const typename Elem<E>::Raw* __restrict__ dy,
                            const typename Elem<E>::Raw* __restrict__ gamma,
                            const float* __restrict__ mean, const float* __restrict__ rstd,
                            typename Elem<E>::Raw* __restrict__ dx, float* __restrict__ dgamma_part,
                            float* __restrict__ dbeta_part, int64_t rows, int64_t cols,
                            int cluster) {
  const int t = threadIdx.x, tpr = blockDim.x, rpb = blockDim.y;
  const int rank = blockIdx.x % cluster;
  const int64_t group = blockIdx.x / cluster, groups = gridDim.x / cluster;
  TN_ROW_SUM(red, 2);

  int64_t col[kVec];
  int len[kVec];
  float g[kVec][kChunk], dg[kVec][kChunk], db[kVec][kChunk];
  const int gw = vec_width(addr(gamma));
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    col[k] = slot_col(rank, k, t, tpr, kVec);
    len[k] = chunk_len(col[k], cols);
    load_floats<E>(gamma + col[k], gw, len[k], g[k]);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) dg[k][i] = db[k][i] = 0.f;
  }

  // x and dy stay in their raw form; the next row's chunks are loaded before the reduction of
  // the current one (except for f32 with two chunks per thread: no registers left).
  using Raw = typename Elem<E>::Raw;
  constexpr bool kPrefetch = kVec == 2 && sizeof(Raw) == 2;
  Chunk<Raw> nx[kVec], nd[kVec];
  const int64_t stride = groups * rpb;
  auto load_row = [&](int64_t first) {
    const int64_t r = first + threadIdx.y;
    const int64_t off = r < rows ? r * cols : 0;
    const int w = vec_width(addr(x + off) | addr(dy + off) | addr(dx + off));
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int n = r < rows ? len[k] : 0;
      nx[k] = load_chunk(x + off + col[k], w, n);
      nd[k] = load_chunk(dy + off + col[k], w, n);
    }
  };
  if (kPrefetch) load_row(group * rpb);
  for (int64_t first = group * rpb; first < rows; first += stride) {
    const int64_t r = first + threadIdx.y;
    const bool active = r < rows;
    const int64_t off = active ? r * cols : 0;
    const int w = vec_width(addr(x + off) | addr(dy + off) | addr(dx + off));
    const float mu = active ? mean[r] : 0.f, rs = active ? rstd[r] : 0.f;
    if (!kPrefetch) load_row(first);
    Chunk<Raw> cx[kVec], cd[kVec];
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      cx[k] = nx[k];
      cd[k] = nd[k];
    }
    if (kPrefetch) load_row(first + stride);
    float s[2] = {0.f, 0.f};
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int n = active ? len[k] : 0;
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float d = Elem<E>::load(cd[k].e[i]);  // padding is 0
        const float xh = i < n ? (Elem<E>::load(cx[k].e[i]) - mu) * rs : 0.f;
        const float gy = d * g[k][i];
        s[0] += gy;
        s[1] += gy * xh;
        dg[k][i] += d * xh;
        db[k][i] += d;
      }
    }
    red.sum(s, cluster);
    const float a = s[0] / static_cast<float>(cols), c = s[1] / static_cast<float>(cols);
    if (active) {
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        float o[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i) {
          const float xh = (Elem<E>::load(cx[k].e[i]) - mu) * rs;
          o[i] = rs * (Elem<E>::load(cd[k].e[i]) * g[k][i] - a - xh * c);
        }
        if (len[k] > 0) store_floats<E>(dx + off + col[k], w, len[k], o);
      }
    }
  }
  if (cluster > 1) cluster_sync();  // no block leaves while a peer may still read its smem

  // Row groups of the block add their accumulators in order 0, 1, ... (rpb > 1 only with
  // cluster == 1): each thread owns the same columns in every row group.
  if (rpb > 1) {
    extern __shared__ float acc[];  // [2][tpr * kVec * kChunk]
    const int width = tpr * kVec * kChunk;
    for (int j = 0; j < rpb; ++j) {
      if (threadIdx.y == j) {
#pragma unroll
        for (int k = 0; k < kVec; ++k)
#pragma unroll
          for (int i = 0; i < kChunk; ++i) {
            const int idx = (k * tpr + t) * kChunk + i;
            acc[idx] = j == 0 ? dg[k][i] : acc[idx] + dg[k][i];
            acc[width + idx] = j == 0 ? db[k][i] : acc[width + idx] + db[k][i];
          }
      }
      __syncthreads();
    }
    if (threadIdx.y != 0) return;
#pragma unroll
    for (int k = 0; k < kVec; ++k)
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const int idx = (k * tpr + t) * kChunk + i;
        dg[k][i] = acc[idx];
        db[k][i] = acc[width + idx];
      }
  }
  float* pg = dgamma_part + group * cols;
  float* pb = dbeta_part + group * cols;
  const int pw = vec_width(addr(pg) | addr(pb));
#pragma unroll
  for (int k = 0; k < kVec; ++k)
    if (len[k] > 0) {
      store_floats<ElemType::kF32>(reinterpret_cast<uint32_t*>(pg + col[k]), pw, len[k], dg[k]);
      store_floats<ElemType::kF32>(reinterpret_cast<uint32_t*>(pb + col[k]), pw, len[k], db[k]);
    }
}

// dgamma[c] = sum over partial rows p of dgamma_part[p][c] (likewise dbeta), in a fixed order:
// thread (tx, ty) sums rows ty, ty+32, ...; then the 32 sums are added in order of ty.
__global__ void __launch_bounds__(kFinalizeTile* kFinalizeTile)
    layernorm_backward_finalize(const float* __restrict__ dgamma_part,
                                const float* __restrict__ dbeta_part, int64_t parts, int64_t cols,
                                float* __restrict__ dgamma, float* __restrict__ dbeta) {
  __shared__ float sg[kFinalizeTile][kFinalizeTile + 1], sb[kFinalizeTile][kFinalizeTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t{blockIdx.x} * kFinalizeTile + tx;
  float a = 0.f, b = 0.f;
  if (c < cols)
    for (int64_t p = ty; p < parts; p += kFinalizeTile) {
      a += dgamma_part[p * cols + c];
      b += dbeta_part[p * cols + c];
    }
  sg[ty][tx] = a;
  sb[ty][tx] = b;
  __syncthreads();
  if (ty == 0 && c < cols) {
    float A = 0.f, B = 0.f;
    for (int j = 0; j < kFinalizeTile; ++j) {
      A += sg[j][tx];
      B += sb[j][tx];
    }
    dgamma[c] = A;
    dbeta[c] = B;
  }
}

// ---- split path (huge C) -------------------------------------------------------------------
// Grid (segments, rows of the batch), kSplitThreads threads. Segment s of a row holds the chunk
// slots slot_col(s, k, t, kSplitThreads, kVec), k < kVec.

template <ElemType E>
__global__ void __launch_bounds__(kSplitThreads)
    layernorm_forward_split_moments(const typename Elem<E>::Raw* __restrict__ x, int64_t row0,
                                    int64_t cols, float2* __restrict__ part) {
  const int64_t seg = blockIdx.x, segs = gridDim.x, off = (row0 + blockIdx.y) * cols;
  const int w = vec_width(addr(x + off));
  Moments m{0.f, 0.f, 0.f};
#pragma unroll
  for (int k = 0; k < kFwdSegVec; ++k) {
    const int64_t col = slot_col(seg, k, threadIdx.x, kSplitThreads, kFwdSegVec);
    const int n = chunk_len(col, cols);
    if (n == 0) continue;
    float v[kChunk];
    load_floats<E>(x + off + col, w, n, v);
    m = combine(m, chunk_moments(v, n));
  }
  m = block_moments(m);
  if (threadIdx.x == 0) part[blockIdx.y * segs + seg] = make_float2(m.mean, m.m2);
}

template <ElemType E>
__global__ void __launch_bounds__(kSplitThreads)
    layernorm_forward_split_apply(const typename Elem<E>::Raw* __restrict__ x,
                                  const typename Elem<E>::Raw* __restrict__ gamma,
                                  const typename Elem<E>::Raw* __restrict__ beta,
                                  typename Elem<E>::Raw* __restrict__ y, float* __restrict__ mean,
                                  float* __restrict__ rstd, int64_t row0, int64_t cols, float eps,
                                  const float2* __restrict__ part) {
  const int64_t seg = blockIdx.x, segs = gridDim.x, r = row0 + blockIdx.y, off = r * cols;
  constexpr int64_t kSegCols = int64_t{kSplitThreads} * kFwdSegVec * kChunk;
  // The row's moments, combined in the same order by every block of the row.
  Moments m{0.f, 0.f, 0.f};
  for (int64_t s = threadIdx.x; s < segs; s += kSplitThreads) {
    const float2 p = part[blockIdx.y * segs + s];
    m = combine(m, {static_cast<float>(std::min(kSegCols, cols - s * kSegCols)), p.x, p.y});
  }
  m = block_moments(m);
  const float mu = m.mean, rs = 1.f / sqrtf(m.m2 / static_cast<float>(cols) + eps);
  if (seg == 0 && threadIdx.x == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
  const int w = vec_width(addr(x + off) | addr(y + off)), gw = vec_width(addr(gamma) | addr(beta));
#pragma unroll 2
  for (int k = 0; k < kFwdSegVec; ++k) {
    const int64_t col = slot_col(seg, k, threadIdx.x, kSplitThreads, kFwdSegVec);
    const int n = chunk_len(col, cols);
    if (n == 0) continue;
    float v[kChunk], g[kChunk], b[kChunk] = {};
    load_floats<E>(x + off + col, w, n, v);
    load_floats<E>(gamma + col, gw, n, g);
    if (beta != nullptr) load_floats<E>(beta + col, gw, n, b);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) v[i] = (v[i] - mu) * rs * g[i] + b[i];
    store_floats<E>(y + off + col, w, n, v);
  }
}

// part[(r - row0) * segs + s] = (sum g, sum g * xhat) over segment s of row r, for the rows
// row0 + blockIdx.y of a batch. Grid (segs, batch rows).
template <ElemType E>
__global__ void __launch_bounds__(kSplitThreads)
    layernorm_backward_split_sums(const typename Elem<E>::Raw* __restrict__ x,
                                  const typename Elem<E>::Raw* __restrict__ dy,
                                  const typename Elem<E>::Raw* __restrict__ gamma,
                                  const float* __restrict__ mean, const float* __restrict__ rstd,
                                  int64_t row0, int64_t cols, float2* __restrict__ part) {
  TN_ROW_SUM(red, 2);
  const int64_t seg = blockIdx.x, segs = gridDim.x, r = row0 + blockIdx.y, off = r * cols;
  const int w = vec_width(addr(x + off) | addr(dy + off)), gw = vec_width(addr(gamma));
  const float mu = mean[r], rs = rstd[r];
  float s[2] = {0.f, 0.f};
#pragma unroll
  for (int k = 0; k < kBwdSegVec; ++k) {
    const int64_t col = slot_col(seg, k, threadIdx.x, kSplitThreads, kBwdSegVec);
    const int n = chunk_len(col, cols);
    float v[kChunk], d[kChunk], g[kChunk];
    load_floats<E>(x + off + col, w, n, v);
    load_floats<E>(dy + off + col, w, n, d);
    load_floats<E>(gamma + col, gw, n, g);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      const float gy = d[i] * g[i];  // padding is 0
      s[0] += gy;
      s[1] += gy * (i < n ? (v[i] - mu) * rs : 0.f);
    }
  }
  red.sum(s, 1);
  if (threadIdx.x == 0) part[blockIdx.y * segs + seg] = make_float2(s[0], s[1]);
}

// dx for segment blockIdx.x of the batch rows row0 + blockIdx.y, + gridDim.y, ... < row_end,
// reading x and dy again (from L2: the batch was sized to stay there). dgamma/dbeta for the
// segment accumulate in registers and go to partial row blockIdx.y: written by the first batch,
// added to by the later ones (in batch order). Grid (segs, parts).
template <ElemType E>
__global__ void __launch_bounds__(kSplitThreads)
    layernorm_backward_split_apply(const typename Elem<E>::Raw* __restrict__ x,
                                   const typename Elem<E>::Raw* __restrict__ dy,
                                   const typename Elem<E>::Raw* __restrict__ gamma,
                                   const float* __restrict__ mean, const float* __restrict__ rstd,
                                   typename Elem<E>::Raw* __restrict__ dx,
                                   const float2* __restrict__ part, float* __restrict__ dgamma_part,
                                   float* __restrict__ dbeta_part, int64_t row0, int64_t row_end,
                                   int64_t cols, bool accumulate) {
  TN_ROW_SUM(red, 2);
  const int64_t seg = blockIdx.x, segs = gridDim.x;
  int64_t col[kBwdSegVec];
  int len[kBwdSegVec];
  float g[kBwdSegVec][kChunk], dg[kBwdSegVec][kChunk], db[kBwdSegVec][kChunk];
  const int gw = vec_width(addr(gamma));
#pragma unroll
  for (int k = 0; k < kBwdSegVec; ++k) {
    col[k] = slot_col(seg, k, threadIdx.x, kSplitThreads, kBwdSegVec);
    len[k] = chunk_len(col[k], cols);
    load_floats<E>(gamma + col[k], gw, len[k], g[k]);
#pragma unroll
    for (int i = 0; i < kChunk; ++i) dg[k][i] = db[k][i] = 0.f;
  }
  for (int64_t r = row0 + blockIdx.y; r < row_end; r += gridDim.y) {
    const int64_t off = r * cols;
    const int w = vec_width(addr(x + off) | addr(dy + off) | addr(dx + off));
    const float mu = mean[r], rs = rstd[r];
    float v[kBwdSegVec][kChunk], d[kBwdSegVec][kChunk];
#pragma unroll
    for (int k = 0; k < kBwdSegVec; ++k) {
      load_floats<E>(x + off + col[k], w, len[k], v[k]);
      load_floats<E>(dy + off + col[k], w, len[k], d[k]);
    }
    // The row's sums, added in the same order by every block of the row.
    float s[2] = {0.f, 0.f};
    for (int64_t q = threadIdx.x; q < segs; q += kSplitThreads) {
      const float2 p = part[(r - row0) * segs + q];
      s[0] += p.x;
      s[1] += p.y;
    }
    red.sum(s, 1);
    const float a = s[0] / static_cast<float>(cols), c = s[1] / static_cast<float>(cols);
#pragma unroll
    for (int k = 0; k < kBwdSegVec; ++k) {
      float o[kChunk];
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float xh = i < len[k] ? (v[k][i] - mu) * rs : 0.f;
        o[i] = rs * (d[k][i] * g[k][i] - a - xh * c);
        dg[k][i] += d[k][i] * xh;
        db[k][i] += d[k][i];
      }
      if (len[k] > 0) store_floats<E>(dx + off + col[k], w, len[k], o);
    }
  }
  float* pg = dgamma_part + int64_t{blockIdx.y} * cols;
  float* pb = dbeta_part + int64_t{blockIdx.y} * cols;
  const int pw = vec_width(addr(pg) | addr(pb));
#pragma unroll
  for (int k = 0; k < kBwdSegVec; ++k) {
    if (len[k] == 0) continue;
    if (accumulate) {
      float pgv[kChunk], pbv[kChunk];
      load_floats<ElemType::kF32>(reinterpret_cast<const uint32_t*>(pg + col[k]), pw, len[k], pgv);
      load_floats<ElemType::kF32>(reinterpret_cast<const uint32_t*>(pb + col[k]), pw, len[k], pbv);
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        dg[k][i] = pgv[i] + dg[k][i];
        db[k][i] = pbv[i] + db[k][i];
      }
    }
    store_floats<ElemType::kF32>(reinterpret_cast<uint32_t*>(pg + col[k]), pw, len[k], dg[k]);
    store_floats<ElemType::kF32>(reinterpret_cast<uint32_t*>(pb + col[k]), pw, len[k], db[k]);
  }
}

// ---- launch --------------------------------------------------------------------------------

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <ElemType E>
struct Tag {
  static constexpr ElemType value = E;
};

template <typename F>
CudaError dispatch(ElemType e, F&& f) {
  switch (e) {
    case ElemType::kF32:
      return f(Tag<ElemType::kF32>{});
    case ElemType::kBF16:
      return f(Tag<ElemType::kBF16>{});
    case ElemType::kF16:
      return f(Tag<ElemType::kF16>{});
  }
  return CudaError{cudaErrorInvalidValue, "dtype"};
}

// The register paths' shape for a row of `cols` elements.
struct RowPlan {
  int cluster = 1;  // blocks per row
  int tpr = 32;     // threads per row group (blockDim.x)
  int rpb = 1;      // row groups per block (blockDim.y)
  int vec = 1;      // chunks per thread
};

// False when the row is too long for registers (the split path takes it).
bool plan_rows(int64_t cols, RowPlan* p) {
  const int64_t chunks = ceil_div(cols, kChunk);
  int cluster = 1;
  while (cluster < kMaxCluster && ceil_div(chunks, cluster) > 2 * kMaxRowThreads) cluster *= 2;
  const int64_t per_block = ceil_div(chunks, cluster);
  if (per_block > 2 * kMaxRowThreads) return false;
  p->cluster = cluster;
  p->vec = per_block > 256 ? 2 : 1;
  p->tpr = static_cast<int>(ceil_div(ceil_div(per_block, p->vec), 32) * 32);
  p->rpb = (cluster == 1 && p->vec == 1) ? kMaxRowThreads / p->tpr : 1;
  return true;
}

struct Launch {
  cudaLaunchConfig_t config{};
  cudaLaunchAttribute attr[1]{};

  Launch(int64_t blocks, dim3 block, size_t smem, cudaStream_t stream, int cluster) {
    config.gridDim = dim3(static_cast<unsigned>(blocks));
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    if (cluster > 1) {
      attr[0].id = cudaLaunchAttributeClusterDimension;
      attr[0].val.clusterDim.x = cluster;
      attr[0].val.clusterDim.y = 1;
      attr[0].val.clusterDim.z = 1;
      config.attrs = attr;
      config.numAttrs = 1;
    }
  }
};

// Workspace carving: 256-byte aligned pieces.
size_t align256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

CudaError check_kernel_image() {
  int device = 0, cc_major = 0;
  TN_CUDA_TRY(cudaGetDevice(&device), "cudaGetDevice");
  TN_CUDA_TRY(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, device),
              "cudaDeviceGetAttribute(ComputeCapabilityMajor)");
  if (cc_major < 9) return {cudaErrorNoKernelImageForDevice, "compute capability below 9.0"};
  // Loads the module of this file's kernels: fails when the PTX cannot be compiled for the device.
  cudaFuncAttributes attr{};
  TN_CUDA_TRY(cudaFuncGetAttributes(&attr, layernorm_backward_finalize),
              "cudaFuncGetAttributes(layernorm_backward_finalize)");
  return {};
}

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
    const Launch l(cluster, dim3(threads), smem, nullptr, cluster);
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

CudaError Context::forward(const ForwardDeviceArgs& a, CUstream_st* stream, PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(init());
  return dispatch(a.dtype, [&](auto tag) -> CudaError {
    constexpr ElemType E = decltype(tag)::value;
    using Raw = typename Elem<E>::Raw;
    const auto* x = static_cast<const Raw*>(a.x);
    const auto* gamma = static_cast<const Raw*>(a.gamma);
    const auto* beta = static_cast<const Raw*>(a.beta);
    auto* y = static_cast<Raw*>(a.y);

    RowPlan p;
    if (plan_rows(a.cols, &p)) {
      auto* kernel = p.vec == 1 ? layernorm_forward_rows<E, 1> : layernorm_forward_rows<E, 2>;
      int64_t cap = 0;
      TN_RETURN_IF_CUDA_ERROR(
          capacity(reinterpret_cast<const void*>(kernel), p.tpr * p.rpb, p.cluster, 0, &cap));
      if (cap > 0) {
        const int64_t groups = cap_groups(std::min(ceil_div(a.rows, p.rpb), cap));
        const Launch l(groups * p.cluster, dim3(p.tpr, p.rpb), 0, stream, p.cluster);
        TN_CUDA_TRY(cudaLaunchKernelEx(&l.config, kernel, x, gamma, beta, y, a.mean, a.rstd, a.rows,
                                       a.cols, a.eps, p.cluster),
                    "cudaLaunchKernelEx(layernorm_forward_rows)");
        if (info != nullptr)
          *info = {p.cluster > 1 ? "cluster" : "rows", p.cluster, p.tpr * p.rpb,
                   groups * p.cluster};
        return {};
      }
      // A cluster that cannot be scheduled on this device: fall through to the split path.
    }

    // Split: moments per segment, then normalize, in row batches sized to half the L2 cache so
    // that the second read of x hits there.
    const int64_t seg_cols = int64_t{kSplitThreads} * kFwdSegVec * kChunk;
    const int64_t segs = ceil_div(a.cols, seg_cols);
    const int64_t row_bytes = a.cols * static_cast<int64_t>(sizeof(Raw));
    const int64_t batch =
        std::clamp<int64_t>(l2_budget() / 2 / row_bytes, 1, std::min<int64_t>(a.rows, 65535));
    TN_RETURN_IF_CUDA_ERROR(reserve(align256(batch * segs * sizeof(float2)), stream));
    auto* part = static_cast<float2*>(workspace_);
    for (int64_t row0 = 0; row0 < a.rows; row0 += batch) {
      const dim3 grid(static_cast<unsigned>(segs),
                      static_cast<unsigned>(std::min(batch, a.rows - row0)));
      layernorm_forward_split_moments<E><<<grid, kSplitThreads, 0, stream>>>(x, row0, a.cols, part);
      TN_CUDA_TRY(cudaGetLastError(), "layernorm_forward_split_moments<<<>>>");
      layernorm_forward_split_apply<E><<<grid, kSplitThreads, 0, stream>>>(
          x, gamma, beta, y, a.mean, a.rstd, row0, a.cols, a.eps, part);
      TN_CUDA_TRY(cudaGetLastError(), "layernorm_forward_split_apply<<<>>>");
    }
    if (info != nullptr)
      *info = {"split", static_cast<int>(segs), kSplitThreads, segs * batch,
               ceil_div(a.rows, batch)};
    return {};
  });
}

CudaError Context::backward(const BackwardDeviceArgs& a, CUstream_st* stream, PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(init());
  return dispatch(a.dtype, [&](auto tag) -> CudaError {
    constexpr ElemType E = decltype(tag)::value;
    using Raw = typename Elem<E>::Raw;
    const auto* x = static_cast<const Raw*>(a.x);
    const auto* dy = static_cast<const Raw*>(a.dy);
    const auto* gamma = static_cast<const Raw*>(a.gamma);
    auto* dx = static_cast<Raw*>(a.dx);

    int64_t parts = 0;  // partial rows of dgamma/dbeta in the workspace
    float *dgamma_part = nullptr, *dbeta_part = nullptr;
    auto carve_parts = [&](size_t offset) -> CudaError {
      const size_t part_bytes = align256(parts * a.cols * sizeof(float));
      TN_RETURN_IF_CUDA_ERROR(reserve(offset + 2 * part_bytes, stream));
      dgamma_part = reinterpret_cast<float*>(static_cast<char*>(workspace_) + offset);
      dbeta_part = reinterpret_cast<float*>(static_cast<char*>(workspace_) + offset + part_bytes);
      return {};
    };

    bool done = false;
    RowPlan p;
    if (plan_rows(a.cols, &p)) {
      auto* kernel = p.vec == 1 ? layernorm_backward_rows<E, 1> : layernorm_backward_rows<E, 2>;
      const size_t smem = p.rpb > 1 ? 2 * sizeof(float) * p.tpr * p.vec * kChunk : 0;
      int64_t cap = 0;
      TN_RETURN_IF_CUDA_ERROR(
          capacity(reinterpret_cast<const void*>(kernel), p.tpr * p.rpb, p.cluster, smem, &cap));
      if (cap > 0) {
        parts = cap_groups(std::min(ceil_div(a.rows, p.rpb), cap));
        TN_RETURN_IF_CUDA_ERROR(carve_parts(0));
        const Launch l(parts * p.cluster, dim3(p.tpr, p.rpb), smem, stream, p.cluster);
        TN_CUDA_TRY(cudaLaunchKernelEx(&l.config, kernel, x, dy, gamma, a.mean, a.rstd, dx,
                                       dgamma_part, dbeta_part, a.rows, a.cols, p.cluster),
                    "cudaLaunchKernelEx(layernorm_backward_rows)");
        if (info != nullptr)
          *info = {p.cluster > 1 ? "cluster" : "rows", p.cluster, p.tpr * p.rpb, parts * p.cluster};
        done = true;
      }
    }
    if (!done) {
      // Split, in row batches sized to a third of the L2 cache: segment sums of the batch, then
      // dx with x and dy read again (from L2), accumulating dgamma/dbeta partial rows.
      const int64_t seg_cols = int64_t{kSplitThreads} * kBwdSegVec * kChunk;
      const int64_t segs = ceil_div(a.cols, seg_cols);
      const int64_t row_bytes = 2 * a.cols * static_cast<int64_t>(sizeof(Raw));
      const int64_t batch =
          std::clamp<int64_t>(l2_budget() / 3 / row_bytes, 1, std::min<int64_t>(a.rows, 65535));
      parts = cap_groups(std::clamp<int64_t>(ceil_div(sms_, segs), 1, batch));
      const size_t sums_bytes = align256(batch * segs * sizeof(float2));
      TN_RETURN_IF_CUDA_ERROR(carve_parts(sums_bytes));
      auto* sums = static_cast<float2*>(workspace_);
      for (int64_t row0 = 0; row0 < a.rows; row0 += batch) {
        const int64_t row_end = std::min(a.rows, row0 + batch);
        layernorm_backward_split_sums<E>
            <<<dim3(static_cast<unsigned>(segs), static_cast<unsigned>(row_end - row0)),
               kSplitThreads, 0, stream>>>(x, dy, gamma, a.mean, a.rstd, row0, a.cols, sums);
        TN_CUDA_TRY(cudaGetLastError(), "layernorm_backward_split_sums<<<>>>");
        layernorm_backward_split_apply<E>
            <<<dim3(static_cast<unsigned>(segs), static_cast<unsigned>(parts)), kSplitThreads, 0,
               stream>>>(x, dy, gamma, a.mean, a.rstd, dx, sums, dgamma_part, dbeta_part, row0,
                         row_end, a.cols, row0 > 0);
        TN_CUDA_TRY(cudaGetLastError(), "layernorm_backward_split_apply<<<>>>");
      }
      if (info != nullptr)
        *info = {"split", static_cast<int>(segs), kSplitThreads, segs * parts,
                 ceil_div(a.rows, batch)};
    }
    layernorm_backward_finalize<<<static_cast<unsigned>(ceil_div(a.cols, kFinalizeTile)),
                                  dim3(kFinalizeTile, kFinalizeTile), 0, stream>>>(
        dgamma_part, dbeta_part, parts, a.cols, a.dgamma, a.dbeta);
    TN_CUDA_TRY(cudaGetLastError(), "layernorm_backward_finalize<<<>>>");
    return {};
  });
}

}  // namespace tilenorm::cuda
