// Shared pieces of the norm family's CUDA kernels (norm_forward.cu, norm_backward.cu),
// independent of the norm: element types, 8-element chunk I/O, cluster primitives, fixed-order
// reductions (RowSum, Chan moments), the register paths' plan, launch configuration and dispatch.
// C++17 (nvcc); see CMakeLists.txt.
//
// Paths, chosen by C (plan_rows):
//   rows    C <= 8192: a row is held in the registers of one row group (blockDim.x threads,
//           8-element chunks each); blockDim.y row groups per block; every input read once.
//   cluster C <= 65536: the row is split over a thread block cluster of up to 8 blocks, each
//           holding its slice in registers; row sums are exchanged through distributed shared
//           memory. Every input read once.
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
#pragma once

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/norm_cuda.h"

namespace tilenorm::cuda::detail {

namespace cg = cooperative_groups;

constexpr int kChunk = 8;            // elements per chunk
constexpr int kMaxRowThreads = 512;  // threads per block in the register paths
constexpr int kMaxWarps = kMaxRowThreads / 32;
constexpr int kMaxCluster = 8;      // the portable cluster size limit
constexpr int kSplitThreads = 256;  // threads per block of the split path

// ---- element types -------------------------------------------------------------------------

template <ElemType E>
struct Elem;
template <ElemType E>
using RawOf = typename Elem<E>::Raw;
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

// f rounded to the element type, as a stored value reads back.
template <ElemType E>
__device__ inline float round_to(float f) {
  return Elem<E>::load(Elem<E>::store(f));
}

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

// The first element of a row of h = x (+ residual) as stored, read at row offset `off`: the
// shift h0 of the LayerNorm statistics. Sums of h - h0 stay small where the row sits far from
// 0 (an fp32 sum of raw values near 1e4 over 1024 columns would carry ~1e-3 into the mean);
// every thread of the row reads the same element.
template <ElemType E, bool kResidual>
__device__ inline float first_h(const RawOf<E>* x, const RawOf<E>* residual, int64_t off) {
  const float h0 = Elem<E>::load(x[off]);
  if constexpr (kResidual) return round_to<E>(h0 + Elem<E>::load(residual[off]));
  return h0;
}

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
__device__ inline Moments block_moments(Moments m) {
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

// ---- launch --------------------------------------------------------------------------------

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A compile-time value for a runtime one.
template <auto V>
struct Tag {
  static constexpr auto value = V;
};

// Calls f(Tag<dtype>, Tag<norm>, Tag<residual>): the kernels' element type, norm and whether the
// residual add is fused (forward: the residual tensor; backward: its gradient dh_in) as template
// arguments.
template <typename F>
CudaError dispatch(ElemType e, NormKind n, bool residual, F&& f) {
  auto with_residual = [&](auto et, auto nt) -> CudaError {
    return residual ? f(et, nt, Tag<true>{}) : f(et, nt, Tag<false>{});
  };
  auto with_norm = [&](auto et) -> CudaError {
    return n == NormKind::kRmsNorm ? with_residual(et, Tag<NormKind::kRmsNorm>{})
                                   : with_residual(et, Tag<NormKind::kLayerNorm>{});
  };
  switch (e) {
    case ElemType::kF32:
      return with_norm(Tag<ElemType::kF32>{});
    case ElemType::kBF16:
      return with_norm(Tag<ElemType::kBF16>{});
    case ElemType::kF16:
      return with_norm(Tag<ElemType::kF16>{});
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
inline bool plan_rows(int64_t cols, RowPlan* p) {
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

// A cudaLaunchKernelEx configuration, with the cluster dimension when cluster > 1 (config points
// at attr: not copyable). Every kernel launches through it: one launch path for the GPU and the
// simulated device alike.
struct Launch {
  cudaLaunchConfig_t config{};
  cudaLaunchAttribute attr[1]{};

  Launch(const Launch&) = delete;
  Launch& operator=(const Launch&) = delete;

  Launch(int64_t blocks, dim3 block, size_t smem, cudaStream_t stream, int cluster)
      : Launch(dim3(static_cast<unsigned>(blocks)), block, smem, stream, cluster) {}
  Launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, int cluster = 1) {
    config.gridDim = grid;
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

// Loads the module of norm_forward.cu's kernels (check_kernel_image, in norm_backward.cu, loads
// both files' modules).
CudaError load_forward_module();

// Workspace carving: 256-byte aligned pieces.
inline size_t align256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace tilenorm::cuda::detail
