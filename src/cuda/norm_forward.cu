// The norm family's forward CUDA kernels (fp32 statistics) and their launch, in the symbols of
// docs/layernorm.md:
//
//   h = x + residual (with a residual; h is written out, in the pass that reads x and residual,
//                     and normalized as stored: rounded to the dtype, as the backward reads it)
//   LayerNorm: mu = (1/C) sum_i h_i, rstd = 1/sqrt((1/C) sum_i (h_i - mu)^2 + eps),
//              y_i = (h_i - mu) * rstd * gamma_i + beta_i
//   RMSNorm:   rrms = 1/sqrt((1/C) sum_i h_i^2 + eps), y_i = h_i * rrms * gamma_i  (rstd holds
//   rrms)
//
// The norm and the residual are template parameters of one set of kernels (paths: norm_common.cuh).
#include <algorithm>
#include <cstdint>

#include "cuda/cuda_try.h"
#include "cuda/norm_common.cuh"
#include "cuda/norm_cuda.h"

namespace tilenorm::cuda {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): the kernels' own vocabulary

constexpr int kFwdSegVec = 8;  // split: 256 * 8 chunks = 16384 columns per segment

// ---- register paths ------------------------------------------------------------------------
// Grid: groups * cluster blocks; block (tpr, rpb). Cluster g (blocks g*cluster .. +cluster-1)
// owns rows g*rpb + ty, stepping by groups*rpb; block rank q of the cluster owns slice q of the
// row: chunk slots slot_col(q, k, t, tpr, kVec) for k < kVec.

template <ElemType E, int kVec, NormKind kNorm, bool kResidual>
__global__ void __launch_bounds__(kMaxRowThreads)
    norm_forward_rows(const RawOf<E>* __restrict__ x, const RawOf<E>* __restrict__ residual,
                      const RawOf<E>* __restrict__ gamma, const RawOf<E>* __restrict__ beta,
                      RawOf<E>* __restrict__ y, RawOf<E>* __restrict__ h, float* __restrict__ mean,
                      float* __restrict__ rstd, int64_t rows, int64_t cols, float eps,
                      int cluster) {
  constexpr bool kCentred = kNorm == NormKind::kLayerNorm;
  using Raw = RawOf<E>;
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
    if (kCentred && beta != nullptr) {
      load_floats<E>(beta + col[k], gw, len[k], b[k]);
    } else {
#pragma unroll
      for (int i = 0; i < kChunk; ++i) b[k][i] = 0.f;
    }
  }
  // Access width of the row at offset `off`: every tensor the row moves shares it.
  auto row_width = [&](int64_t off) {
    uintptr_t bits = addr(x + off) | addr(y + off);
    if constexpr (kResidual) bits |= addr(residual + off) | addr(h + off);
    return vec_width(bits);
  };

  // The raw chunks of the next row are loaded before the reductions of the current one, so
  // their latency overlaps the barriers; not with a residual, f32 and two chunks a thread
  // (registers).
  constexpr bool kPrefetch = !(kResidual && kVec == 2 && sizeof(Raw) == 4);
  Chunk<Raw> nx[kVec], nr[kResidual ? kVec : 1];
  float nh0 = 0.f;  // the row's shift (LayerNorm): its first element of h
  const int64_t stride = groups * rpb;
  auto load_row = [&](int64_t first) {
    const int64_t r = first + threadIdx.y;
    const int64_t off = r < rows ? r * cols : 0;
    const int w = row_width(off);
    if constexpr (kCentred) nh0 = r < rows ? first_h<E, kResidual>(x, residual, off) : 0.f;
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int n = r < rows ? len[k] : 0;
      nx[k] = load_chunk(x + off + col[k], w, n);
      if constexpr (kResidual) nr[k] = load_chunk(residual + off + col[k], w, n);
    }
  };
  if (kPrefetch) load_row(group * rpb);
  for (int64_t first = group * rpb; first < rows; first += stride) {
    const int64_t r = first + threadIdx.y;
    const bool active = r < rows;
    const int64_t off = active ? r * cols : 0;
    const int w = row_width(off);
    if (!kPrefetch) load_row(first);
    const float h0 = nh0;
    float v[kVec][kChunk];
    float s[1] = {0.f};
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        v[k][i] = Elem<E>::load(nx[k].e[i]);
        if constexpr (kResidual)
          v[k][i] = round_to<E>(v[k][i] + Elem<E>::load(nr[k].e[i]));  // h as stored
        s[0] += i < len[k] ? v[k][i] - h0 : 0.f;  // h0 is 0 for an inactive row
      }
      if constexpr (kResidual)
        if (active && len[k] > 0) store_floats<E>(h + off + col[k], w, len[k], v[k]);
    }
    if (kPrefetch) load_row(first + stride);
    // LayerNorm centres about mu = h0 + ms; y takes (h - h0) - ms, both small, never mu.
    float ms = 0.f;
    if constexpr (kCentred) {
      red.sum(s, cluster);
      ms = s[0] / static_cast<float>(cols);
    }
    float q[1] = {0.f};
#pragma unroll
    for (int k = 0; k < kVec; ++k)
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float d = kCentred ? (v[k][i] - h0) - ms : v[k][i];
        q[0] += (active && i < len[k]) ? d * d : 0.f;
      }
    red.sum(q, cluster);
    const float rs = 1.f / sqrtf(q[0] / static_cast<float>(cols) + eps);
    if (active) {
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        float o[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i)
          o[i] = kCentred ? ((v[k][i] - h0) - ms) * rs * g[k][i] + b[k][i] : v[k][i] * rs * g[k][i];
        if (len[k] > 0) store_floats<E>(y + off + col[k], w, len[k], o);
      }
      if (rank == 0 && t == 0) {
        if constexpr (kCentred) mean[r] = h0 + ms;
        rstd[r] = rs;
      }
    }
  }
  if (cluster > 1) cluster_sync();  // no block leaves while a peer may still read its smem
}

// ---- split path (huge C) -------------------------------------------------------------------
// Grid (segments, rows of the batch), kSplitThreads threads. Segment s of a row holds the chunk
// slots slot_col(s, k, t, kSplitThreads, kFwdSegVec), k < kFwdSegVec.

// part[blockIdx.y * segs + s] = (mean, M2) of segment s of row row0 + blockIdx.y, of h - h0
// with h = x (+ residual, when given; h is written here) and h0 the row's first h.
template <ElemType E, bool kResidual>
__global__ void __launch_bounds__(kSplitThreads)
    norm_forward_split_moments(const RawOf<E>* __restrict__ x,
                               const RawOf<E>* __restrict__ residual, RawOf<E>* __restrict__ h,
                               int64_t row0, int64_t cols, float2* __restrict__ part) {
  const int64_t seg = blockIdx.x, segs = gridDim.x, off = (row0 + blockIdx.y) * cols;
  uintptr_t bits = addr(x + off);
  if constexpr (kResidual) bits |= addr(residual + off) | addr(h + off);
  const int w = vec_width(bits);
  const float h0 = first_h<E, kResidual>(x, residual, off);
  Moments m{0.f, 0.f, 0.f};
#pragma unroll
  for (int k = 0; k < kFwdSegVec; ++k) {
    const int64_t col = slot_col(seg, k, threadIdx.x, kSplitThreads, kFwdSegVec);
    const int n = chunk_len(col, cols);
    if (n == 0) continue;
    float v[kChunk];
    load_floats<E>(x + off + col, w, n, v);
    if constexpr (kResidual) {
      float rv[kChunk];
      load_floats<E>(residual + off + col, w, n, rv);
#pragma unroll
      for (int i = 0; i < kChunk; ++i) v[i] = round_to<E>(v[i] + rv[i]);  // h as stored
      store_floats<E>(h + off + col, w, n, v);
    }
#pragma unroll
    for (int i = 0; i < kChunk; ++i) v[i] -= h0;
    m = combine(m, chunk_moments(v, n));
  }
  m = block_moments(m);
  if (threadIdx.x == 0) part[blockIdx.y * segs + seg] = make_float2(m.mean, m.m2);
}

// y from the row's moments (of h - h0); `src` is x, or h (written by the moments kernel) with a
// residual. RMSNorm takes the mean square from the moments: (1/C) sum h^2 = M2 / C + mean(h)^2.
template <ElemType E, NormKind kNorm>
__global__ void __launch_bounds__(kSplitThreads)
    norm_forward_split_apply(const RawOf<E>* __restrict__ src, const RawOf<E>* __restrict__ gamma,
                             const RawOf<E>* __restrict__ beta, RawOf<E>* __restrict__ y,
                             float* __restrict__ mean, float* __restrict__ rstd, int64_t row0,
                             int64_t cols, float eps, const float2* __restrict__ part) {
  constexpr bool kCentred = kNorm == NormKind::kLayerNorm;
  const int64_t seg = blockIdx.x, segs = gridDim.x, r = row0 + blockIdx.y, off = r * cols;
  constexpr int64_t kSegCols = int64_t{kSplitThreads} * kFwdSegVec * kChunk;
  // The row's moments, combined in the same order by every block of the row.
  Moments m{0.f, 0.f, 0.f};
  for (int64_t s = threadIdx.x; s < segs; s += kSplitThreads) {
    const float2 p = part[blockIdx.y * segs + s];
    m = combine(m, {static_cast<float>(std::min(kSegCols, cols - s * kSegCols)), p.x, p.y});
  }
  m = block_moments(m);
  const float h0 = Elem<E>::load(src[off]), mu = h0 + m.mean;
  const float var = m.m2 / static_cast<float>(cols);
  const float rs = 1.f / sqrtf((kCentred ? var : var + mu * mu) + eps);
  if (seg == 0 && threadIdx.x == 0) {
    if constexpr (kCentred) mean[r] = mu;
    rstd[r] = rs;
  }
  const int w = vec_width(addr(src + off) | addr(y + off)),
            gw = vec_width(addr(gamma) | addr(beta));
#pragma unroll 2
  for (int k = 0; k < kFwdSegVec; ++k) {
    const int64_t col = slot_col(seg, k, threadIdx.x, kSplitThreads, kFwdSegVec);
    const int n = chunk_len(col, cols);
    if (n == 0) continue;
    float v[kChunk], g[kChunk], b[kChunk] = {};
    load_floats<E>(src + off + col, w, n, v);
    load_floats<E>(gamma + col, gw, n, g);
    if (kCentred && beta != nullptr) load_floats<E>(beta + col, gw, n, b);
#pragma unroll
    for (int i = 0; i < kChunk; ++i)
      v[i] = kCentred ? ((v[i] - h0) - m.mean) * rs * g[i] + b[i] : v[i] * rs * g[i];
    store_floats<E>(y + off + col, w, n, v);
  }
}

}  // namespace

namespace detail {
CudaError load_forward_module() {
  cudaFuncAttributes attr{};
  TN_CUDA_TRY(cudaFuncGetAttributes(&attr, norm_forward_split_moments<ElemType::kF32, false>),
              "cudaFuncGetAttributes(norm_forward_split_moments)");
  return {};
}
}  // namespace detail

CudaError norm_forward(Context& ctx, const ForwardDeviceArgs& a, CUstream_st* stream,
                       PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(ctx.init());
  const bool residual = a.residual != nullptr;
  return dispatch(a.dtype, a.norm, residual, [&](auto e, auto n, auto has_residual) -> CudaError {
    constexpr ElemType E = decltype(e)::value;
    constexpr NormKind N = decltype(n)::value;
    constexpr bool R = decltype(has_residual)::value;
    using Raw = RawOf<E>;
    const auto* x = static_cast<const Raw*>(a.x);
    const auto* res = static_cast<const Raw*>(a.residual);
    const auto* gamma = static_cast<const Raw*>(a.gamma);
    const auto* beta = static_cast<const Raw*>(a.beta);
    auto* y = static_cast<Raw*>(a.y);
    auto* h = static_cast<Raw*>(a.h);

    RowPlan p;
    if (plan_rows(a.cols, &p)) {
      auto* kernel = p.vec == 1 ? norm_forward_rows<E, 1, N, R> : norm_forward_rows<E, 2, N, R>;
      int64_t cap = 0;
      TN_RETURN_IF_CUDA_ERROR(
          ctx.capacity(reinterpret_cast<const void*>(kernel), p.tpr * p.rpb, p.cluster, 0, &cap));
      if (cap > 0) {
        const int64_t groups = ctx.cap_groups(std::min(ceil_div(a.rows, p.rpb), cap));
        const Launch l(groups * p.cluster, dim3(p.tpr, p.rpb), 0, stream, p.cluster);
        TN_CUDA_TRY(cudaLaunchKernelEx(&l.config, kernel, x, res, gamma, beta, y, h, a.mean, a.rstd,
                                       a.rows, a.cols, a.eps, p.cluster),
                    "cudaLaunchKernelEx(norm_forward_rows)");
        if (info != nullptr)
          *info = {p.cluster > 1 ? "cluster" : "rows", p.cluster, p.tpr * p.rpb,
                   groups * p.cluster};
        return {};
      }
      // A cluster that cannot be scheduled on this device: fall through to the split path.
    }

    // Split: moments per segment (writing h), then normalize, in row batches sized so that the
    // second read of x (or h) hits in L2: half of it holds the batch's x, or its x, residual
    // and h with a residual.
    const int64_t seg_cols = int64_t{kSplitThreads} * kFwdSegVec * kChunk;
    const int64_t segs = ceil_div(a.cols, seg_cols);
    const int64_t row_bytes = (R ? 3 : 1) * a.cols * static_cast<int64_t>(sizeof(Raw));
    const int64_t batch =
        std::clamp<int64_t>(ctx.l2_budget() / 2 / row_bytes, 1, std::min<int64_t>(a.rows, 65535));
    TN_RETURN_IF_CUDA_ERROR(ctx.reserve(align256(batch * segs * sizeof(float2)), stream));
    auto* part = static_cast<float2*>(ctx.workspace());
    for (int64_t row0 = 0; row0 < a.rows; row0 += batch) {
      const dim3 grid(static_cast<unsigned>(segs),
                      static_cast<unsigned>(std::min(batch, a.rows - row0)));
      const Launch l(grid, dim3(kSplitThreads), 0, stream);
      TN_CUDA_TRY(cudaLaunchKernelEx(&l.config, norm_forward_split_moments<E, R>, x, res, h, row0,
                                     a.cols, part),
                  "cudaLaunchKernelEx(norm_forward_split_moments)");
      TN_CUDA_TRY(cudaLaunchKernelEx(&l.config, norm_forward_split_apply<E, N>, R ? h : x, gamma,
                                     beta, y, a.mean, a.rstd, row0, a.cols, a.eps, part),
                  "cudaLaunchKernelEx(norm_forward_split_apply)");
    }
    if (info != nullptr)
      *info = {"split", static_cast<int>(segs), kSplitThreads, segs * batch,
               ceil_div(a.rows, batch)};
    return {};
  });
}

}  // namespace tilenorm::cuda
