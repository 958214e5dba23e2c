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
#include <algorithm>
#include <cstdint>

#include "cuda/cuda_try.h"
#include "cuda/layernorm_cuda.h"
#include "cuda/norm_common.cuh"

namespace tilenorm::cuda {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): the kernels' own vocabulary

constexpr int kSplitThreads = 256;
constexpr int kFwdSegVec = 8;  // forward split: 256 * 8 chunks = 16384 columns per segment
constexpr int kBwdSegVec = 2;  // backward split: 256 * 2 chunks = 4096 columns per segment
constexpr int kFinalizeTile = 32;

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

CudaError layernorm_forward(Context& ctx, const ForwardDeviceArgs& a, CUstream_st* stream,
                            PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(ctx.init());
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
          ctx.capacity(reinterpret_cast<const void*>(kernel), p.tpr * p.rpb, p.cluster, 0, &cap));
      if (cap > 0) {
        const int64_t groups = ctx.cap_groups(std::min(ceil_div(a.rows, p.rpb), cap));
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
        std::clamp<int64_t>(ctx.l2_budget() / 2 / row_bytes, 1, std::min<int64_t>(a.rows, 65535));
    TN_RETURN_IF_CUDA_ERROR(ctx.reserve(align256(batch * segs * sizeof(float2)), stream));
    auto* part = static_cast<float2*>(ctx.workspace());
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

CudaError layernorm_backward(Context& ctx, const BackwardDeviceArgs& a, CUstream_st* stream,
                             PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(ctx.init());
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
      TN_RETURN_IF_CUDA_ERROR(ctx.reserve(offset + 2 * part_bytes, stream));
      dgamma_part = reinterpret_cast<float*>(static_cast<char*>(ctx.workspace()) + offset);
      dbeta_part =
          reinterpret_cast<float*>(static_cast<char*>(ctx.workspace()) + offset + part_bytes);
      return {};
    };

    bool done = false;
    RowPlan p;
    if (plan_rows(a.cols, &p)) {
      auto* kernel = p.vec == 1 ? layernorm_backward_rows<E, 1> : layernorm_backward_rows<E, 2>;
      const size_t smem = p.rpb > 1 ? 2 * sizeof(float) * p.tpr * p.vec * kChunk : 0;
      int64_t cap = 0;
      TN_RETURN_IF_CUDA_ERROR(ctx.capacity(reinterpret_cast<const void*>(kernel), p.tpr * p.rpb,
                                           p.cluster, smem, &cap));
      if (cap > 0) {
        parts = ctx.cap_groups(std::min(ceil_div(a.rows, p.rpb), cap));
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
          std::clamp<int64_t>(ctx.l2_budget() / 3 / row_bytes, 1, std::min<int64_t>(a.rows, 65535));
      parts = ctx.cap_groups(std::clamp<int64_t>(ceil_div(ctx.sms(), segs), 1, batch));
      const size_t sums_bytes = align256(batch * segs * sizeof(float2));
      TN_RETURN_IF_CUDA_ERROR(carve_parts(sums_bytes));
      auto* sums = static_cast<float2*>(ctx.workspace());
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
