#include "harness/conformance/conformance.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "norm_args.h"
#include "reference/norm.h"
#include "tile/ops/norm_backward/norm_backward.h"
#include "tile/ops/norm_forward/norm_forward.h"

namespace tilenorm::conformance {

std::string op_name(const NormOp& op) {
  return std::string(norm_name(op.norm)) + (op.residual ? "+res" : "");
}

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
  constexpr NormOp kRmsNorm{.norm = Norm::kRmsNorm},
      kLayerNormResidual{.norm = Norm::kLayerNorm, .residual = true},
      kRmsNormResidual{.norm = Norm::kRmsNorm, .residual = true};
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
  auto with_op_paths = [](Case c, std::vector<std::pair<NormOp, TilePaths>> op_paths) {
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
          {{kRmsNorm, {"fit", "block", "block", "block"}},
           {kLayerNormResidual, {"block", "block", "block", "streamed"}}})),
      also_residual(with_op_paths(
          with_paths(
              random("360 KiB L1, 1 core: streamed block paths (bf16 forward: resident block)",
                     Shape{40, 40010}, 1e-6),
              {"block", "streamed", "streamed", "streamed"}, 360, 1),
          {{kRmsNorm, {"block", "block", "streamed", "streamed"}},
           {kRmsNormResidual, {"block", "block", "streamed", "streamed"}}})),
  };
}

// Compares one output against its reference (the compare rule of the header).
Check compare_output(Check base, const char* name, const ConstTensorView& got,
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
  Tensor y, mean, rstd, h;            // the field order of NormForwardOutputs
  std::vector<std::string> findings;  // external ops' sanitizer reports
};
struct Backward {
  Tensor dx, dgamma, dbeta;
  std::vector<std::string> findings;
};

// The tile op `run` on the case's machine; *path = the path it took.
template <typename Args, typename Outputs>
Status run_tile(Status (*run)(const Args&, const Outputs&, const tile::TileOpConfig&,
                              tile::TileOpInfo*),
                const Args& a, const Outputs& o, const Case& c, const RunOptions& options,
                std::string* path) {
  tile::TileOpInfo info;
  Status s = run(a, o, tile_config(c, options), &info);
  *path = info.path;
  return s;
}

// `run` through the public API with the run's options; *path = the path the backend reports.
template <typename Run>
Status run_api(const RunOptions& options, std::string* path, Run run) {
  RunReport report;
  Status s = run(NormOptions{options.threads, &report});
  *path = report.path;
  return s;
}

// Runs the forward; *path = the path the backend reports.
Status run_forward(Backend backend, const Case& c, const RunOptions& options,
                   const NormForwardArgs& a, Forward* f, std::string* path) {
  const bool layer = a.norm == Norm::kLayerNorm;
  if (backend == Backend::kTile || options.external != nullptr) {  // the case's machine
    const Shape& shape = a.x.shape;
    const DType sd = norm_stat_dtype(a.x.dtype);
    *f = {.y = Tensor(shape, a.x.dtype),
          .mean = layer ? Tensor(shape.leading(), sd) : Tensor(),
          .rstd = Tensor(shape.leading(), sd),
          .h = a.residual.empty() ? Tensor() : Tensor(shape, a.x.dtype)};
    const NormForwardOutputs o{
        .y = f->y.view(), .mean = f->mean.view(), .rstd = f->rstd.view(), .h = f->h.view()};
    if (options.external != nullptr) return options.external->forward(c, a, o, path, &f->findings);
    return run_tile(tile::norm_forward_tile, a, o, c, options, path);
  }
  return run_api(options, path, [&](const NormOptions& opt) {
    if (layer) {
      LayerNormForwardResult r;
      Status s = layernorm_forward(
          backend,
          {.x = a.x, .gamma = a.gamma, .beta = a.beta, .eps = a.eps, .residual = a.residual}, &r,
          opt);
      *f = {.y = std::move(r.y),
            .mean = std::move(r.mean),
            .rstd = std::move(r.rstd),
            .h = std::move(r.h)};
      return s;
    }
    RmsNormForwardResult r;
    Status s = rmsnorm_forward(
        backend, {.x = a.x, .gamma = a.gamma, .eps = a.eps, .residual = a.residual}, &r, opt);
    *f = {.y = std::move(r.y), .rstd = std::move(r.rrms), .h = std::move(r.h)};
    return s;
  });
}

Status run_backward(Backend backend, const Case& c, const RunOptions& options,
                    const NormBackwardArgs& a, Backward* b, std::string* path) {
  const bool layer = a.norm == Norm::kLayerNorm;
  if (backend == Backend::kTile || options.external != nullptr) {
    const Shape cs{a.x.shape.cols()};
    const DType sd = norm_stat_dtype(a.x.dtype);
    *b = {.dx = Tensor(a.x.shape, a.x.dtype),
          .dgamma = Tensor(cs, sd),
          .dbeta = layer ? Tensor(cs, sd) : Tensor()};
    const NormBackwardOutputs o{
        .dx = b->dx.view(), .dgamma = b->dgamma.view(), .dbeta = b->dbeta.view()};
    if (options.external != nullptr) return options.external->backward(c, a, o, path, &b->findings);
    return run_tile(tile::norm_backward_tile, a, o, c, options, path);
  }
  return run_api(options, path, [&](const NormOptions& opt) {
    if (layer) {
      LayerNormBackwardResult r;
      Status s = layernorm_backward(backend,
                                    {.x = a.x,
                                     .dy = a.dy,
                                     .gamma = a.gamma,
                                     .mean = a.mean,
                                     .rstd = a.rstd,
                                     .dh_in = a.dh_in},
                                    &r, opt);
      *b = {.dx = std::move(r.dx), .dgamma = std::move(r.dgamma), .dbeta = std::move(r.dbeta)};
      return s;
    }
    RmsNormBackwardResult r;
    Status s = rmsnorm_backward(
        backend, {.x = a.x, .dy = a.dy, .gamma = a.gamma, .rrms = a.rstd, .dh_in = a.dh_in}, &r,
        opt);
    *b = {.dx = std::move(r.dx), .dgamma = std::move(r.dgamma)};
    return s;
  });
}

// A failed run's check, and on the tile backend a failing "path" check when the path differs
// from the case's (unless every case runs on another L1, where the paths are expected to move
// and the check shows where).
void check_run(Backend backend, const Case& c, const Check& base, const Status& s, bool backward,
               DType dtype, const RunOptions& options, const std::vector<std::string>& findings,
               std::vector<Check>* checks) {
  if (!findings.empty()) {
    Check f = base;
    f.output = "sanitizer";
    f.pass = false;
    f.detail = fmt::format("{} finding{}; first: {}", findings.size(),
                           findings.size() == 1 ? "" : "s", findings.front());
    checks->push_back(f);
  }
  if (!s.ok()) {
    Check failed = base;
    failed.output = "status";
    failed.pass = false;
    failed.detail = s.to_string();
    checks->push_back(failed);
  }
  const char* want = c.paths_of(c.op).get(backward, dtype);
  if (backend == Backend::kTile && options.external == nullptr && base.path != want) {
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

const std::vector<Case>& full_registry() {
  static const std::vector<Case> cases = [] {
    std::vector<Case> all;
    for (const NormOp& op : kNormOps) {
      std::vector<Case> base = base_cases();
      for (size_t i = 0; i < base.size(); ++i) {
        if (op.residual && !base[i].residual_too) continue;
        base[i].op = op;
        base[i].seed = 1000 + i;
        all.push_back(base[i]);
      }
    }
    return all;
  }();
  return cases;
}

const std::vector<Case>& registry() {
  static const std::vector<Case> cases =
      ci_light() ? light_cases(full_registry()) : full_registry();
  return cases;
}

bool same_tile_machine(const Case& a, const Case& b) {
  const TilePaths &p = a.paths_of(a.op), &q = b.paths_of(b.op);
  const auto eq = [](const char* x, const char* y) { return std::string_view(x) == y; };
  return a.op == b.op && a.tile_l1_kib == b.tile_l1_kib && a.tile_grid == b.tile_grid &&
         eq(p.forward_bf16, q.forward_bf16) && eq(p.forward_f32, q.forward_f32) &&
         eq(p.backward_bf16, q.backward_bf16) && eq(p.backward_f32, q.backward_f32);
}

std::vector<Case> light_cases(const std::vector<Case>& cases) {
  const auto small = [](const Case& c) { return c.shape.numel() <= kLightMaxElements; };
  std::vector<Case> light;
  for (const Case& c : cases) {
    if (small(c) || std::none_of(cases.begin(), cases.end(), [&](const Case& o) {
          return small(o) && same_tile_machine(c, o);
        })) {
      light.push_back(c);
    }
  }
  return light;
}

bool ci_light() {
  const char* v = std::getenv("TILENORM_CI_LIGHT");
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
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
  const Norm norm = c.op.norm;
  const bool layer = norm == Norm::kLayerNorm, with_residual = c.op.residual;
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
                         {.norm = norm,
                          .x = x.cview(),
                          .residual = view(residual),
                          .gamma = gamma.cview(),
                          .beta = view(beta),
                          .eps = c.eps},
                         &f, &fwd.path);
  // Every backend runs every op of the family; only a CUDA build may lack its device at run
  // time, and external ops may not have the op or dtype. Anything else answering Unsupported
  // is a failed check (check_run records the status).
  if (s.code() == StatusCode::kUnsupported &&
      (backend == Backend::kCuda || options.external != nullptr)) {
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
  check_run(backend, c, fwd, s, false, dtype, options, f.findings, &checks);

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
    const Status bs = run_backward(backend, c, options,
                                   {.norm = norm,
                                    .x = xb.cview(),
                                    .dy = dy.cview(),
                                    .gamma = gamma.cview(),
                                    .mean = view(m),
                                    .rstd = r.cview(),
                                    .dh_in = view(dh_in)},
                                   &b, &bwd.path);
    if (bs.ok()) {
      checks.push_back(compare_output(bwd, "dx", b.dx.cview(), dx, tol(Output::kDx), true));
      checks.push_back(
          compare_output(bwd, "dgamma", b.dgamma.cview(), dgamma, tol(Output::kDParams), true));
      if (layer)
        checks.push_back(
            compare_output(bwd, "dbeta", b.dbeta.cview(), dbeta, tol(Output::kDParams), true));
    }
    check_run(backend, c, bwd, bs, true, dtype, options, b.findings, &checks);
  }
  return result;
}

}  // namespace tilenorm::conformance
