// The norm family's backward CUDA kernels (fp32 sums and accumulation) and their launch, in the
// symbols of docs/layernorm.md (x is h when the forward took a residual):
//
//   xhat = (x - mu) * rstd (mu = 0, rstd = rrms for RMSNorm), g = dy * gamma,
//   LayerNorm: dx = rstd * (g - (1/C) sum g - xhat * (1/C) sum g*xhat)
//   RMSNorm:   dx = rrms * (g - xhat * (1/C) sum g*xhat)
//   dx += dh_in (when given: the gradient arriving on the residual stream; in the pass writing dx)
//   dgamma_i = sum_rows dy*xhat, dbeta_i = sum_rows dy (LayerNorm only)
//
// The norm and dh_in are template parameters of one set of kernels (paths: norm_common.cuh).
#include <algorithm>
#include <cstdint>

#include "cuda/cuda_try.h"
#include "cuda/norm_common.cuh"
#include "cuda/norm_cuda.h"

namespace tilenorm::cuda {
namespace {

using namespace detail;  // NOLINT(google-build-using-namespace): the kernels' own vocabulary

constexpr int kBwdSegVec = 2;  // split: 256 * 2 chunks = 4096 columns per segment
constexpr int kFinalizeTile = 32;

// Row sums of the backward: (sum g, sum g*xhat) for LayerNorm, (sum g*xhat) for RMSNorm; and the
// parameter gradients it accumulates: dgamma and dbeta, or dgamma.
template <NormKind kNorm>
constexpr int kSums = kNorm == NormKind::kLayerNorm ? 2 : 1;

// ---- register paths ------------------------------------------------------------------------
// Grid: groups * cluster blocks; block (tpr, rpb). Cluster g (blocks g*cluster .. +cluster-1)
// owns rows g*rpb + ty, stepping by groups*rpb; block rank q of the cluster owns slice q of the
// row: chunk slots slot_col(q, k, t, tpr, kVec) for k < kVec. Each group writes partial row
// `group` of dgamma (and dbeta).

template <ElemType E, int kVec, NormKind kNorm, bool kDhIn>
__global__ void __launch_bounds__(kMaxRowThreads)
    norm_backward_rows(const RawOf<E>* __restrict__ x, const RawOf<E>* __restrict__ dy,
                       const RawOf<E>* __restrict__ gamma, const float* __restrict__ mean,
                       const float* __restrict__ rstd, const RawOf<E>* __restrict__ dh_in,
                       RawOf<E>* __restrict__ dx, float* __restrict__ dgamma_part,
                       float* __restrict__ dbeta_part, int64_t rows, int64_t cols, int cluster) {
  constexpr bool kCentred = kNorm == NormKind::kLayerNorm;
  constexpr int kN = kSums<kNorm>;
  using Raw = RawOf<E>;
  const int t = threadIdx.x, tpr = blockDim.x, rpb = blockDim.y;
  const int rank = blockIdx.x % cluster;
  const int64_t group = blockIdx.x / cluster, groups = gridDim.x / cluster;
  TN_ROW_SUM(red, kN);

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
  auto row_width = [&](int64_t off) {
    uintptr_t bits = addr(x + off) | addr(dy + off) | addr(dx + off);
    if constexpr (kDhIn) bits |= addr(dh_in + off);
    return vec_width(bits);
  };

  // x and dy stay in their raw form; the next row's chunks are loaded before the reduction of
  // the current one (except for f32 with two chunks per thread: no registers left).
  constexpr bool kPrefetch = kVec == 2 && sizeof(Raw) == 2;
  Chunk<Raw> nx[kVec], nd[kVec];
  const int64_t stride = groups * rpb;
  auto load_row = [&](int64_t first) {
    const int64_t r = first + threadIdx.y;
    const int64_t off = r < rows ? r * cols : 0;
    const int w = row_width(off);
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
    const int w = row_width(off);
    const float mu = kCentred && active ? mean[r] : 0.f, rs = active ? rstd[r] : 0.f;
    if (!kPrefetch) load_row(first);
    Chunk<Raw> cx[kVec], cd[kVec];
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      cx[k] = nx[k];
      cd[k] = nd[k];
    }
    if (kPrefetch) load_row(first + stride);
    float s[kN] = {};
#pragma unroll
    for (int k = 0; k < kVec; ++k) {
      const int n = active ? len[k] : 0;
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float d = Elem<E>::load(cd[k].e[i]);  // padding is 0
        const float xh = i < n ? (Elem<E>::load(cx[k].e[i]) - mu) * rs : 0.f;
        const float gy = d * g[k][i];
        if constexpr (kCentred) s[0] += gy;
        s[kN - 1] += gy * xh;
        dg[k][i] += d * xh;
        if constexpr (kCentred) db[k][i] += d;
      }
    }
    // dh_in is loaded before the reduction, so its latency overlaps the barriers.
    Chunk<Raw> cdh[kDhIn ? kVec : 1];
    if constexpr (kDhIn) {
#pragma unroll
      for (int k = 0; k < kVec; ++k)
        cdh[k] = load_chunk(dh_in + off + col[k], w, active ? len[k] : 0);
    }
    red.sum(s, cluster);
    const float a = kCentred ? s[0] / static_cast<float>(cols) : 0.f;
    const float c = s[kN - 1] / static_cast<float>(cols);
    if (active) {
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        float o[kChunk];
#pragma unroll
        for (int i = 0; i < kChunk; ++i) {
          const float xh = (Elem<E>::load(cx[k].e[i]) - mu) * rs;
          o[i] = rs * (Elem<E>::load(cd[k].e[i]) * g[k][i] - a - xh * c);
          if constexpr (kDhIn) o[i] += Elem<E>::load(cdh[k].e[i]);
        }
        if (len[k] > 0) store_floats<E>(dx + off + col[k], w, len[k], o);
      }
    }
  }
  if (cluster > 1) cluster_sync();  // no block leaves while a peer may still read its smem

  // Row groups of the block add their accumulators in order 0, 1, ... (rpb > 1 only with
  // cluster == 1): each thread owns the same columns in every row group.
  if (rpb > 1) {
    extern __shared__ float acc[];  // [kN][tpr * kVec * kChunk]: dgamma, then dbeta
    const int width = tpr * kVec * kChunk;
    for (int j = 0; j < rpb; ++j) {
      if (static_cast<int>(threadIdx.y) == j) {
#pragma unroll
        for (int k = 0; k < kVec; ++k)
#pragma unroll
          for (int i = 0; i < kChunk; ++i) {
            const int idx = (k * tpr + t) * kChunk + i;
            acc[idx] = j == 0 ? dg[k][i] : acc[idx] + dg[k][i];
            if constexpr (kCentred)
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
        if constexpr (kCentred) db[k][i] = acc[width + idx];
      }
  }
  float* pg = dgamma_part + group * cols;
  float* pb = kCentred ? dbeta_part + group * cols : nullptr;
  const int pw = vec_width(addr(pg) | addr(pb));
#pragma unroll
  for (int k = 0; k < kVec; ++k)
    if (len[k] > 0) {
      store_floats<ElemType::kF32>(reinterpret_cast<uint32_t*>(pg + col[k]), pw, len[k], dg[k]);
      if constexpr (kCentred)
        store_floats<ElemType::kF32>(reinterpret_cast<uint32_t*>(pb + col[k]), pw, len[k], db[k]);
    }
}

// dgamma[c] = sum over partial rows p of dgamma_part[p][c] (likewise dbeta, when dbeta_part is
// not null), in a fixed order: thread (tx, ty) sums rows ty, ty+32, ...; then the 32 sums are
// added in order of ty.
__global__ void __launch_bounds__(kFinalizeTile* kFinalizeTile)
    norm_backward_finalize(const float* __restrict__ dgamma_part,
                           const float* __restrict__ dbeta_part, int64_t parts, int64_t cols,
                           float* __restrict__ dgamma, float* __restrict__ dbeta) {
  __shared__ float sg[kFinalizeTile][kFinalizeTile + 1], sb[kFinalizeTile][kFinalizeTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t{blockIdx.x} * kFinalizeTile + tx;
  const bool beta = dbeta_part != nullptr;
  float a = 0.f, b = 0.f;
  if (c < cols)
    for (int64_t p = ty; p < parts; p += kFinalizeTile) {
      a += dgamma_part[p * cols + c];
      if (beta) b += dbeta_part[p * cols + c];
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
    if (beta) dbeta[c] = B;
  }
}

// ---- split path (huge C) -------------------------------------------------------------------
// Grid (segments, rows of the batch), kSplitThreads threads. Segment s of a row holds the chunk
// slots slot_col(s, k, t, kSplitThreads, kBwdSegVec), k < kBwdSegVec.

// part[(r - row0) * segs + s] = (sum g, sum g * xhat) over segment s of row r, for the rows
// row0 + blockIdx.y of a batch (sum g is 0 for RMSNorm). Grid (segs, batch rows).
template <ElemType E, NormKind kNorm>
__global__ void __launch_bounds__(kSplitThreads)
    norm_backward_split_sums(const RawOf<E>* __restrict__ x, const RawOf<E>* __restrict__ dy,
                             const RawOf<E>* __restrict__ gamma, const float* __restrict__ mean,
                             const float* __restrict__ rstd, int64_t row0, int64_t cols,
                             float2* __restrict__ part) {
  constexpr bool kCentred = kNorm == NormKind::kLayerNorm;
  TN_ROW_SUM(red, 2);
  const int64_t seg = blockIdx.x, segs = gridDim.x, r = row0 + blockIdx.y, off = r * cols;
  const int w = vec_width(addr(x + off) | addr(dy + off)), gw = vec_width(addr(gamma));
  const float mu = kCentred ? mean[r] : 0.f, rs = rstd[r];
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
      if constexpr (kCentred) s[0] += gy;
      s[1] += gy * (i < n ? (v[i] - mu) * rs : 0.f);
    }
  }
  red.sum(s, 1);
  if (threadIdx.x == 0) part[blockIdx.y * segs + seg] = make_float2(s[0], s[1]);
}

// dx for segment blockIdx.x of the batch rows row0 + blockIdx.y, + gridDim.y, ... < row_end,
// reading x and dy again (from L2: the batch was sized to stay there), plus dh_in when given.
// dgamma/dbeta for the segment accumulate in registers and go to partial row blockIdx.y: written
// by the first batch, added to by the later ones (in batch order). Grid (segs, parts).
template <ElemType E, NormKind kNorm, bool kDhIn>
__global__ void __launch_bounds__(kSplitThreads)
    norm_backward_split_apply(const RawOf<E>* __restrict__ x, const RawOf<E>* __restrict__ dy,
                              const RawOf<E>* __restrict__ gamma, const float* __restrict__ mean,
                              const float* __restrict__ rstd, const RawOf<E>* __restrict__ dh_in,
                              RawOf<E>* __restrict__ dx, const float2* __restrict__ part,
                              float* __restrict__ dgamma_part, float* __restrict__ dbeta_part,
                              int64_t row0, int64_t row_end, int64_t cols, bool accumulate) {
  constexpr bool kCentred = kNorm == NormKind::kLayerNorm;
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
    uintptr_t bits = addr(x + off) | addr(dy + off) | addr(dx + off);
    if constexpr (kDhIn) bits |= addr(dh_in + off);
    const int w = vec_width(bits);
    const float mu = kCentred ? mean[r] : 0.f, rs = rstd[r];
    float v[kBwdSegVec][kChunk], d[kBwdSegVec][kChunk], dh[kBwdSegVec][kChunk];
#pragma unroll
    for (int k = 0; k < kBwdSegVec; ++k) {
      load_floats<E>(x + off + col[k], w, len[k], v[k]);
      load_floats<E>(dy + off + col[k], w, len[k], d[k]);
      if constexpr (kDhIn) load_floats<E>(dh_in + off + col[k], w, len[k], dh[k]);
    }
    // The row's sums, added in the same order by every block of the row.
    float s[2] = {0.f, 0.f};
    for (int64_t q = threadIdx.x; q < segs; q += kSplitThreads) {
      const float2 p = part[(r - row0) * segs + q];
      s[0] += p.x;
      s[1] += p.y;
    }
    red.sum(s, 1);
    const float a = kCentred ? s[0] / static_cast<float>(cols) : 0.f;
    const float c = s[1] / static_cast<float>(cols);
#pragma unroll
    for (int k = 0; k < kBwdSegVec; ++k) {
      float o[kChunk];
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        const float xh = i < len[k] ? (v[k][i] - mu) * rs : 0.f;
        o[i] = rs * (d[k][i] * g[k][i] - a - xh * c);
        if constexpr (kDhIn) o[i] += dh[k][i];
        dg[k][i] += d[k][i] * xh;
        if constexpr (kCentred) db[k][i] += d[k][i];
      }
      if (len[k] > 0) store_floats<E>(dx + off + col[k], w, len[k], o);
    }
  }
  float* pg = dgamma_part + int64_t{blockIdx.y} * cols;
  float* pb = kCentred ? dbeta_part + int64_t{blockIdx.y} * cols : nullptr;
  const int pw = vec_width(addr(pg) | addr(pb));
#pragma unroll
  for (int k = 0; k < kBwdSegVec; ++k) {
    if (len[k] == 0) continue;
    if (accumulate) {
      float pgv[kChunk], pbv[kChunk];
      load_floats<ElemType::kF32>(reinterpret_cast<const uint32_t*>(pg + col[k]), pw, len[k], pgv);
      if constexpr (kCentred)
        load_floats<ElemType::kF32>(reinterpret_cast<const uint32_t*>(pb + col[k]), pw, len[k],
                                    pbv);
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        dg[k][i] = pgv[i] + dg[k][i];
        if constexpr (kCentred) db[k][i] = pbv[i] + db[k][i];
      }
    }
    store_floats<ElemType::kF32>(reinterpret_cast<uint32_t*>(pg + col[k]), pw, len[k], dg[k]);
    if constexpr (kCentred)
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
  // Loads the modules of both kernel files: fails when the PTX cannot be compiled for the device.
  cudaFuncAttributes attr{};
  TN_CUDA_TRY(cudaFuncGetAttributes(&attr, norm_backward_finalize),
              "cudaFuncGetAttributes(norm_backward_finalize)");
  return load_forward_module();
}

CudaError norm_backward(Context& ctx, const BackwardDeviceArgs& a, CUstream_st* stream,
                        PathInfo* info) {
  TN_RETURN_IF_CUDA_ERROR(ctx.init());
  const bool dh_in = a.dh_in != nullptr;
  return dispatch(a.dtype, a.norm, dh_in, [&](auto e, auto n, auto has_dh_in) -> CudaError {
    constexpr ElemType E = decltype(e)::value;
    constexpr NormKind N = decltype(n)::value;
    constexpr bool D = decltype(has_dh_in)::value;
    constexpr int kParams = kSums<N>;  // dgamma (and dbeta) partial rows
    using Raw = RawOf<E>;
    const auto* x = static_cast<const Raw*>(a.x);
    const auto* dy = static_cast<const Raw*>(a.dy);
    const auto* gamma = static_cast<const Raw*>(a.gamma);
    const auto* dh = static_cast<const Raw*>(a.dh_in);
    auto* dx = static_cast<Raw*>(a.dx);

    int64_t parts = 0;  // partial rows of dgamma (and dbeta) in the workspace
    float *dgamma_part = nullptr, *dbeta_part = nullptr;
    auto carve_parts = [&](size_t offset) -> CudaError {
      const size_t part_bytes = align256(parts * a.cols * sizeof(float));
      TN_RETURN_IF_CUDA_ERROR(ctx.reserve(offset + kParams * part_bytes, stream));
      char* base = static_cast<char*>(ctx.workspace()) + offset;
      dgamma_part = reinterpret_cast<float*>(base);
      if (kParams == 2) dbeta_part = reinterpret_cast<float*>(base + part_bytes);
      return {};
    };

    bool done = false;
    RowPlan p;
    if (plan_rows(a.cols, &p)) {
      auto* kernel = p.vec == 1 ? norm_backward_rows<E, 1, N, D> : norm_backward_rows<E, 2, N, D>;
      const size_t smem = p.rpb > 1 ? kParams * sizeof(float) * p.tpr * p.vec * kChunk : 0;
      int64_t cap = 0;
      TN_RETURN_IF_CUDA_ERROR(ctx.capacity(reinterpret_cast<const void*>(kernel), p.tpr * p.rpb,
                                           p.cluster, smem, &cap));
      if (cap > 0) {
        parts = ctx.cap_groups(std::min(ceil_div(a.rows, p.rpb), cap));
        TN_RETURN_IF_CUDA_ERROR(carve_parts(0));
        const Launch l(parts * p.cluster, dim3(p.tpr, p.rpb), smem, stream, p.cluster);
        TN_CUDA_TRY(cudaLaunchKernelEx(&l.config, kernel, x, dy, gamma, a.mean, a.rstd, dh, dx,
                                       dgamma_part, dbeta_part, a.rows, a.cols, p.cluster),
                    "cudaLaunchKernelEx(norm_backward_rows)");
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
        const Launch sums_launch(
            dim3(static_cast<unsigned>(segs), static_cast<unsigned>(row_end - row0)),
            dim3(kSplitThreads), 0, stream);
        TN_CUDA_TRY(cudaLaunchKernelEx(&sums_launch.config, norm_backward_split_sums<E, N>, x, dy,
                                       gamma, a.mean, a.rstd, row0, a.cols, sums),
                    "cudaLaunchKernelEx(norm_backward_split_sums)");
        const Launch apply_launch(dim3(static_cast<unsigned>(segs), static_cast<unsigned>(parts)),
                                  dim3(kSplitThreads), 0, stream);
        TN_CUDA_TRY(cudaLaunchKernelEx(&apply_launch.config, norm_backward_split_apply<E, N, D>, x,
                                       dy, gamma, a.mean, a.rstd, dh, dx, sums, dgamma_part,
                                       dbeta_part, row0, row_end, a.cols, row0 > 0),
                    "cudaLaunchKernelEx(norm_backward_split_apply)");
      }
      if (info != nullptr)
        *info = {"split", static_cast<int>(segs), kSplitThreads, segs * parts,
                 ceil_div(a.rows, batch)};
    }
    const Launch finalize(ceil_div(a.cols, kFinalizeTile), dim3(kFinalizeTile, kFinalizeTile), 0,
                          stream, 1);
    TN_CUDA_TRY(cudaLaunchKernelEx(&finalize.config, norm_backward_finalize, dgamma_part,
                                   dbeta_part, parts, a.cols, a.dgamma, a.dbeta),
                "cudaLaunchKernelEx(norm_backward_finalize)");
    return {};
  });
}

}  // namespace tilenorm::cuda
