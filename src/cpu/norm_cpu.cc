// Native CPU norm family (LayerNorm, RMSNorm, each with or without the fused residual add),
// forward and backward: Highway SIMD kernels (compiled for AVX-512, AVX2 and a portable fallback,
// picked at run time) over a static-partition thread pool. One implementation, templated on the
// norm and the fusion (Variant below).
//
// Formulas (symbols of include/tilenorm/layernorm.h and rmsnorm.h), all arithmetic in f32 lanes,
// row sums combined in float64; h = x + residual rounded to the dtype (or x):
//   forward:  per 1024-column chunk, LayerNorm: K = mean of its first 16 values, s1 = sum(h - K),
//             s2 = sum((h - K)^2), chunk mean = K + s1/n, M2 = s2 - s1^2/n; RMSNorm: mean = 0,
//             M2 = sum(h^2); chunks merged in order (Chan, float64);
//             y = (h - mean) * rstd * gamma + beta, or h * rrms * gamma.
//   backward: g = dy * gamma, xc = x - mean (x for RMSNorm), a = sum(g)/C (0 for RMSNorm),
//             k = rstd^3 * sum(g * xc)/C, dx = (g - a) * rstd - xc * k (+ dh_in),
//             dgamma += dy * xc * rstd, dbeta += dy (LayerNorm).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/norm_cpu.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// foreach_target must come first: it re-includes this file once per target.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/row_stats.h"
#include "cpu/norm_cpu.h"
#include "cpu/simd_io-inl.h"
#include "hwy/highway.h"
#include "tilenorm/bf16.h"

HWY_BEFORE_NAMESPACE();
namespace tilenorm::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// A compile-time variant of the kernels: element type T, the member of the family (its traits,
// include/tilenorm/norm.h: a mean, a beta, the mean(g) term) and whether the residual add is
// fused in: the residual in forward (h = x + residual), its gradient dh_in in backward
// (dx += dh_in).
template <typename T_, Norm kNorm_, bool kResidual_>
struct Variant {
  using T = T_;
  static constexpr Norm kNorm = kNorm_;
  static constexpr bool kHasMean = norm_traits(kNorm).has_mean;
  static constexpr bool kHasBeta = norm_traits(kNorm).has_beta;
  static constexpr bool kMeanGTerm = norm_traits(kNorm).mean_g_term;
  static constexpr bool kResidual = kResidual_;
};

// Calls f(Variant<...>()) for the run-time choices.
template <typename T, Norm kNorm, class F>
HWY_INLINE void VisitResidual(bool residual, const F& f) {
  residual ? f(Variant<T, kNorm, true>()) : f(Variant<T, kNorm, false>());
}
template <typename T, class F>
HWY_INLINE void VisitNorm(Norm norm, bool residual, const F& f) {
  switch (norm) {
    case Norm::kLayerNorm:
      return VisitResidual<T, Norm::kLayerNorm>(residual, f);
    case Norm::kRmsNorm:
      return VisitResidual<T, Norm::kRmsNorm>(residual, f);
  }
}
template <class F>
HWY_INLINE void Visit(bool is_bf16, Norm norm, bool residual, const F& f) {
  is_bf16 ? VisitNorm<bf16>(norm, residual, f) : VisitNorm<float>(norm, residual, f);
}

// The forward's row values at i: x, or h = x + residual rounded to T (the h that is stored is
// the h that is normalized, so backward on the stored h matches).
template <class V, typename T>
HWY_INLINE VF LoadH(DF d, const T* x, const T* res, size_t i) {
  if constexpr (V::kResidual) {
    return RoundTo<T>(d, hn::Add(LoadV(d, x + i), LoadV(d, res + i)));
  } else {
    return LoadV(d, x + i);
  }
}
template <class V, typename T>
HWY_INLINE VF LoadHTail(DF d, const T* x, const T* res, size_t i, size_t n) {
  if constexpr (V::kResidual) {
    return RoundTo<T>(d, hn::Add(LoadTail(d, x + i, n), LoadTail(d, res + i, n)));
  } else {
    return LoadTail(d, x + i, n);
  }
}
template <class V, typename T>
HWY_INLINE float ScalarH(const T* x, const T* res, size_t i) {
  if constexpr (V::kResidual) {
    const float h = ToFloat(x[i]) + ToFloat(res[i]);
    if constexpr (sizeof(T) == 2) return bf16_to_float(float_to_bf16(h));
    return h;
  } else {
    return ToFloat(x[i]);
  }
}

// The row values less the mean (where the norm has one), or as they are.
template <class V>
HWY_INLINE VF LessMean(VF x, VF vm) {
  if constexpr (!V::kHasMean) {
    return x;
  } else {
    return hn::Sub(x, vm);
  }
}

// Statistics of h[0, n) for n <= kColChunk in one pass. RMSNorm: the plain sum of squares (mean
// 0, which merge_stats carries through). LayerNorm: shifted sums around K, the mean of the first
// (up to) 16 values: (K - mean)^2 <= (n/16) var, so s2 - s1^2/n cancels at most ~6 bits
// (n = 1024) even when |mean| >> std or a leading value is an outlier.
template <class V, typename T>
ChunkStats ChunkStatsOf(const T* x, const T* res, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  float shift = 0;
  if constexpr (V::kHasMean) {
    const size_t m0 = std::min<size_t>(n, 16);
    for (size_t j = 0; j < m0; ++j) shift += ScalarH<V>(x, res, j);
    shift /= static_cast<float>(m0);
  }
  size_t i = 0;
  const VF m = hn::Set(d, shift);
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), q0 = hn::Zero(d), q1 = hn::Zero(d);
  VF a2 = hn::Zero(d), a3 = hn::Zero(d), q2 = hn::Zero(d), q3 = hn::Zero(d);
  for (; i + 4 * N <= n; i += 4 * N) {
    const VF c0 = LessMean<V>(LoadH<V>(d, x, res, i), m);
    const VF c1 = LessMean<V>(LoadH<V>(d, x, res, i + N), m);
    const VF c2 = LessMean<V>(LoadH<V>(d, x, res, i + 2 * N), m);
    const VF c3 = LessMean<V>(LoadH<V>(d, x, res, i + 3 * N), m);
    if constexpr (V::kHasMean) {
      a0 = hn::Add(a0, c0);
      a1 = hn::Add(a1, c1);
      a2 = hn::Add(a2, c2);
      a3 = hn::Add(a3, c3);
    }
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
    const VF c0 = LessMean<V>(LoadH<V>(d, x, res, i), m);
    if constexpr (V::kHasMean) a0 = hn::Add(a0, c0);
    q0 = hn::MulAdd(c0, c0, q0);
  }
  if (i < n) {
    const VF c =
        hn::IfThenElseZero(hn::FirstN(d, n - i), LessMean<V>(LoadHTail<V>(d, x, res, i, n - i), m));
    if constexpr (V::kHasMean) a1 = hn::Add(a1, c);
    q1 = hn::MulAdd(c, c, q1);
  }
  const double dn = static_cast<double>(n), s2d = Sum(d, hn::Add(q0, q1));
  if constexpr (!V::kHasMean) return {dn, 0.0, s2d};
  const double s1d = Sum(d, hn::Add(a0, a1));
  return {dn, shift + s1d / dn, std::max(0.0, s2d - s1d * s1d / dn)};
}

// y = (h - mean) * rstd * gamma + beta, or h * rrms * gamma. mean = mh + ml splits the float64
// mean into two floats, so h - mean keeps its precision when |mean| >> std (x = 1e4 + N(0,1)).
template <class V>
HWY_INLINE VF Normalize(VF h, VF g, VF b, VF vmh, VF vml, VF vr) {
  if constexpr (!V::kHasMean && !V::kHasBeta) {
    return hn::Mul(hn::Mul(h, vr), g);
  } else {
    return hn::MulAdd(hn::Mul(hn::Sub(hn::Sub(h, vmh), vml), vr), g, b);
  }
}

// h (when fused) and y over n columns of one row.
template <bool kStream, class V, typename T, typename G>
void ApplyForward(const T* x, const T* res, const G* gamma, const G* beta, T* h, T* y, size_t n,
                  float mh, float ml, float rstd, ptrdiff_t ahead) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vmh = hn::Set(d, mh), vml = hn::Set(d, ml), vr = hn::Set(d, rstd);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    PrefetchAhead(x + i, ahead);
    if constexpr (V::kResidual) PrefetchAhead(res + i, ahead);
    const VF hv = LoadH<V>(d, x, res, i);
    if constexpr (V::kResidual) StoreV<kStream>(d, hv, h + i);
    const VF b = V::kHasBeta && beta ? LoadV(d, beta + i) : hn::Zero(d);
    StoreV<kStream>(d, Normalize<V>(hv, LoadV(d, gamma + i), b, vmh, vml, vr), y + i);
  }
  if (i < n) {
    const size_t r = n - i;
    const VF hv = LoadHTail<V>(d, x, res, i, r);
    if constexpr (V::kResidual) StoreTail(d, hv, h + i, r);
    const VF b = V::kHasBeta && beta ? LoadTail(d, beta + i, r) : hn::Zero(d);
    StoreTail(d, Normalize<V>(hv, LoadTail(d, gamma + i, r), b, vmh, vml, vr), y + i, r);
  }
}

struct ForwardRowParams {
  float mh, ml, rstd;
};

// Statistics of row r by the float64 reference's own loops (common/row_stats.h).
template <class V>
void ReferenceRowStats(const ForwardCtx& c, int64_t r, double* mean, double* rstd) {
  using T = typename V::T;
  const T* x = static_cast<const T*>(c.x) + r * c.C;
  const T* res = c.residual ? static_cast<const T*>(c.residual) + r * c.C : nullptr;
  std::vector<double> hd(static_cast<size_t>(c.C));
  for (size_t i = 0; i < hd.size(); ++i) hd[i] = ScalarH<V>(x, res, i);
  row_stats_f64(V::kNorm, hd.data(), c.C, c.eps, mean, rstd);
}

// Row r's statistics and the split mean of ApplyForward. A NaN or Inf in the row (or finite
// values whose f32 sums overflow) leaves the statistics non-finite: such a row takes the
// reference's statistics, which are the rule there (docs/layernorm.md, "Non-finite inputs"); the
// shifted sums would give a NaN mean for a +Inf row and, through max(0, NaN), rstd = 1/sqrt(eps).
template <class V>
ForwardRowParams FinishStats(const ForwardCtx& c, int64_t r, const ChunkStats& s, float* mean,
                             float* rstd) {
  double mu = s.mean, rs = 1.0 / std::sqrt(s.m2 / static_cast<double>(c.C) + c.eps);
  if (HWY_UNLIKELY(!std::isfinite(mu) || !std::isfinite(s.m2)))
    ReferenceRowStats<V>(c, r, &mu, &rs);
  const float mh = static_cast<float>(mu);
  if constexpr (V::kHasMean) *mean = mh;
  *rstd = static_cast<float>(rs);
  return {mh, static_cast<float>(mu - static_cast<double>(mh)), static_cast<float>(rs)};
}

template <class V, typename G>
void ApplyForwardRowG(const ForwardCtx& c, int64_t r, int64_t c0, int64_t c1,
                      const ForwardRowParams& p, ptrdiff_t ahead) {
  using T = typename V::T;
  const int64_t off = r * c.C + c0;
  const T* x = static_cast<const T*>(c.x) + off;
  const T* res = V::kResidual ? static_cast<const T*>(c.residual) + off : nullptr;
  T* h = V::kResidual ? static_cast<T*>(c.h) + off : nullptr;
  T* y = static_cast<T*>(c.y) + off;
  const G* g = static_cast<const G*>(c.gamma) + c0;
  const G* b = c.beta ? static_cast<const G*>(c.beta) + c0 : nullptr;
  const size_t n = static_cast<size_t>(c1 - c0);
  if (c.stream && Aligned(static_cast<T*>(c.y), c.C) &&
      (!V::kResidual || Aligned(static_cast<T*>(c.h), c.C)) && c0 % kColChunk == 0) {
    ApplyForward<true, V>(x, res, g, b, h, y, n, p.mh, p.ml, p.rstd, ahead);
  } else {
    ApplyForward<false, V>(x, res, g, b, h, y, n, p.mh, p.ml, p.rstd, ahead);
  }
}

template <class V>
void ApplyForwardRow(const ForwardCtx& c, int64_t r, int64_t c0, int64_t c1,
                     const ForwardRowParams& p, ptrdiff_t ahead) {
  c.params_f32 ? ApplyForwardRowG<V, float>(c, r, c0, c1, p, ahead)
               : ApplyForwardRowG<V, typename V::T>(c, r, c0, c1, p, ahead);
}

template <class V>
ChunkStats RowChunkStats(const ForwardCtx& c, int64_t r, int64_t col) {
  using T = typename V::T;
  const int64_t off = r * c.C + col;
  const T* res = V::kResidual ? static_cast<const T*>(c.residual) + off : nullptr;
  return ChunkStatsOf<V>(static_cast<const T*>(c.x) + off, res,
                         static_cast<size_t>(std::min(kColChunk, c.C - col)));
}

template <class V>
void ForwardRowsT(const ForwardCtx& c, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    ChunkStats s;
    for (int64_t k0 = 0; k0 < c.C; k0 += kColChunk) s = merge_stats(s, RowChunkStats<V>(c, r, k0));
    const ForwardRowParams p = FinishStats<V>(c, r, s, c.mean + r, c.rstd + r);
    ApplyForwardRow<V>(c, r, 0, c.C, p, r + 1 < r1 ? c.C : 0);
  }
  if (c.stream) hwy::FlushStream();
}

void ForwardRows(const ForwardCtx& c, int64_t r0, int64_t r1) {
  Visit(c.bf16, c.norm, c.residual != nullptr,
        [&](auto v) HWY_ATTR { ForwardRowsT<decltype(v)>(c, r0, r1); });
}

// Row-split forward, phase 1: statistics of column chunks [k0, k1) of row r.
void ForwardChunkStats(const ForwardCtx& c, int64_t r, int64_t k0, int64_t k1, ChunkStats* out) {
  Visit(c.bf16, c.norm, c.residual != nullptr, [&](auto v) HWY_ATTR {
    for (int64_t k = k0; k < k1; ++k) out[k] = RowChunkStats<decltype(v)>(c, r, k * kColChunk);
  });
}

// Row-split forward, phase 2: h and y of row r over columns [c0, c1); also finishes the row's
// statistics (every worker merges the same chunks in the same order; the first one stores them).
void ForwardApplyColumns(const ForwardCtx& c, int64_t r, int64_t c0, int64_t c1,
                         const ChunkStats* chunks, int64_t nchunks, bool store_stats) {
  ChunkStats s;
  for (int64_t k = 0; k < nchunks; ++k) s = merge_stats(s, chunks[k]);
  Visit(c.bf16, c.norm, c.residual != nullptr, [&](auto v) HWY_ATTR {
    using V = decltype(v);
    float mean, rstd;
    const ForwardRowParams p = FinishStats<V>(c, r, s, &mean, &rstd);
    if (store_stats) {
      if (V::kHasMean) c.mean[r] = mean;
      c.rstd[r] = rstd;
    }
    ApplyForwardRow<V>(c, r, c0, c1, p, 0);
  });
  if (c.stream) hwy::FlushStream();
}

// sum(g) (LayerNorm only; 0 for RMSNorm) and sum(g * xc) over n <= kColChunk columns.
template <class V, typename T, typename G>
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
    if constexpr (V::kMeanGTerm) {
      g0 = hn::Add(g0, ga);
      g1 = hn::Add(g1, gb);
      g2 = hn::Add(g2, gc);
      g3 = hn::Add(g3, gd);
    }
    x0 = hn::MulAdd(ga, LessMean<V>(LoadV(d, x + i), vm), x0);
    x1 = hn::MulAdd(gb, LessMean<V>(LoadV(d, x + i + N), vm), x1);
    x2 = hn::MulAdd(gc, LessMean<V>(LoadV(d, x + i + 2 * N), vm), x2);
    x3 = hn::MulAdd(gd, LessMean<V>(LoadV(d, x + i + 3 * N), vm), x3);
  }
  g0 = hn::Add(g0, g2);
  g1 = hn::Add(g1, g3);
  x0 = hn::Add(x0, x2);
  x1 = hn::Add(x1, x3);
  for (; i + N <= n; i += N) {
    const VF ga = hn::Mul(LoadV(d, dy + i), LoadV(d, gamma + i));
    if constexpr (V::kMeanGTerm) g0 = hn::Add(g0, ga);
    x0 = hn::MulAdd(ga, LessMean<V>(LoadV(d, x + i), vm), x0);
  }
  if (i < n) {
    // Padding is zero in dy, so g and g * xc vanish there.
    const size_t r = n - i;
    const VF ga = hn::Mul(LoadTail(d, dy + i, r), LoadTail(d, gamma + i, r));
    if constexpr (V::kMeanGTerm) g1 = hn::Add(g1, ga);
    x1 = hn::MulAdd(ga, LessMean<V>(LoadTail(d, x + i, r), vm), x1);
  }
  *sg = V::kMeanGTerm ? Sum(d, hn::Add(g0, g1)) : 0.0;
  *sgx = Sum(d, hn::Add(x0, x1));
}

// dx over n columns of one row (plus dh_in when fused), and dgamma/dbeta accumulation into
// dg/db (overwritten when `first`; no db for RMSNorm).
template <bool kStream, class V, typename T, typename G>
void ApplyBackward(const T* x, const T* dy, const G* gamma, const T* dh, T* dx, float* dg,
                   float* db, size_t n, const RowCoeffs& k, bool first, ptrdiff_t ahead) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const VF vm = hn::Set(d, k.mean), vr = hn::Set(d, k.rstd), va = hn::Set(d, k.a),
           vk = hn::Set(d, k.k);
  const auto dx_of = [&](VF g, VF xc) HWY_ATTR {
    if constexpr (!V::kMeanGTerm) {
      return hn::NegMulAdd(xc, vk, hn::Mul(g, vr));
    } else {
      return hn::NegMulAdd(xc, vk, hn::Mul(hn::Sub(g, va), vr));
    }
  };
  size_t i = 0;
  for (; i + N <= n; i += N) {
    PrefetchAhead(x + i, ahead);
    PrefetchAhead(dy + i, ahead);
    const VF dyv = LoadV(d, dy + i);
    const VF xc = LessMean<V>(LoadV(d, x + i), vm);
    const VF g = hn::Mul(dyv, LoadV(d, gamma + i));
    VF dxv = dx_of(g, xc);
    if constexpr (V::kResidual) dxv = hn::Add(dxv, LoadV(d, dh + i));
    StoreV<kStream>(d, dxv, dx + i);
    const VF dgv = hn::Mul(dyv, hn::Mul(xc, vr));
    if (first) {
      hn::StoreU(dgv, d, dg + i);
      if constexpr (V::kHasBeta) hn::StoreU(dyv, d, db + i);
    } else {
      hn::StoreU(hn::Add(hn::LoadU(d, dg + i), dgv), d, dg + i);
      if constexpr (V::kHasBeta) hn::StoreU(hn::Add(hn::LoadU(d, db + i), dyv), d, db + i);
    }
  }
  if (i < n) {
    const size_t r = n - i;
    const VF dyv = LoadTail(d, dy + i, r);
    const VF xc = LessMean<V>(LoadTail(d, x + i, r), vm);
    const VF g = hn::Mul(dyv, LoadTail(d, gamma + i, r));
    VF dxv = dx_of(g, xc);
    if constexpr (V::kResidual) dxv = hn::Add(dxv, LoadTail(d, dh + i, r));
    StoreTail(d, dxv, dx + i, r);
    VF dgv = hn::Mul(dyv, hn::Mul(xc, vr)), dbv = dyv;
    if (!first) {
      dgv = hn::Add(LoadTail(d, dg + i, r), dgv);
      if constexpr (V::kHasBeta) dbv = hn::Add(LoadTail(d, db + i, r), dbv);
    }
    StoreTail(d, dgv, dg + i, r);
    if constexpr (V::kHasBeta) StoreTail(d, dbv, db + i, r);
  }
}

template <class V, typename G>
void ApplyBackwardRowG(const BackwardCtx& c, int64_t r, int64_t c0, int64_t c1, float* dg,
                       float* db, const RowCoeffs& k, bool first, ptrdiff_t ahead) {
  using T = typename V::T;
  const int64_t off = r * c.C + c0;
  const T* x = static_cast<const T*>(c.x) + off;
  const T* dy = static_cast<const T*>(c.dy) + off;
  const T* dh = V::kResidual ? static_cast<const T*>(c.dh_in) + off : nullptr;
  const G* g = static_cast<const G*>(c.gamma) + c0;
  T* dx = static_cast<T*>(c.dx) + off;
  const size_t n = static_cast<size_t>(c1 - c0);
  if (c.stream && Aligned(static_cast<T*>(c.dx), c.C) && c0 % kColChunk == 0) {
    ApplyBackward<true, V>(x, dy, g, dh, dx, dg, db, n, k, first, ahead);
  } else {
    ApplyBackward<false, V>(x, dy, g, dh, dx, dg, db, n, k, first, ahead);
  }
}

template <class V>
void ApplyBackwardRow(const BackwardCtx& c, int64_t r, int64_t c0, int64_t c1, float* dg, float* db,
                      const RowCoeffs& k, bool first, ptrdiff_t ahead) {
  c.params_f32 ? ApplyBackwardRowG<V, float>(c, r, c0, c1, dg, db, k, first, ahead)
               : ApplyBackwardRowG<V, typename V::T>(c, r, c0, c1, dg, db, k, first, ahead);
}

template <class V>
float RowMean(const BackwardCtx& c, int64_t r) {
  return V::kHasMean ? c.mean[r] : 0.0f;
}

// sum(g) and sum(g * xc) over columns [col, col + n) of row r (the sums do not read dh_in).
template <class V>
void ChunkSums(const BackwardCtx& c, int64_t r, int64_t col, size_t n, double* sg, double* sgx) {
  using T = typename V::T;
  using S = Variant<T, V::kNorm, false>;
  const T* x = static_cast<const T*>(c.x) + r * c.C + col;
  const T* dy = static_cast<const T*>(c.dy) + r * c.C + col;
  if (c.params_f32) {
    BackwardSums<S>(x, dy, static_cast<const float*>(c.gamma) + col, n, RowMean<V>(c, r), sg, sgx);
  } else {
    BackwardSums<S>(x, dy, static_cast<const T*>(c.gamma) + col, n, RowMean<V>(c, r), sg, sgx);
  }
}

template <class V>
RowCoeffs RowCoeffsOf(const BackwardCtx& c, int64_t r) {
  double sg = 0, sgx = 0;
  for (int64_t k0 = 0; k0 < c.C; k0 += kColChunk) {
    double a, b;
    ChunkSums<V>(c, r, k0, static_cast<size_t>(std::min(kColChunk, c.C - k0)), &a, &b);
    sg += a;
    sgx += b;
  }
  return backward_coeffs(RowMean<V>(c, r), c.rstd[r], sg, sgx, c.C);
}

// Cached-row backward over row chunks [k0, k1): each row is read from memory once (the second
// pass finds it in L1/L2); chunk k's dgamma/dbeta partial goes to partials[k] (or straight to
// the outputs when there is a single chunk).
template <class V>
void BackwardRowChunksT(const BackwardCtx& c, int64_t k0, int64_t k1) {
  const int64_t r_end = std::min(c.rows, k1 * c.rows_per_chunk);
  for (int64_t k = k0; k < k1; ++k) {
    float* dg = c.partials ? c.partials + k * 2 * c.C : c.dgamma;
    float* db = c.partials ? dg + c.C : c.dbeta;
    const int64_t r0 = k * c.rows_per_chunk, r1 = std::min(c.rows, r0 + c.rows_per_chunk);
    for (int64_t r = r0; r < r1; ++r)
      ApplyBackwardRow<V>(c, r, 0, c.C, dg, db, RowCoeffsOf<V>(c, r), r == r0,
                          r + 1 < r_end ? c.C : 0);
  }
  if (c.stream) hwy::FlushStream();
}

void BackwardRowChunks(const BackwardCtx& c, int64_t k0, int64_t k1) {
  Visit(c.bf16, c.norm, c.dh_in != nullptr,
        [&](auto v) HWY_ATTR { BackwardRowChunksT<decltype(v)>(c, k0, k1); });
}

// Row-split backward, phase 1: sums of column chunks [k0, k1) of row r into out[2k], out[2k+1].
void BackwardChunkSums(const BackwardCtx& c, int64_t r, int64_t k0, int64_t k1, double* out) {
  Visit(c.bf16, c.norm, false, [&](auto v) HWY_ATTR {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t col = k * kColChunk;
      const size_t n = static_cast<size_t>(std::min(kColChunk, c.C - col));
      ChunkSums<decltype(v)>(c, r, col, n, &out[2 * k], &out[2 * k + 1]);
    }
  });
}

// Row-split backward, phase 2: dx of rows [r0, r1) over column chunks [k0, k1), dgamma/dbeta
// accumulated in row order straight into the outputs (row 0 overwrites them).
void BackwardApplyColumns(const BackwardCtx& c, int64_t r0, int64_t r1, int64_t k0, int64_t k1,
                          const RowCoeffs* coeffs) {
  Visit(c.bf16, c.norm, c.dh_in != nullptr, [&](auto v) HWY_ATTR {
    using V = decltype(v);
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t col = k * kColChunk, end = std::min(c.C, col + kColChunk);
      float* db = V::kHasBeta ? c.dbeta + col : nullptr;
      for (int64_t r = r0; r < r1; ++r)
        ApplyBackwardRow<V>(c, r, col, end, c.dgamma + col, db, coeffs[r - r0], r == 0, 0);
    }
  });
  if (c.stream) hwy::FlushStream();
}

// dgamma/dbeta[c0, c1) = sum over row chunks, in chunk order, accumulated in float64 (dbeta
// only where the norm has a beta).
void CombinePartials(const BackwardCtx& c, int64_t c0, int64_t c1, int64_t nchunks) {
  constexpr int64_t kBlock = 256;
  const bool has_beta = norm_traits(c.norm).has_beta;
  double acc_g[kBlock], acc_b[kBlock];
  for (int64_t b0 = c0; b0 < c1; b0 += kBlock) {
    const int64_t n = std::min(kBlock, c1 - b0);
    std::fill(acc_g, acc_g + n, 0.0);
    std::fill(acc_b, acc_b + n, 0.0);
    for (int64_t k = 0; k < nchunks; ++k) {
      const float* pg = c.partials + k * 2 * c.C + b0;
      for (int64_t i = 0; i < n; ++i) acc_g[i] += static_cast<double>(pg[i]);
      if (!has_beta) continue;
      const float* pb = pg + c.C;
      for (int64_t i = 0; i < n; ++i) acc_b[i] += static_cast<double>(pb[i]);
    }
    for (int64_t i = 0; i < n; ++i) c.dgamma[b0 + i] = static_cast<float>(acc_g[i]);
    if (!has_beta) continue;
    for (int64_t i = 0; i < n; ++i) c.dbeta[b0 + i] = static_cast<float>(acc_b[i]);
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
#include "cpu/norm_f64.h"

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

// What both directions derive from x and the norm before they build their context.
// `extra` is the residual (forward) or the residual's gradient (backward), empty when unfused.
struct CallSetup {
  ThreadPool& pool;
  int T;
  int64_t rows, C;
  bool bf16;
  int64_t es;  // bytes per element of x
  NormTraits traits;
  bool fused;
};

CallSetup call_setup(const ConstTensorView& x, const ConstTensorView& extra, Norm norm,
                     const NormOptions& opt) {
  ThreadPool& pool = call_pool(opt, x.shape.numel());
  const bool bf16 = x.dtype == DType::kBF16;
  return {.pool = pool,
          .T = pool.num_threads(),
          .rows = x.shape.rows(),
          .C = x.shape.cols(),
          .bf16 = bf16,
          .es = bf16 ? 2 : 4,
          .traits = norm_traits(norm),
          .fused = !extra.empty()};
}

// gamma (and *beta, when beta is given and *beta is not null) widened to f32 once per call where
// widen_params says so; whether it did.
bool widen_call_params(const CallSetup& call, const void*& gamma, const void** beta) {
  if (!widen_params(call.bf16, call.rows)) return false;
  static thread_local std::unique_ptr<float[]> gbuf, bbuf;
  static thread_local size_t gcap = 0, bcap = 0;
  gamma = widen(call.pool, gamma, call.C, gbuf, gcap);
  if (beta != nullptr && *beta != nullptr) *beta = widen(call.pool, *beta, call.C, bbuf, bcap);
  return true;
}

}  // namespace

Status norm_forward(const NormForwardArgs& args, const NormForwardOutputs& out,
                    const NormOptions& opt) {
  if (args.x.dtype == DType::kF64) return norm_forward_f64(args, out, opt);
  const CallSetup call = call_setup(args.x, args.residual, args.norm, opt);
  ForwardCtx c{.x = args.x.data,
               .residual = call.fused ? args.residual.data : nullptr,
               .gamma = args.gamma.data,
               .beta = args.beta.empty() ? nullptr : args.beta.data,
               .h = call.fused ? out.h.data : nullptr,
               .y = out.y.data,
               .mean = call.traits.has_mean ? out.mean.as<float>() : nullptr,
               .rstd = out.rstd.as<float>(),
               .rows = call.rows,
               .C = call.C,
               .eps = args.eps,
               .norm = args.norm,
               .bf16 = call.bf16,
               .stream = stream_output((call.fused ? 4 : 2) * call.rows * call.C * call.es),
               .params_f32 = !call.bf16};
  if (widen_call_params(call, c.gamma, &c.beta)) c.params_f32 = true;
  const int64_t rows = c.rows, C = c.C;
  // x (and the residual) of a row are read twice: statistics, then h and y.
  const ForwardPlan plan = plan_forward(rows, C, (call.fused ? 2 : 1) * C * call.es, call.T);
  if (!plan.row_split) {
    call.pool.parallel_for(rows, [&](int64_t r0, int64_t r1, int) {
      HWY_DYNAMIC_DISPATCH(ForwardRows)(c, r0, r1);
    });
    set_report(opt, plan.path, call.T);
    return {};
  }
  static thread_local std::unique_ptr<ChunkStats[]> buf;
  static thread_local size_t cap = 0;
  const int64_t nck = ceil_div(C, kColChunk), group = plan.group;
  ChunkStats* stats = scratch(buf, cap, static_cast<size_t>(group * nck));
  for (int64_t g0 = 0; g0 < rows; g0 += group) {
    const int64_t g1 = std::min(rows, g0 + group);
    call.pool.parallel_for(nck, [&](int64_t k0, int64_t k1, int) {
      for (int64_t r = g0; r < g1; ++r)
        HWY_DYNAMIC_DISPATCH(ForwardChunkStats)(c, r, k0, k1, stats + (r - g0) * nck);
    });
    call.pool.parallel_for(nck, [&](int64_t k0, int64_t k1, int) {
      const int64_t c0 = k0 * kColChunk, c1 = std::min(C, k1 * kColChunk);
      for (int64_t r = g0; r < g1; ++r) HWY_DYNAMIC_DISPATCH(ForwardApplyColumns)
      (c, r, c0, c1, stats + (r - g0) * nck, nck, k0 == 0);
    });
  }
  set_report(opt, plan.path, call.T, {{"row_group", static_cast<double>(group)}});
  return {};
}

Status norm_backward(const NormBackwardArgs& args, const NormBackwardOutputs& out,
                     const NormOptions& opt) {
  if (args.x.dtype == DType::kF64) return norm_backward_f64(args, out, opt);
  const CallSetup call = call_setup(args.x, args.dh_in, args.norm, opt);
  BackwardCtx c{.x = args.x.data,
                .dy = args.dy.data,
                .dh_in = call.fused ? args.dh_in.data : nullptr,
                .gamma = args.gamma.data,
                .mean = call.traits.has_mean ? args.mean.as<float>() : nullptr,
                .rstd = args.rstd.as<float>(),
                .dx = out.dx.data,
                .dgamma = out.dgamma.as<float>(),
                .dbeta = call.traits.has_beta ? out.dbeta.as<float>() : nullptr,
                .partials = nullptr,
                .rows = call.rows,
                .C = call.C,
                .rows_per_chunk = 0,
                .norm = args.norm,
                .bf16 = call.bf16,
                .stream = stream_output((call.fused ? 4 : 3) * call.rows * call.C * call.es),
                .params_f32 = !call.bf16};
  if (widen_call_params(call, c.gamma, nullptr)) c.params_f32 = true;
  const int64_t rows = c.rows, C = c.C;
  const int64_t nck = ceil_div(C, kColChunk);
  const BackwardPlan plan = plan_backward(rows, C, call.es);
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
    call.pool.parallel_for(nck, [&](int64_t k0, int64_t k1, int) { row_sums(0, k0, k1); });
    for (int64_t g = 0; g < ngroups; ++g) {
      const int64_t g0 = g * group, g1 = std::min(rows, g0 + group);
      for (int64_t r = g0; r < g1; ++r) {
        double sg = 0, sgx = 0;
        const double* s = group_sums(g) + 2 * (r - g0) * nck;
        for (int64_t k = 0; k < nck; ++k) {
          sg += s[2 * k];
          sgx += s[2 * k + 1];
        }
        coeffs[r - g0] =
            backward_coeffs(call.traits.has_mean ? c.mean[r] : 0.0f, c.rstd[r], sg, sgx, C);
      }
      call.pool.parallel_for(nck, [&](int64_t k0, int64_t k1, int) {
        for (int64_t k = k0; k < k1; ++k) {
          HWY_DYNAMIC_DISPATCH(BackwardApplyColumns)(c, g0, g1, k, k + 1, coeffs);
          if (g + 1 < ngroups) row_sums(g + 1, k, k + 1);
        }
      });
    }
    set_report(opt, plan.path, call.T, {{"row_group", static_cast<double>(group)}});
    return {};
  }
  // Many rows: one dgamma/dbeta partial per row chunk, then a column-parallel sum of the
  // partials in chunk order.
  c.rows_per_chunk = plan.rows_per_chunk;
  const int64_t nchunks = plan.row_chunks;
  static thread_local std::unique_ptr<float[]> part_buf;
  static thread_local size_t part_cap = 0;
  if (nchunks > 1) c.partials = scratch(part_buf, part_cap, static_cast<size_t>(nchunks * 2 * C));
  call.pool.parallel_for(nchunks, [&](int64_t k0, int64_t k1, int) {
    HWY_DYNAMIC_DISPATCH(BackwardRowChunks)(c, k0, k1);
  });
  if (nchunks > 1) {
    call.pool.parallel_for(ceil_div(C, kCombineCols), [&](int64_t b0, int64_t b1, int) {
      HWY_DYNAMIC_DISPATCH(CombinePartials)
      (c, b0 * kCombineCols, std::min(C, b1 * kCombineCols), nchunks);
    });
  }
  set_report(opt, plan.path, call.T, {{"row_chunks", static_cast<double>(nchunks)}});
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
