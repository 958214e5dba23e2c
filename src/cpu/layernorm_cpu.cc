// Native CPU LayerNorm forward/backward: Highway SIMD kernels (compiled for AVX-512, AVX2 and a
// portable fallback, picked at run time) over a static-partition thread pool.
//
// Formulas (symbols of include/tilenorm/layernorm.h), all arithmetic in f32 lanes, row sums
// combined in float64:
//   forward:  per 1024-column chunk, K = mean of its first 16 values, s1 = sum(x - K),
//             s2 = sum((x - K)^2), chunk mean = K + s1/n, M2 = s2 - s1^2/n; chunks merged in
//             order (Chan, float64); y = (x - mean) * rstd * gamma + beta.
//   backward: g = dy * gamma, xc = x - mean, a = sum(g)/C, k = rstd^3 * sum(g * xc)/C,
//             dx = (g - a) * rstd - xc * k, dgamma += dy * xc * rstd, dbeta += dy.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/layernorm_cpu.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// foreach_target must come first: it re-includes this file once per target.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/layernorm_cpu.h"
#include "cpu/simd_io-inl.h"
#include "hwy/highway.h"
#include "reference/layernorm.h"
#include "tilenorm/bf16.h"

HWY_BEFORE_NAMESPACE();
namespace tilenorm::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Statistics of x[0, n) for n <= kColChunk in one pass of shifted sums around K, the mean of the
// first (up to) 16 values: (K - mean)^2 <= (n/16) var, so s2 - s1^2/n cancels at most ~6 bits
// (n = 1024) even when |mean| >> std or a leading value is an outlier.
template <typename T>
ChunkStats ChunkStatsOf(const T* x, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t m0 = std::min<size_t>(n, 16);
  float k = 0;
  for (size_t j = 0; j < m0; ++j) k += ToFloat(x[j]);
  const float shift = k / static_cast<float>(m0);
  size_t i = 0;
  const VF m = hn::Set(d, shift);
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), q0 = hn::Zero(d), q1 = hn::Zero(d);
  VF a2 = hn::Zero(d), a3 = hn::Zero(d), q2 = hn::Zero(d), q3 = hn::Zero(d);
  for (; i + 4 * N <= n; i += 4 * N) {
    const VF c0 = hn::Sub(LoadV(d, x + i), m), c1 = hn::Sub(LoadV(d, x + i + N), m);
    const VF c2 = hn::Sub(LoadV(d, x + i + 2 * N), m), c3 = hn::Sub(LoadV(d, x + i + 3 * N), m);
    a0 = hn::Add(a0, c0);
    a1 = hn::Add(a1, c1);
    a2 = hn::Add(a2, c2);
    a3 = hn::Add(a3, c3);
    q0 = hn::MulAdd(c0, c0, q0);
    q1 = hn::MulAdd(c1, c1, q1);
    q2 = hn::MulAdd(c2, c2, q2);
    q3 = hn::MulAdd(c3, c3, q3);
  }
  a0 = hn::Add(a0, a2);
  a1 = hn::Add(a1, a3);
  q0 = hn::Add(q0, q2);
  q1 = hn::Add(q1, q3);
  for (; i + N <= n; i += N) {
    const VF c0 = hn::Sub(LoadV(d, x + i), m);
    a0 = hn::Add(a0, c0);
    q0 = hn::MulAdd(c0, c0, q0);
  }
  if (i < n) {
    const VF c = hn::IfThenElseZero(hn::FirstN(d, n - i), hn::Sub(LoadTail(d, x + i, n - i), m));
    a1 = hn::Add(a1, c);
    q1 = hn::MulAdd(c, c, q1);
  }
  const double dn = static_cast<double>(n);
  const double s1d = Sum(d, hn::Add(a0, a1)), s2d = Sum(d, hn::Add(q0, q1));
  return {dn, shift + s1d / dn, std::max(0.0, s2d - s1d * s1d / dn)};
}

// y[c0, c1) of one row. mean = mh + ml splits the float64 mean into two floats, so x - mean
// keeps its precision when |mean| >> std (x = 1e4 + N(0,1)).

template <bool kStream, typename T, typename G>
void ApplyForward(const T* x, const G* gamma, const G* beta, T* y, size_t n, float mh, float ml,
                  float rstd, ptrdiff_t ahead) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vmh = hn::Set(d, mh), vml = hn::Set(d, ml), vr = hn::Set(d, rstd);
  const auto one = [&](size_t i, VF xv) HWY_ATTR {
    const VF xh = hn::Mul(hn::Sub(hn::Sub(xv, vmh), vml), vr);
    const VF b = beta ? LoadV(d, beta + i) : hn::Zero(d);
    return hn::MulAdd(xh, LoadV(d, gamma + i), b);
  };
  size_t i = 0;
  for (; i + N <= n; i += N) {
    PrefetchAhead(x + i, ahead);
    StoreV<kStream>(d, one(i, LoadV(d, x + i)), y + i);
  }
  if (i < n) {
    const size_t r = n - i;
    const VF xh = hn::Mul(hn::Sub(hn::Sub(LoadTail(d, x + i, r), vmh), vml), vr);
    const VF b = beta ? LoadTail(d, beta + i, r) : hn::Zero(d);
    StoreTail(d, hn::MulAdd(xh, LoadTail(d, gamma + i, r), b), y + i, r);
  }
}

struct ForwardRowParams {
  float mh, ml, rstd;
};

// mean and rstd of row r by the float64 reference's own loops.
template <typename T>
void ReferenceRowStats(const ForwardCtx& c, int64_t r, double* mean, double* rstd) {
  const T* x = static_cast<const T*>(c.x) + r * c.C;
  std::vector<double> xd(static_cast<size_t>(c.C));
  for (int64_t i = 0; i < c.C; ++i) xd[i] = ToFloat(x[i]);
  reference::layernorm_forward_f64(xd.data(), nullptr, nullptr, 1, c.C, c.eps, nullptr, mean, rstd);
}

// Row r's mean, rstd and the split mean of ApplyForward. A NaN or Inf in the row (or finite values
// whose f32 sums overflow) leaves the statistics non-finite: such a row takes the reference's
// statistics, which are the rule there (docs/layernorm.md, "Non-finite inputs"); the shifted sums
// would give a NaN mean for a +Inf row and, through max(0, NaN), rstd = 1/sqrt(eps).
ForwardRowParams FinishStats(const ForwardCtx& c, int64_t r, const ChunkStats& s, float* mean,
                             float* rstd) {
  double mu = s.mean, rs = 1.0 / std::sqrt(s.m2 / static_cast<double>(c.C) + c.eps);
  if (HWY_UNLIKELY(!std::isfinite(mu) || !std::isfinite(s.m2))) {
    c.bf16 ? ReferenceRowStats<bf16>(c, r, &mu, &rs) : ReferenceRowStats<float>(c, r, &mu, &rs);
  }
  const float mh = static_cast<float>(mu);
  *mean = mh;
  *rstd = static_cast<float>(rs);
  return {mh, static_cast<float>(mu - static_cast<double>(mh)), static_cast<float>(rs)};
}

template <typename T, typename G>
void ApplyForwardRowG(const ForwardCtx& c, int64_t r, int64_t c0, int64_t c1,
                      const ForwardRowParams& p, ptrdiff_t ahead) {
  const T* x = static_cast<const T*>(c.x) + r * c.C;
  T* y = static_cast<T*>(c.y) + r * c.C;
  const G* g = static_cast<const G*>(c.gamma);
  const G* b = static_cast<const G*>(c.beta);
  const size_t n = static_cast<size_t>(c1 - c0);
  if (c.stream && Aligned(static_cast<T*>(c.y), c.C) && c0 % kColChunk == 0) {
    ApplyForward<true>(x + c0, g + c0, b ? b + c0 : nullptr, y + c0, n, p.mh, p.ml, p.rstd, ahead);
  } else {
    ApplyForward<false>(x + c0, g + c0, b ? b + c0 : nullptr, y + c0, n, p.mh, p.ml, p.rstd, ahead);
  }
}

template <typename T>
void ApplyForwardRow(const ForwardCtx& c, int64_t r, int64_t c0, int64_t c1,
                     const ForwardRowParams& p, ptrdiff_t ahead) {
  c.params_f32 ? ApplyForwardRowG<T, float>(c, r, c0, c1, p, ahead)
               : ApplyForwardRowG<T, T>(c, r, c0, c1, p, ahead);
}

template <typename T>
void ForwardRowsT(const ForwardCtx& c, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* x = static_cast<const T*>(c.x) + r * c.C;
    ChunkStats s;
    for (int64_t k0 = 0; k0 < c.C; k0 += kColChunk)
      s = merge_stats(s, ChunkStatsOf(x + k0, static_cast<size_t>(std::min(kColChunk, c.C - k0))));
    const ForwardRowParams p = FinishStats(c, r, s, c.mean + r, c.rstd + r);
    ApplyForwardRow<T>(c, r, 0, c.C, p, r + 1 < r1 ? c.C : 0);
  }
  if (c.stream) hwy::FlushStream();
}

void ForwardRows(const ForwardCtx& c, int64_t r0, int64_t r1) {
  c.bf16 ? ForwardRowsT<bf16>(c, r0, r1) : ForwardRowsT<float>(c, r0, r1);
}

// Row-split forward, phase 1: statistics of column chunks [k0, k1) of row r.
void ForwardChunkStats(const ForwardCtx& c, int64_t r, int64_t k0, int64_t k1, ChunkStats* out) {
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t col = k * kColChunk;
    const size_t n = static_cast<size_t>(std::min(kColChunk, c.C - col));
    out[k] = c.bf16 ? ChunkStatsOf(static_cast<const bf16*>(c.x) + r * c.C + col, n)
                    : ChunkStatsOf(static_cast<const float*>(c.x) + r * c.C + col, n);
  }
}

// Row-split forward, phase 2: y of row r over columns [c0, c1); also finishes the row's
// statistics (every worker merges the same chunks in the same order; the first one stores them).
void ForwardApplyColumns(const ForwardCtx& c, int64_t r, int64_t c0, int64_t c1,
                         const ChunkStats* chunks, int64_t nchunks, bool store_stats) {
  ChunkStats s;
  for (int64_t k = 0; k < nchunks; ++k) s = merge_stats(s, chunks[k]);
  float mean, rstd;
  const ForwardRowParams p = FinishStats(c, r, s, &mean, &rstd);
  if (store_stats) {
    c.mean[r] = mean;
    c.rstd[r] = rstd;
  }
  c.bf16 ? ApplyForwardRow<bf16>(c, r, c0, c1, p, 0) : ApplyForwardRow<float>(c, r, c0, c1, p, 0);
  if (c.stream) hwy::FlushStream();
}

// sum(g) and sum(g * xc) over n <= kColChunk columns.
template <typename T, typename G>
void BackwardSums(const T* x, const T* dy, const G* gamma, size_t n, float mean, double* sg,
                  double* sgx) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vm = hn::Set(d, mean);
  VF g0 = hn::Zero(d), g1 = hn::Zero(d), x0 = hn::Zero(d), x1 = hn::Zero(d);
  VF g2 = hn::Zero(d), g3 = hn::Zero(d), x2 = hn::Zero(d), x3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const VF ga = hn::Mul(LoadV(d, dy + i), LoadV(d, gamma + i));
    const VF gb = hn::Mul(LoadV(d, dy + i + N), LoadV(d, gamma + i + N));
    const VF gc = hn::Mul(LoadV(d, dy + i + 2 * N), LoadV(d, gamma + i + 2 * N));
    const VF gd = hn::Mul(LoadV(d, dy + i + 3 * N), LoadV(d, gamma + i + 3 * N));
    g0 = hn::Add(g0, ga);
    g1 = hn::Add(g1, gb);
    g2 = hn::Add(g2, gc);
    g3 = hn::Add(g3, gd);
    x0 = hn::MulAdd(ga, hn::Sub(LoadV(d, x + i), vm), x0);
    x1 = hn::MulAdd(gb, hn::Sub(LoadV(d, x + i + N), vm), x1);
    x2 = hn::MulAdd(gc, hn::Sub(LoadV(d, x + i + 2 * N), vm), x2);
    x3 = hn::MulAdd(gd, hn::Sub(LoadV(d, x + i + 3 * N), vm), x3);
  }
  g0 = hn::Add(g0, g2);
  g1 = hn::Add(g1, g3);
  x0 = hn::Add(x0, x2);
  x1 = hn::Add(x1, x3);
  for (; i + N <= n; i += N) {
    const VF ga = hn::Mul(LoadV(d, dy + i), LoadV(d, gamma + i));
    g0 = hn::Add(g0, ga);
    x0 = hn::MulAdd(ga, hn::Sub(LoadV(d, x + i), vm), x0);
  }
  if (i < n) {
    // Padding is zero in dy, so g and g * xc vanish there.
    const size_t r = n - i;
    const VF ga = hn::Mul(LoadTail(d, dy + i, r), LoadTail(d, gamma + i, r));
    g1 = hn::Add(g1, ga);
    x1 = hn::MulAdd(ga, hn::Sub(LoadTail(d, x + i, r), vm), x1);
  }
  *sg = Sum(d, hn::Add(g0, g1));
  *sgx = Sum(d, hn::Add(x0, x1));
}

// dx over n columns of one row, and dgamma/dbeta accumulation into dg/db (overwritten when
// `first`).
template <bool kStream, typename T, typename G>
void ApplyBackward(const T* x, const T* dy, const G* gamma, T* dx, float* dg, float* db, size_t n,
                   const RowCoeffs& k, bool first, ptrdiff_t ahead) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vm = hn::Set(d, k.mean), vr = hn::Set(d, k.rstd), va = hn::Set(d, k.a),
           vk = hn::Set(d, k.k);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    PrefetchAhead(x + i, ahead);
    PrefetchAhead(dy + i, ahead);
    const VF dyv = LoadV(d, dy + i);
    const VF xc = hn::Sub(LoadV(d, x + i), vm);
    const VF g = hn::Mul(dyv, LoadV(d, gamma + i));
    StoreV<kStream>(d, hn::NegMulAdd(xc, vk, hn::Mul(hn::Sub(g, va), vr)), dx + i);
    const VF dgv = hn::Mul(dyv, hn::Mul(xc, vr));
    if (first) {
      hn::StoreU(dgv, d, dg + i);
      hn::StoreU(dyv, d, db + i);
    } else {
      hn::StoreU(hn::Add(hn::LoadU(d, dg + i), dgv), d, dg + i);
      hn::StoreU(hn::Add(hn::LoadU(d, db + i), dyv), d, db + i);
    }
  }
  if (i < n) {
    const size_t r = n - i;
    const VF dyv = LoadTail(d, dy + i, r);
    const VF xc = hn::Sub(LoadTail(d, x + i, r), vm);
    const VF g = hn::Mul(dyv, LoadTail(d, gamma + i, r));
    StoreTail(d, hn::NegMulAdd(xc, vk, hn::Mul(hn::Sub(g, va), vr)), dx + i, r);
    VF dgv = hn::Mul(dyv, hn::Mul(xc, vr)), dbv = dyv;
    if (!first) {
      dgv = hn::Add(LoadTail(d, dg + i, r), dgv);
      dbv = hn::Add(LoadTail(d, db + i, r), dbv);
    }
    StoreTail(d, dgv, dg + i, r);
    StoreTail(d, dbv, db + i, r);
  }
}

template <typename T, typename G>
void ApplyBackwardRowG(const BackwardCtx& c, int64_t r, int64_t c0, int64_t c1, float* dg,
                       float* db, const RowCoeffs& k, bool first, ptrdiff_t ahead) {
  const int64_t off = r * c.C + c0;
  const T* x = static_cast<const T*>(c.x) + off;
  const T* dy = static_cast<const T*>(c.dy) + off;
  const G* g = static_cast<const G*>(c.gamma) + c0;
  T* dx = static_cast<T*>(c.dx) + off;
  const size_t n = static_cast<size_t>(c1 - c0);
  if (c.stream && Aligned(static_cast<T*>(c.dx), c.C) && c0 % kColChunk == 0) {
    ApplyBackward<true>(x, dy, g, dx, dg, db, n, k, first, ahead);
  } else {
    ApplyBackward<false>(x, dy, g, dx, dg, db, n, k, first, ahead);
  }
}

template <typename T>
void ApplyBackwardRow(const BackwardCtx& c, int64_t r, int64_t c0, int64_t c1, float* dg, float* db,
                      const RowCoeffs& k, bool first, ptrdiff_t ahead) {
  c.params_f32 ? ApplyBackwardRowG<T, float>(c, r, c0, c1, dg, db, k, first, ahead)
               : ApplyBackwardRowG<T, T>(c, r, c0, c1, dg, db, k, first, ahead);
}

template <typename T, typename G>
void ChunkSumsG(const BackwardCtx& c, int64_t r, int64_t col, size_t n, double* sg, double* sgx) {
  BackwardSums(static_cast<const T*>(c.x) + r * c.C + col,
               static_cast<const T*>(c.dy) + r * c.C + col, static_cast<const G*>(c.gamma) + col, n,
               c.mean[r], sg, sgx);
}

// sum(g) and sum(g * xc) over columns [col, col + n) of row r.
template <typename T>
void ChunkSums(const BackwardCtx& c, int64_t r, int64_t col, size_t n, double* sg, double* sgx) {
  c.params_f32 ? ChunkSumsG<T, float>(c, r, col, n, sg, sgx)
               : ChunkSumsG<T, T>(c, r, col, n, sg, sgx);
}

template <typename T>
RowCoeffs RowCoeffsOf(const BackwardCtx& c, int64_t r) {
  double sg = 0, sgx = 0;
  for (int64_t k0 = 0; k0 < c.C; k0 += kColChunk) {
    double a, b;
    ChunkSums<T>(c, r, k0, static_cast<size_t>(std::min(kColChunk, c.C - k0)), &a, &b);
    sg += a;
    sgx += b;
  }
  return backward_coeffs(c.mean[r], c.rstd[r], sg, sgx, c.C);
}

// Cached-row backward over row chunks [k0, k1): each row is read from memory once (the second
// pass finds it in L1/L2); chunk k's dgamma/dbeta partial goes to partials[k] (or straight to
// the outputs when there is a single chunk).
template <typename T>
void BackwardRowChunksT(const BackwardCtx& c, int64_t k0, int64_t k1) {
  const int64_t r_end = std::min(c.rows, k1 * c.rows_per_chunk);
  for (int64_t k = k0; k < k1; ++k) {
    float* dg = c.partials ? c.partials + k * 2 * c.C : c.dgamma;
    float* db = c.partials ? dg + c.C : c.dbeta;
    const int64_t r0 = k * c.rows_per_chunk, r1 = std::min(c.rows, r0 + c.rows_per_chunk);
    for (int64_t r = r0; r < r1; ++r)
      ApplyBackwardRow<T>(c, r, 0, c.C, dg, db, RowCoeffsOf<T>(c, r), r == r0,
                          r + 1 < r_end ? c.C : 0);
  }
  if (c.stream) hwy::FlushStream();
}

void BackwardRowChunks(const BackwardCtx& c, int64_t k0, int64_t k1) {
  c.bf16 ? BackwardRowChunksT<bf16>(c, k0, k1) : BackwardRowChunksT<float>(c, k0, k1);
}

// Row-split backward, phase 1: sums of column chunks [k0, k1) of row r into out[2k], out[2k+1].
void BackwardChunkSums(const BackwardCtx& c, int64_t r, int64_t k0, int64_t k1, double* out) {
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t col = k * kColChunk;
    const size_t n = static_cast<size_t>(std::min(kColChunk, c.C - col));
    c.bf16 ? ChunkSums<bf16>(c, r, col, n, &out[2 * k], &out[2 * k + 1])
           : ChunkSums<float>(c, r, col, n, &out[2 * k], &out[2 * k + 1]);
  }
}

// Row-split backward, phase 2: dx of rows [r0, r1) over column chunks [k0, k1), dgamma/dbeta
// accumulated in row order straight into the outputs (row 0 overwrites them).
void BackwardApplyColumns(const BackwardCtx& c, int64_t r0, int64_t r1, int64_t k0, int64_t k1,
                          const RowCoeffs* coeffs) {
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t col = k * kColChunk, end = std::min(c.C, col + kColChunk);
    for (int64_t r = r0; r < r1; ++r) {
      const RowCoeffs& rc = coeffs[r - r0];
      if (c.bf16) {
        ApplyBackwardRow<bf16>(c, r, col, end, c.dgamma + col, c.dbeta + col, rc, r == 0, 0);
      } else {
        ApplyBackwardRow<float>(c, r, col, end, c.dgamma + col, c.dbeta + col, rc, r == 0, 0);
      }
    }
  }
  if (c.stream) hwy::FlushStream();
}

// dgamma/dbeta[c0, c1) = sum over row chunks, in chunk order, accumulated in float64.
void CombinePartials(const BackwardCtx& c, int64_t c0, int64_t c1, int64_t nchunks) {
  constexpr int64_t kBlock = 256;
  double acc_g[kBlock], acc_b[kBlock];
  for (int64_t b0 = c0; b0 < c1; b0 += kBlock) {
    const int64_t n = std::min(kBlock, c1 - b0);
    std::fill(acc_g, acc_g + n, 0.0);
    std::fill(acc_b, acc_b + n, 0.0);
    for (int64_t k = 0; k < nchunks; ++k) {
      const float* pg = c.partials + k * 2 * c.C + b0;
      const float* pb = pg + c.C;
      for (int64_t i = 0; i < n; ++i) {
        acc_g[i] += static_cast<double>(pg[i]);
        acc_b[i] += static_cast<double>(pb[i]);
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      c.dgamma[b0 + i] = static_cast<float>(acc_g[i]);
      c.dbeta[b0 + i] = static_cast<float>(acc_b[i]);
    }
  }
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace tilenorm::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <memory>

#include "backends.h"
#include "common/thread_pool.h"
#include "cpu/dispatch.h"

namespace tilenorm::cpu {

HWY_EXPORT(ForwardRows);
HWY_EXPORT(ForwardChunkStats);
HWY_EXPORT(ForwardApplyColumns);
HWY_EXPORT(BackwardRowChunks);
HWY_EXPORT(BackwardChunkSums);
HWY_EXPORT(BackwardApplyColumns);
HWY_EXPORT(CombinePartials);
HWY_EXPORT(TargetName);
HWY_EXPORT(Bf16ToFloat);

const bool g_avx512bf16 = __builtin_cpu_supports("avx512bf16");

ChunkStats merge_stats(const ChunkStats& a, const ChunkStats& b) {
  if (a.n == 0) return b;
  const double n = a.n + b.n, delta = b.mean - a.mean;
  return {n, a.mean + delta * (b.n / n), a.m2 + b.m2 + delta * delta * (a.n * b.n / n)};
}

RowCoeffs backward_coeffs(float mean, float rstd, double sum_g, double sum_gxc, int64_t C) {
  const double inv_c = 1.0 / static_cast<double>(C), r = rstd;
  return {mean, rstd, static_cast<float>(sum_g * inv_c),
          static_cast<float>(r * r * r * sum_gxc * inv_c)};
}

namespace {

const float* widen(ThreadPool& pool, const void* p, int64_t C, std::unique_ptr<float[]>& buf,
                   size_t& cap) {
  float* out = scratch(buf, cap, static_cast<size_t>(C));
  const auto* in = static_cast<const bf16*>(p);
  constexpr int64_t kBlock = 4096;
  pool.parallel_for(ceil_div(C, kBlock), [&](int64_t b0, int64_t b1, int) {
    HWY_DYNAMIC_DISPATCH(Bf16ToFloat)(in, out, b0 * kBlock, std::min(C, b1 * kBlock));
  });
  return out;
}

}  // namespace

Status layernorm_forward(const LayerNormForwardArgs& args, const LayerNormForwardOutputs& out,
                         const LayerNormOptions& opt) {
  ThreadPool& pool = ThreadPool::shared(opt.num_threads);
  const int T = pool.num_threads();
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const bool bf16 = args.x.dtype == DType::kBF16;
  const int64_t es = bf16 ? 2 : 4;
  ForwardCtx c{args.x.data,
               args.gamma.data,
               args.beta.data,
               out.y.data,
               out.mean.as<float>(),
               out.rstd.as<float>(),
               rows,
               C,
               args.eps,
               bf16,
               stream_output(2 * rows * C * es),
               !bf16};
  if (widen_params(bf16, rows)) {
    static thread_local std::unique_ptr<float[]> gbuf, bbuf;
    static thread_local size_t gcap = 0, bcap = 0;
    c.gamma = widen(pool, args.gamma.data, C, gbuf, gcap);
    if (!args.beta.empty()) c.beta = widen(pool, args.beta.data, C, bbuf, bcap);
    c.params_f32 = true;
  }
  const ForwardPlan plan = plan_forward(rows, C, es, T);
  if (!plan.row_split) {
    pool.parallel_for(rows, [&](int64_t r0, int64_t r1, int) {
      HWY_DYNAMIC_DISPATCH(ForwardRows)(c, r0, r1);
    });
    set_report(opt, plan.path, T);
    return {};
  }
  static thread_local std::unique_ptr<ChunkStats[]> buf;
  static thread_local size_t cap = 0;
  const int64_t nck = ceil_div(C, kColChunk), group = plan.group;
  ChunkStats* stats = scratch(buf, cap, static_cast<size_t>(group * nck));
  for (int64_t g0 = 0; g0 < rows; g0 += group) {
    const int64_t g1 = std::min(rows, g0 + group);
    pool.parallel_for(nck, [&](int64_t k0, int64_t k1, int) {
      for (int64_t r = g0; r < g1; ++r)
        HWY_DYNAMIC_DISPATCH(ForwardChunkStats)(c, r, k0, k1, stats + (r - g0) * nck);
    });
    pool.parallel_for(nck, [&](int64_t k0, int64_t k1, int) {
      const int64_t c0 = k0 * kColChunk, c1 = std::min(C, k1 * kColChunk);
      for (int64_t r = g0; r < g1; ++r) HWY_DYNAMIC_DISPATCH(ForwardApplyColumns)
      (c, r, c0, c1, stats + (r - g0) * nck, nck, k0 == 0);
    });
  }
  set_report(opt, plan.path, T, {{"row_group", static_cast<double>(group)}});
  return {};
}

Status layernorm_backward(const LayerNormBackwardArgs& args, const LayerNormBackwardOutputs& out,
                          const LayerNormOptions& opt) {
  ThreadPool& pool = ThreadPool::shared(opt.num_threads);
  const int T = pool.num_threads();
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const bool bf16 = args.x.dtype == DType::kBF16;
  const int64_t es = bf16 ? 2 : 4;
  BackwardCtx c{args.x.data,
                args.dy.data,
                args.gamma.data,
                args.mean.as<float>(),
                args.rstd.as<float>(),
                out.dx.data,
                out.dgamma.as<float>(),
                out.dbeta.as<float>(),
                nullptr,
                rows,
                C,
                0,
                bf16,
                stream_output(3 * rows * C * es),
                !bf16};
  if (widen_params(bf16, rows)) {
    static thread_local std::unique_ptr<float[]> gbuf;
    static thread_local size_t gcap = 0;
    c.gamma = widen(pool, args.gamma.data, C, gbuf, gcap);
    c.params_f32 = true;
  }
  const int64_t nck = ceil_div(C, kColChunk);
  const BackwardPlan plan = plan_backward(rows, C, es);
  if (plan.row_split) {
    // Few rows, long ones: every thread takes a column range of the same rows, a group of rows
    // at a time. Step g computes dx of group g (its x, dy still in the L3 from step g-1) chunk
    // by chunk, interleaved with the row sums of group g + 1 (from DRAM), so the DRAM never
    // waits for the cache-resident half of the work.
    static thread_local std::unique_ptr<double[]> sums_buf;
    static thread_local std::unique_ptr<RowCoeffs[]> coeff_buf;
    static thread_local size_t sums_cap = 0, coeff_cap = 0;
    const int64_t group = plan.group;
    const int64_t ngroups = ceil_div(rows, group);
    double* sums = scratch(sums_buf, sums_cap, static_cast<size_t>(2 * 2 * group * nck));
    RowCoeffs* coeffs = scratch(coeff_buf, coeff_cap, static_cast<size_t>(group));
    const auto group_sums = [&](int64_t g) { return sums + (g % 2) * 2 * group * nck; };
    const auto row_sums = [&](int64_t g, int64_t k0, int64_t k1) {
      for (int64_t r = g * group; r < std::min(rows, (g + 1) * group); ++r)
        HWY_DYNAMIC_DISPATCH(BackwardChunkSums)
      (c, r, k0, k1, group_sums(g) + 2 * (r - g * group) * nck);
    };
    pool.parallel_for(nck, [&](int64_t k0, int64_t k1, int) { row_sums(0, k0, k1); });
    for (int64_t g = 0; g < ngroups; ++g) {
      const int64_t g0 = g * group, g1 = std::min(rows, g0 + group);
      for (int64_t r = g0; r < g1; ++r) {
        double sg = 0, sgx = 0;
        const double* s = group_sums(g) + 2 * (r - g0) * nck;
        for (int64_t k = 0; k < nck; ++k) {
          sg += s[2 * k];
          sgx += s[2 * k + 1];
        }
        coeffs[r - g0] = backward_coeffs(c.mean[r], c.rstd[r], sg, sgx, C);
      }
      pool.parallel_for(nck, [&](int64_t k0, int64_t k1, int) {
        for (int64_t k = k0; k < k1; ++k) {
          HWY_DYNAMIC_DISPATCH(BackwardApplyColumns)(c, g0, g1, k, k + 1, coeffs);
          if (g + 1 < ngroups) row_sums(g + 1, k, k + 1);
        }
      });
    }
    set_report(opt, plan.path, T, {{"row_group", static_cast<double>(group)}});
    return {};
  }
  // Many rows: one dgamma/dbeta partial per row chunk, then a column-parallel sum of the
  // partials in chunk order.
  c.rows_per_chunk = plan.rows_per_chunk;
  const int64_t nchunks = plan.row_chunks;
  static thread_local std::unique_ptr<float[]> part_buf;
  static thread_local size_t part_cap = 0;
  if (nchunks > 1) c.partials = scratch(part_buf, part_cap, static_cast<size_t>(nchunks * 2 * C));
  pool.parallel_for(nchunks, [&](int64_t k0, int64_t k1, int) {
    HWY_DYNAMIC_DISPATCH(BackwardRowChunks)(c, k0, k1);
  });
  if (nchunks > 1) {
    pool.parallel_for(ceil_div(C, kCombineCols), [&](int64_t b0, int64_t b1, int) {
      HWY_DYNAMIC_DISPATCH(CombinePartials)
      (c, b0 * kCombineCols, std::min(C, b1 * kCombineCols), nchunks);
    });
  }
  set_report(opt, plan.path, T, {{"row_chunks", static_cast<double>(nchunks)}});
  return {};
}

std::vector<std::string> simd_targets() {
  std::vector<std::string> names;
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) names.emplace_back(hwy::TargetName(t));
  return names;
}

bool force_simd_target(const std::string& name) {
  if (name.empty()) {
    hwy::SetSupportedTargetsForTest(0);
    return true;
  }
  hwy::SetSupportedTargetsForTest(0);
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) {
    if (name == hwy::TargetName(t)) {
      hwy::SetSupportedTargetsForTest(t);
      return true;
    }
  }
  return false;
}

std::string active_simd_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace tilenorm::cpu
#endif  // HWY_ONCE
