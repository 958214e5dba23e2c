// Native CPU norm family on float64 data: Highway kernels in f64 lanes (compiled for AVX-512,
// AVX2 and a portable fallback, picked at run time) over the backend's thread pool. f64 data is
// computed in float64 throughout, as the API promises (include/tilenorm/layernorm.h).
//
// Per row, h = x + residual (or x), in f64:
//   forward:  mean = sum(h)/C (0 for RMSNorm), rstd = 1/sqrt(sum((h - mean)^2)/C + eps) by two
//             passes, as the reference; y = (h - mean) * rstd * gamma + beta (no beta for RMSNorm).
//             A row whose sums are not finite takes the reference's own loops (common/row_stats.h).
//   backward: g = dy * gamma, xc = x - mean, a = sum(g)/C (0 for RMSNorm),
//             k = rstd^3 * sum(g * xc)/C, dx = (g - a) * rstd - xc * k (+ dh_in);
//             dgamma = sum_r dy * xc * rstd, dbeta = sum_r dy.
// Determinism as the f32 kernels: a row is one thread's, its sums in a fixed lane order; dgamma
// and dbeta are summed per fixed chunk of rows (a function of the shape only), the chunks then
// combined in order, so results do not depend on the thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/norm_f64.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// foreach_target must come first: it re-includes this file once per target.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/row_stats.h"
#include "cpu/norm_f64.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace tilenorm::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DD = hn::ScalableTag<double>;
using VD = hn::Vec<DD>;

HWY_INLINE double SumD(DD d, VD v) { return hn::GetLane(hn::SumOfLanes(d, v)); }

// Sum of h[i] and, in a second pass, of (h[i] - mean)^2 (or h[i]^2 for RMSNorm).
double RowSum(const double* h, int64_t C) {
  const DD d;
  const auto N = static_cast<int64_t>(hn::Lanes(d));
  VD a0 = hn::Zero(d), a1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * N <= C; i += 2 * N) {
    a0 = hn::Add(a0, hn::LoadU(d, h + i));
    a1 = hn::Add(a1, hn::LoadU(d, h + i + N));
  }
  for (; i + N <= C; i += N) a0 = hn::Add(a0, hn::LoadU(d, h + i));
  double s = SumD(d, hn::Add(a0, a1));
  for (; i < C; ++i) s += h[i];
  return s;
}

double RowSquares(const double* h, int64_t C, double mean) {
  const DD d;
  const auto N = static_cast<int64_t>(hn::Lanes(d));
  const VD vm = hn::Set(d, mean);
  VD q0 = hn::Zero(d), q1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * N <= C; i += 2 * N) {
    const VD c0 = hn::Sub(hn::LoadU(d, h + i), vm), c1 = hn::Sub(hn::LoadU(d, h + i + N), vm);
    q0 = hn::MulAdd(c0, c0, q0);
    q1 = hn::MulAdd(c1, c1, q1);
  }
  for (; i + N <= C; i += N) {
    const VD c0 = hn::Sub(hn::LoadU(d, h + i), vm);
    q0 = hn::MulAdd(c0, c0, q0);
  }
  double s = SumD(d, hn::Add(q0, q1));
  for (; i < C; ++i) s += (h[i] - mean) * (h[i] - mean);
  return s;
}

// Rows [r0, r1): h (when fused), the statistics, y.
void ForwardRowsF64(const ForwardF64& c, int64_t r0, int64_t r1) {
  const DD d;
  const auto N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t C = c.C;
  for (int64_t r = r0; r < r1; ++r) {
    const double* h = c.x + r * C;
    if (c.residual) {
      const double* res = c.residual + r * C;
      double* hw = c.h + r * C;
      int64_t i = 0;
      for (; i + N <= C; i += N)
        hn::StoreU(hn::Add(hn::LoadU(d, h + i), hn::LoadU(d, res + i)), d, hw + i);
      for (; i < C; ++i) hw[i] = h[i] + res[i];
      h = hw;
    }
    const double inv_c = 1.0 / static_cast<double>(C);
    const double mean = norm_traits(c.norm).has_mean ? RowSum(h, C) * inv_c : 0.0;
    const double sq = RowSquares(h, C, mean);
    double mu = mean, rs = 1.0 / std::sqrt(sq * inv_c + c.eps);
    if (HWY_UNLIKELY(!std::isfinite(mu) || !std::isfinite(sq)))
      row_stats_f64(c.norm, h, C, c.eps, &mu, &rs);
    if (c.mean) c.mean[r] = mu;  // null without a mean statistic
    c.rstd[r] = rs;
    double* y = c.y + r * C;
    const VD vm = hn::Set(d, mu), vr = hn::Set(d, rs);
    int64_t i = 0;
    for (; i + N <= C; i += N) {
      const VD v =
          hn::Mul(hn::Mul(hn::Sub(hn::LoadU(d, h + i), vm), vr), hn::LoadU(d, c.gamma + i));
      hn::StoreU(c.beta ? hn::Add(v, hn::LoadU(d, c.beta + i)) : v, d, y + i);
    }
    for (; i < C; ++i) y[i] = (h[i] - mu) * rs * c.gamma[i] + (c.beta ? c.beta[i] : 0.0);
  }
}

// Row chunks [k0, k1): dx of their rows, and each chunk's dgamma/dbeta into dg + k * 2C (dbeta
// after dgamma).
void BackwardChunksF64(const BackwardF64& c, int64_t k0, int64_t k1, double* partials) {
  const DD d;
  const auto N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t C = c.C;
  const double inv_c = 1.0 / static_cast<double>(C);
  const NormTraits t = norm_traits(c.norm);
  for (int64_t k = k0; k < k1; ++k) {
    double* dg = partials + k * 2 * C;
    double* db = dg + C;
    std::fill(dg, dg + 2 * C, 0.0);
    const int64_t r1 = std::min(c.rows, (k + 1) * c.rows_per_chunk);
    for (int64_t r = k * c.rows_per_chunk; r < r1; ++r) {
      const double* x = c.x + r * C;
      const double* dy = c.dy + r * C;
      const double mean = c.mean ? c.mean[r] : 0.0, rstd = c.rstd[r];
      const VD vm = hn::Set(d, mean);
      VD sg = hn::Zero(d), sgx = hn::Zero(d);
      int64_t i = 0;
      for (; i + N <= C; i += N) {
        const VD g = hn::Mul(hn::LoadU(d, dy + i), hn::LoadU(d, c.gamma + i));
        sg = hn::Add(sg, g);
        sgx = hn::MulAdd(g, hn::Sub(hn::LoadU(d, x + i), vm), sgx);
      }
      double s_g = SumD(d, sg), s_gx = SumD(d, sgx);
      for (; i < C; ++i) {
        const double g = dy[i] * c.gamma[i];
        s_g += g;
        s_gx += g * (x[i] - mean);
      }
      const double a = t.mean_g_term ? s_g * inv_c : 0.0, kk = rstd * rstd * rstd * s_gx * inv_c;
      const VD va = hn::Set(d, a), vr = hn::Set(d, rstd), vk = hn::Set(d, kk);
      double* dx = c.dx + r * C;
      const double* dh = c.dh_in ? c.dh_in + r * C : nullptr;
      i = 0;
      for (; i + N <= C; i += N) {
        const VD dyv = hn::LoadU(d, dy + i), xc = hn::Sub(hn::LoadU(d, x + i), vm);
        const VD g = hn::Mul(dyv, hn::LoadU(d, c.gamma + i));
        VD v = hn::Sub(hn::Mul(hn::Sub(g, va), vr), hn::Mul(xc, vk));
        if (dh) v = hn::Add(v, hn::LoadU(d, dh + i));
        hn::StoreU(v, d, dx + i);
        hn::StoreU(hn::MulAdd(hn::Mul(dyv, xc), vr, hn::LoadU(d, dg + i)), d, dg + i);
        if (t.has_beta) hn::StoreU(hn::Add(hn::LoadU(d, db + i), dyv), d, db + i);
      }
      for (; i < C; ++i) {
        const double xc = x[i] - mean, g = dy[i] * c.gamma[i];
        dx[i] = (g - a) * rstd - xc * kk + (dh ? dh[i] : 0.0);
        dg[i] += dy[i] * xc * rstd;
        if (t.has_beta) db[i] += dy[i];
      }
    }
  }
}

}  // namespace tilenorm::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <memory>

#include "common/thread_pool.h"
#include "cpu/dispatch.h"

namespace tilenorm::cpu {

HWY_EXPORT(ForwardRowsF64);
HWY_EXPORT(BackwardChunksF64);

namespace {

// Rows per dgamma/dbeta partial: at least kRowChunk, and at most 64 partials (their memory is
// 64 x 2C doubles). A function of the shape only.
int64_t rows_per_chunk_f64(int64_t rows) { return std::max(kRowChunkF64, ceil_div(rows, 64)); }

}  // namespace

Status norm_forward_f64(const NormForwardArgs& args, const NormForwardOutputs& out,
                        const NormOptions& opt) {
  ThreadPool& pool = call_pool(opt, args.x.shape.numel());
  const bool has_mean = norm_traits(args.norm).has_mean, fused = !args.residual.empty();
  const ForwardF64 c{.x = args.x.as<double>(),
                     .residual = fused ? args.residual.as<double>() : nullptr,
                     .gamma = args.gamma.as<double>(),
                     .beta = args.beta.empty() ? nullptr : args.beta.as<double>(),
                     .h = fused ? out.h.as<double>() : nullptr,
                     .y = out.y.as<double>(),
                     .mean = has_mean ? out.mean.as<double>() : nullptr,
                     .rstd = out.rstd.as<double>(),
                     .rows = args.x.shape.rows(),
                     .C = args.x.shape.cols(),
                     .eps = args.eps,
                     .norm = args.norm};
  pool.parallel_for(c.rows, [&](int64_t r0, int64_t r1, int) {
    HWY_DYNAMIC_DISPATCH(ForwardRowsF64)(c, r0, r1);
  });
  set_report(opt, "f64-rows", pool.num_threads());
  return {};
}

Status norm_backward_f64(const NormBackwardArgs& args, const NormBackwardOutputs& out,
                         const NormOptions& opt) {
  ThreadPool& pool = call_pool(opt, args.x.shape.numel());
  const NormTraits t = norm_traits(args.norm);
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const BackwardF64 c{.x = args.x.as<double>(),
                      .dy = args.dy.as<double>(),
                      .dh_in = args.dh_in.empty() ? nullptr : args.dh_in.as<double>(),
                      .gamma = args.gamma.as<double>(),
                      .mean = t.has_mean ? args.mean.as<double>() : nullptr,
                      .rstd = args.rstd.as<double>(),
                      .dx = out.dx.as<double>(),
                      .rows = rows,
                      .C = C,
                      .rows_per_chunk = rows_per_chunk_f64(rows),
                      .norm = args.norm};
  const int64_t nchunks = ceil_div(rows, c.rows_per_chunk);
  static thread_local std::unique_ptr<double[]> buf;
  static thread_local size_t cap = 0;
  double* partials = scratch(buf, cap, static_cast<size_t>(nchunks * 2 * C));
  pool.parallel_for(nchunks, [&](int64_t k0, int64_t k1, int) {
    HWY_DYNAMIC_DISPATCH(BackwardChunksF64)(c, k0, k1, partials);
  });
  double* dgamma = out.dgamma.as<double>();
  double* dbeta = t.has_beta ? out.dbeta.as<double>() : nullptr;
  pool.parallel_for(ceil_div(C, kCombineCols), [&](int64_t b0, int64_t b1, int) {
    for (int64_t i = b0 * kCombineCols; i < std::min(C, b1 * kCombineCols); ++i) {
      double g = 0, b = 0;
      for (int64_t k = 0; k < nchunks; ++k) {
        g += partials[k * 2 * C + i];
        b += partials[k * 2 * C + C + i];
      }
      dgamma[i] = g;
      if (dbeta) dbeta[i] = b;
    }
  });
  set_report(opt, "f64-rows", pool.num_threads(), {{"row_chunks", static_cast<double>(nchunks)}});
  return {};
}

}  // namespace tilenorm::cpu
#endif  // HWY_ONCE
