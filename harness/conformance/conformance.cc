#include "harness/conformance/conformance.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "norm_args.h"
#include "reference/layernorm.h"
#include "tile/ops/norm_backward/norm_backward.h"
#include "tile/ops/norm_forward/norm_forward.h"

namespace tilenorm::conformance {

const char* op_name(Op op) {
  switch (op) {
    case Op::kLayerNorm:
      return "layernorm";
    case Op::kRmsNorm:
      return "rmsnorm";
    case Op::kLayerNormResidual:
      return "layernorm+res";
    case Op::kRmsNormResidual:
      return "rmsnorm+res";
  }
  return "?";
}

std::vector<Op> all_ops() {
  return {Op::kLayerNorm, Op::kRmsNorm, Op::kLayerNormResidual, Op::kRmsNormResidual};
}
Norm op_norm(Op op) {
  return op == Op::kRmsNorm || op == Op::kRmsNormResidual ? Norm::kRmsNorm : Norm::kLayerNorm;
}
bool op_residual(Op op) { return op == Op::kLayerNormResidual || op == Op::kRmsNormResidual; }

const char* TilePaths::get(bool backward, DType dtype) const {
  const bool bf16 = dtype == DType::kBF16;
  return backward ? (bf16 ? backward_bf16 : backward_f32) : (bf16 ? forward_bf16 : forward_f32);
}

namespace {

// The shapes and inputs every op runs, each with its reason. The tile paths are those of the
// default machine (1464 KiB L1, 8x8 cores) unless the case names another.
std::vector<Case> base_cases() {
  // At 1464 KiB the f32 backward keeps a tile-row of x and dy in L1 up to C = 4576.
  constexpr TilePaths kF32BackwardBlock = {"fit", "fit", "fit", "block"};
  constexpr TilePaths kAllBlock = {"block", "block", "block", "block"};
  auto random = [](const char* reason, Shape shape, double eps = 1e-5) {
    Case c;
    c.reason = reason;
    c.shape = std::move(shape);
    c.eps = eps;
    return c;
  };
  // The bug report's deterministic inputs, at its eps 1e-6.
  auto constant = [](const char* reason, Shape shape, double x, double dy, double gamma) {
    Case c;
    c.reason = reason;
    c.shape = std::move(shape);
    c.input = Input::kConstant;
    c.eps = 1e-6;
    c.x = x;
    c.dy = dy;
    c.gamma = gamma;
    return c;
  };
  // The residual ops run these too: every input kind, masks, 3-D, many rows, block and streamed.
  auto also_residual = [](Case c) {
    c.residual_too = true;
    return c;
  };
  auto with_op_paths = [](Case c, std::vector<std::pair<Op, TilePaths>> op_paths) {
    c.op_tile_paths = std::move(op_paths);
    return c;
  };
  auto with_paths = [](Case c, TilePaths paths, uint32_t l1_kib = 0, uint32_t grid = 0) {
    c.tile_paths = paths;
    c.tile_l1_kib = l1_kib;
    c.tile_grid = grid;
    return c;
  };
  Case offset =
      random("large offset: x = 1e4 + U(-1,1), a one-pass variance loses it", Shape{16, 1024});
  offset.input = Input::kOffset;
  offset.x_offset = 1e4;

  return {
      also_residual(random("1x1: smallest problem", Shape{1, 1})),
      random("C = 1: variance 0 everywhere", Shape{5, 1}),
      random("C = 2: shorter than any vector", Shape{3, 2}),
      random("C = 20 < 32: one masked tile (OneTile), 13 rows", Shape{13, 20}),
      random("C = 31: below a tile, a partial vector chunk", Shape{64, 31}),
      random("C = 32: one full tile, no mask", Shape{33, 32}),
      also_residual(random("C = 33: a tile and one column (TwoIncompleteTiles)", Shape{32, 33})),
      random("C = 213: C % 32 = 21 (OneTilePerRow)", Shape{19, 213}),
      also_residual(random("3-D input, leading dims flattened", Shape{2, 3, 100})),
      random("300 rows of 77: rows not a multiple of the 32-row dgamma chunk", Shape{300, 77}),
      also_residual(offset),
      random("eps 1e-3, C = 1000 (1/C inexact)", Shape{64, 1000}, 1e-3),
      random("C = 1023, 1024, 1025: around the cpu's 1024-column statistics chunk", Shape{9, 1023}),
      random("C = 1024: one statistics chunk", Shape{9, 1024}),
      random("C = 1025: a one-element last chunk", Shape{9, 1025}),
      random("257 rows of 1024: a partial last row group (cuda rows path)", Shape{257, 1024}),
      random("7 rows of 300: fewer rows than the cpu's row chunks want", Shape{7, 300}),
      also_residual(random("132 tile-rows: 2 or 3 per core on the 8x8 grid", Shape{4200, 100})),
      random("256 rows of 1025: 8 cpu row chunks of 32, two statistics chunks per row",
             Shape{256, 1025}),
      random("C = 4100: two chunks per cuda thread", Shape{9, 4100}),
      with_paths(random("one row of 5000: a single dgamma chunk", Shape{1, 5000}),
                 kF32BackwardBlock),
      with_paths(random("C = 8192: the longest row one cuda block holds", Shape{7, 8192}),
                 kF32BackwardBlock),
      also_residual(constant("BugRepro_Deterministic_2048Features", Shape{100, 2048}, 0.5, 1, 1)),
      constant("BugRepro_Deterministic_128Tiles (C = 4096)", Shape{100, 4096}, 0.5, 1, 1),
      with_paths(
          constant("BugRepro_Deterministic_256Tiles (C = 8192)", Shape{100, 8192}, 0.5, 1, 1),
          kF32BackwardBlock),
      with_paths(constant("BugRepro_Deterministic_DifferentValues", Shape{100, 8192}, 1, 0.5, 2),
                 kF32BackwardBlock),
      with_paths(constant("BugRepro_Deterministic_8462Features", Shape{3, 273, 8462}, 0.5, 1, 1),
                 kF32BackwardBlock),
      with_paths(random("BugRepro_TightTolerance_8192Features", Shape{100, 8192}, 1e-6),
                 kF32BackwardBlock),
      with_paths(random("BugRepro_TightTolerance_8462Features", Shape{3, 273, 8462}, 1e-6),
                 kF32BackwardBlock),
      with_paths(random("DoesNotFitInL1_WtNotDivisibleBy4: C = 8191", Shape{300, 8191}),
                 kF32BackwardBlock),
      with_paths(
          random("< 16 rows of 16385: cpu backward splits rows over threads", Shape{12, 16385}),
          {"fit", "block", "block", "block"}),
      with_paths(random("3 rows of 40000: cpu forward and backward split rows", Shape{3, 40000}),
                 kAllBlock),
      with_paths(random("40 rows of 16385: cpu backward cached rows, 8 chunks of 5 rows",
                        Shape{40, 16385}),
                 {"fit", "block", "block", "block"}),
      with_paths(random("C = 65536: the longest row a cuda cluster of 8 holds", Shape{3, 65536}),
                 kAllBlock),
      with_paths(random("huge odd C = 65537: the shortest cuda split row", Shape{2, 65537}),
                 kAllBlock),
      also_residual(with_op_paths(
          with_paths(
              random("384 KiB L1, 2x2 cores: block paths, dγ/dβ carried across 2-3 tile-rows",
                     Shape{300, 4600}),
              kAllBlock, 384, 2),
          {{Op::kRmsNorm, {"fit", "block", "block", "block"}},
           {Op::kLayerNormResidual, {"block", "block", "block", "streamed"}}})),
      also_residual(with_op_paths(
          with_paths(
              random("360 KiB L1, 1 core: streamed block paths (bf16 forward: resident block)",
                     Shape{40, 40010}, 1e-6),
              {"block", "streamed", "streamed", "streamed"}, 360, 1),
          {{Op::kRmsNorm, {"block", "block", "streamed", "streamed"}},
           {Op::kRmsNormResidual, {"block", "block", "streamed", "streamed"}}})),
  };
}

// Compares one output against its reference (the compare rule of the header).
Check compare_output(Check base, const char* name, ConstTensorView got,
                     const std::vector<double>& ref, Tolerance tol, bool scale_by_max) {
  double scale = 1;
  if (scale_by_max)
    for (double v : ref) scale = std::max(scale, std::fabs(v));
  const Tolerance eff{tol.atol * scale, tol.rtol};
  const CompareResult c = compare_allclose(got, ref, eff);
  base.output = name;
  base.err = c.max_abs_err;
  base.excess = c.max_excess;
  base.tol = eff;
  base.pass = c.pass;
  if (!c.pass) base.detail = c.to_string();
  return base;
}

// The machine the tile backend runs a case on: the sanitizer on (any finding fails the op),
// the case's L1 and grid.
tile::TileOpConfig tile_config(const Case& c, const RunOptions& options) {
  tile::TileOpConfig config = tile::default_tile_op_config({options.threads, nullptr});
  config.device.sanitizer = tile::SanitizerMode::kError;
  const uint32_t l1_kib = options.tile_l1_kib != 0 ? options.tile_l1_kib : c.tile_l1_kib;
  if (l1_kib != 0) config.device.l1_size = l1_kib * 1024;
  if (c.tile_grid != 0) config.device.grid_x = config.device.grid_y = c.tile_grid;
  return config;
}

// One run's outputs; mean, h and dbeta stay undefined where the op has none.
struct Forward {
  Tensor y, mean, rstd, h;
};
struct Backward {
  Tensor dx, dgamma, dbeta;
};

// Runs the forward; *path = the path the backend reports.
Status run_forward(Backend backend, const Case& c, const RunOptions& options,
                   const NormForwardArgs& a, Forward* f, std::string* path) {
  const bool layer = a.norm == Norm::kLayerNorm;
  if (backend == Backend::kTile) {  // the tile op on the case's machine
    const Shape& shape = a.x.shape;
    const DType sd = norm_stat_dtype(a.x.dtype);
    *f = {Tensor(shape, a.x.dtype), layer ? Tensor(shape.leading(), sd) : Tensor(),
          Tensor(shape.leading(), sd), a.residual.empty() ? Tensor() : Tensor(shape, a.x.dtype)};
    tile::TileOpInfo info;
    const Status s =
        tile::norm_forward_tile(a, {f->y.view(), f->h.view(), f->mean.view(), f->rstd.view()},
                                tile_config(c, options), &info);
    *path = info.path;
    return s;
  }
  RunReport report;
  const NormOptions opt{options.threads, &report};
  Status s;
  if (layer) {
    LayerNormForwardResult r;
    s = layernorm_forward(backend, {a.x, a.gamma, a.beta, a.eps, a.residual}, &r, opt);
    *f = {std::move(r.y), std::move(r.mean), std::move(r.rstd), std::move(r.h)};
  } else {
    RmsNormForwardResult r;
    s = rmsnorm_forward(backend, {a.x, a.gamma, a.eps, a.residual}, &r, opt);
    *f = {std::move(r.y), Tensor(), std::move(r.rrms), std::move(r.h)};
  }
  *path = report.path;
  return s;
}

Status run_backward(Backend backend, const Case& c, const RunOptions& options,
                    const NormBackwardArgs& a, Backward* b, std::string* path) {
  const bool layer = a.norm == Norm::kLayerNorm;
  if (backend == Backend::kTile) {
    const Shape cs{a.x.shape.cols()};
    const DType sd = norm_stat_dtype(a.x.dtype);
    *b = {Tensor(a.x.shape, a.x.dtype), Tensor(cs, sd), layer ? Tensor(cs, sd) : Tensor()};
    tile::TileOpInfo info;
    const Status s = tile::norm_backward_tile(a, {b->dx.view(), b->dgamma.view(), b->dbeta.view()},
                                              tile_config(c, options), &info);
    *path = info.path;
    return s;
  }
  RunReport report;
  const NormOptions opt{options.threads, &report};
  Status s;
  if (layer) {
    LayerNormBackwardResult r;
    s = layernorm_backward(backend, {a.x, a.dy, a.gamma, a.mean, a.rstd, a.dh_in}, &r, opt);
    *b = {std::move(r.dx), std::move(r.dgamma), std::move(r.dbeta)};
  } else {
    RmsNormBackwardResult r;
    s = rmsnorm_backward(backend, {a.x, a.dy, a.gamma, a.rstd, a.dh_in}, &r, opt);
    *b = {std::move(r.dx), std::move(r.dgamma), Tensor()};
  }
  *path = report.path;
  return s;
}

// A failed run's check, and on the tile backend a failing "path" check when the path differs
// from the case's (unless every case runs on another L1, where the paths are expected to move
// and the check shows where).
void check_run(Backend backend, const Case& c, const Check& base, const Status& s, bool backward,
               DType dtype, std::vector<Check>* checks) {
  if (!s.ok()) {
    Check failed = base;
    failed.output = "status";
    failed.pass = false;
    failed.detail = s.to_string();
    checks->push_back(failed);
  }
  const char* want = c.paths_of(c.op).get(backward, dtype);
  if (backend == Backend::kTile && base.path != want) {
    Check path = base;
    path.output = "path";
    path.pass = false;
    path.detail = fmt::format("took the {} path, expected {}", base.path, want);
    checks->push_back(path);
  }
}

Tensor stat_tensor(const std::vector<double>& v, const Shape& shape, DType dtype) {
  Tensor t(shape, norm_stat_dtype(dtype));
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, v[static_cast<size_t>(i)]);
  return t;
}

}  // namespace

const std::vector<Case>& registry() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> all;
    for (Op op : all_ops()) {
      std::vector<Case> base = base_cases();
      for (size_t i = 0; i < base.size(); ++i) {
        if (op_residual(op) && !base[i].residual_too) continue;
        base[i].op = op;
        base[i].seed = 1000 + i;
        all.push_back(base[i]);
      }
    }
    return all;
  }();
  return cases;
}

std::string input_label(const Case& c) {
  switch (c.input) {
    case Input::kRandom:
      return fmt::format("random eps={}", c.eps);
    case Input::kOffset:
      return fmt::format("offset={} eps={}", c.x_offset, c.eps);
    case Input::kConstant:
      return fmt::format("x={} dy={} gamma={}", c.x, c.dy, c.gamma);
  }
  return "?";
}

Tensor make_input(const Case& c, Role role, const Shape& shape, DType dtype) {
  Tensor t(shape, dtype);
  if (c.input == Input::kConstant) {
    const bool like_x = role == Role::kX || role == Role::kResidual;
    const bool like_dy = role == Role::kDy || role == Role::kDhIn;
    t.fill(like_x ? c.x : like_dy ? c.dy : role == Role::kGamma ? c.gamma : 0);
    return t;
  }
  double lo = -1, hi = 1;
  if (role == Role::kGamma || role == Role::kBeta) lo = 0;
  if (role == Role::kX && c.input == Input::kOffset) lo += c.x_offset, hi += c.x_offset;
  uint64_t state = c.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(role) + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>(state >> 11) * 0x1.0p-53;
    t.set(i, lo + (hi - lo) * u);
  }
  return t;
}

ToleranceRow tolerance(Op op, Backend backend, DType dtype, Output output) {
  (void)op;  // every op shares its backend's levels
  struct Row {
    std::optional<Backend> backend;  // none: any backend without a row of its own
    DType dtype;
    Tolerance y, stats, dx, dparams;
    const char* reason;
  };
  static const Row kRows[] = {
      {Backend::kTile,
       DType::kBF16,
       {2e-2, 1e-2},
       {1e-2, 1e-2},
       {2e-2, 1e-2},
       {5e-2, 1e-2},
       "tile bf16: inputs travel as bf16 tiles, statistics, row sums and products are fp32 (fp32 "
       "operands of FPU matmuls split hi + lo); dx and dgamma/dbeta at the post-fix upstream test "
       "levels (dx atol 2e-2, dgamma/dbeta 5e-2); measured worst cases are 5-10x inside (the "
       "output rounding)"},
      {Backend::kTile,
       DType::kF32,
       {5e-3, 1e-5},
       {1e-5, 1e-5},
       {5e-3, 1e-5},
       {1e-5, 1e-5},
       "tile f32: statistics and dgamma/dbeta at the cpu's f32 level; y and dx measure ~1e-7 of "
       "the output scale on well-conditioned rows, but inherit the fp32 inputs' and mean's "
       "rounding (ulp(1e4) ~ 1e-3 at x = 1e4 + U(-1,1)) times rstd"},
      {Backend::kCuda,
       DType::kBF16,
       {1e-2, 8e-3},
       {1e-4, 1e-4},
       {2e-2, 8e-3},
       {1e-3, 1e-3},
       "cuda bf16: y and dx rounded to bf16 (2^-9 relative) after fp32 math; dx one more "
       "rounding step (fp32 products of bf16 values, summed in a different order per path)"},
      {Backend::kCuda,
       DType::kF32,
       {5e-5, 1e-5},
       {1e-5, 1e-5},
       {1e-4, 1e-4},
       {1e-4, 1e-4},
       "cuda f32: fp32 sums of up to 1M terms in warp-shuffle trees and cluster / split "
       "reductions; dx and dgamma/dbeta take the fp32 rounding of those sums"},
      {std::nullopt,
       DType::kBF16,
       {1e-2, 8e-3},
       {1e-4, 1e-4},
       {1e-2, 8e-3},
       {1e-3, 1e-3},
       "bf16 storage: y and dx rounded to bf16 (relative step 2^-8); statistics and "
       "dgamma/dbeta stay fp32 (f32 sums within chunks, float64 across them)"},
      {std::nullopt,
       DType::kF32,
       {1e-5, 1e-5},
       {1e-5, 1e-5},
       {1e-5, 1e-5},
       {1e-5, 1e-5},
       "f32 storage with fp32 accumulation: a few ulps of O(1) values"},
      {std::nullopt,
       DType::kF64,
       {1e-12, 1e-12},
       {1e-12, 1e-12},
       {1e-12, 1e-12},
       {1e-12, 1e-12},
       "f64: the reference's own loops"},
  };
  if (output == Output::kH) {
    // x + residual of two values of the dtype, summed in fp32 or wider and rounded once to the
    // dtype: the reference's sum rounded the same way, within a double rounding's ulp.
    return {{0, dtype == DType::kBF16  ? 0x1.0p-7
                : dtype == DType::kF32 ? 0x1.0p-23
                                       : 0},
            "h = x + residual: the exact sum rounded once to the dtype, within one ulp (the "
            "tile machine's packer, like Wormhole's, rounds ties away from zero where the "
            "reference rounds them to even)"};
  }
  for (const Row& r : kRows) {
    if (r.dtype != dtype || (r.backend && *r.backend != backend)) continue;
    const Tolerance tol = output == Output::kY       ? r.y
                          : output == Output::kStats ? r.stats
                          : output == Output::kDx    ? r.dx
                                                     : r.dparams;
    return {tol, r.reason};
  }
  return {{0, 0}, "no row: exact"};
}

bool CaseResult::pass() const {
  return std::all_of(checks.begin(), checks.end(), [](const Check& c) { return c.pass; });
}

CaseResult run_case(Backend backend, DType dtype, const Case& c, const RunOptions& options) {
  CaseResult result;
  if (!backend_built(backend)) {
    result.unsupported = fmt::format("{} is not built", backend_name(backend));
    return result;
  }
  auto tol = [&](Output o) { return tolerance(c.op, backend, dtype, o).tol; };
  const Norm norm = op_norm(c.op);
  const bool layer = norm == Norm::kLayerNorm, with_residual = op_residual(c.op);
  const char* rstd_name = layer ? "rstd" : "rrms";
  const Shape& shape = c.shape;
  const Shape cs{shape.cols()};
  const int64_t R = shape.rows(), C = shape.cols();
  auto input = [&](Role role, const Shape& s, bool given = true) {
    return given ? make_input(c, role, s, dtype) : Tensor();
  };
  const Tensor x = input(Role::kX, shape), dy = input(Role::kDy, shape),
               gamma = input(Role::kGamma, cs), beta = input(Role::kBeta, cs, layer),
               residual = input(Role::kResidual, shape, with_residual),
               dh_in = input(Role::kDhIn, shape, with_residual);
  auto view = [](const Tensor& t) { return t.defined() ? t.cview() : ConstTensorView{}; };

  // Forward: the backend first (an op it cannot run is skipped), then the reference on h as
  // stored in the dtype (what the backend normalizes and the backward reads).
  Check fwd{"forward"};
  Forward f;
  Status s = run_forward(backend, c, options,
                         {norm, x.cview(), view(residual), gamma.cview(), view(beta), c.eps}, &f,
                         &fwd.path);
  // Every backend runs every op of the family; only a CUDA build may lack its device at run
  // time. Anything else answering Unsupported is a failed check (check_run records the status).
  if (s.code() == StatusCode::kUnsupported && backend == Backend::kCuda) {
    result.unsupported = s.message();
    return result;
  }
  std::vector<double> hv = reference::load_f64(x.cview());
  Tensor h_ref;
  if (with_residual) {
    const auto rv = reference::load_f64(residual.cview());
    for (size_t i = 0; i < hv.size(); ++i) hv[i] += rv[i];
    h_ref = Tensor(shape, dtype);
    reference::store_f64(h_ref.view(), hv);
    hv = reference::load_f64(h_ref.cview());
  }
  const auto gv = reference::load_f64(gamma.cview()), dyv = reference::load_f64(dy.cview());
  const auto bv = layer ? reference::load_f64(beta.cview()) : std::vector<double>();
  std::vector<double> y(hv.size()), mean(R), rstd(R);
  reference::norm_forward_f64(norm, hv.data(), gv.data(), layer ? bv.data() : nullptr, R, C, c.eps,
                              y.data(), layer ? mean.data() : nullptr, rstd.data());
  auto& checks = result.checks;
  if (s.ok()) {
    checks.push_back(compare_output(fwd, "y", f.y.cview(), y, tol(Output::kY), true));
    if (with_residual)
      checks.push_back(compare_output(fwd, "h", f.h.cview(), hv, tol(Output::kH), true));
    if (layer)
      checks.push_back(
          compare_output(fwd, "mean", f.mean.cview(), mean, tol(Output::kStats), false));
    checks.push_back(
        compare_output(fwd, rstd_name, f.rstd.cview(), rstd, tol(Output::kStats), false));
  }
  check_run(backend, c, fwd, s, false, dtype, &checks);

  // Backward on the reference statistics as a forward saves them (and the reference's h), then
  // on the forward's own.
  const auto dhv = with_residual ? reference::load_f64(dh_in.cview()) : std::vector<double>();
  const Tensor ref_mean = layer ? stat_tensor(mean, shape.leading(), dtype) : Tensor();
  const Tensor ref_rstd = stat_tensor(rstd, shape.leading(), dtype);
  for (const bool own : {false, true}) {
    if (own && !s.ok()) break;
    const Tensor& m = own ? f.mean : ref_mean;
    const Tensor& r = own ? f.rstd : ref_rstd;
    const Tensor& xb = !with_residual ? x : own ? f.h : h_ref;
    const auto xv = reference::load_f64(xb.cview()), rv = reference::load_f64(r.cview());
    const auto mv = layer ? reference::load_f64(m.cview()) : std::vector<double>();
    std::vector<double> dx(xv.size()), dgamma(C), dbeta(C);
    reference::norm_backward_f64(norm, xv.data(), dyv.data(), gv.data(),
                                 layer ? mv.data() : nullptr, rv.data(),
                                 with_residual ? dhv.data() : nullptr, R, C, dx.data(),
                                 dgamma.data(), layer ? dbeta.data() : nullptr);
    Check bwd{own ? "backward-own" : "backward"};
    Backward b;
    const Status bs =
        run_backward(backend, c, options,
                     {norm, xb.cview(), dy.cview(), gamma.cview(), view(m), r.cview(), view(dh_in)},
                     &b, &bwd.path);
    if (bs.ok()) {
      checks.push_back(compare_output(bwd, "dx", b.dx.cview(), dx, tol(Output::kDx), true));
      checks.push_back(
          compare_output(bwd, "dgamma", b.dgamma.cview(), dgamma, tol(Output::kDParams), true));
      if (layer)
        checks.push_back(
            compare_output(bwd, "dbeta", b.dbeta.cview(), dbeta, tol(Output::kDParams), true));
    }
    check_run(backend, c, bwd, bs, true, dtype, &checks);
  }
  return result;
}

}  // namespace tilenorm::conformance
