// `tilenorm verify`: every built backend against the float64 reference over a shape list,
// including the bug report's constant inputs, printed as a table; exit 1 on any failure.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/verify_cases.h"
#include "cli_common.h"
#include "common/compare.h"
#include "reference/layernorm.h"
#include "tile/ops/norm_backward/norm_backward.h"
#include "tile/ops/norm_forward/norm_forward.h"

namespace tilenorm::cli {
namespace {

Tensor make_input(const Shape& shape, DType dtype, const VerifyCase& c, int role, double lo,
                  double hi) {
  Tensor t(shape, dtype);
  if (c.constant) {
    t.fill(role == 0 ? c.x : role == 1 ? c.dy : c.gamma);
    return t;
  }
  // A small LCG keeps verify independent of <random>'s implementation details.
  uint64_t state = c.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(role) + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>(state >> 11) * 0x1.0p-53;
    t.set(i, lo + (hi - lo) * u);
  }
  return t;
}

struct Row {
  std::string backend, op, shape, dtype, data, output, path, detail;
  double err = 0;     // max |got - ref|
  double excess = 0;  // worst |got - ref| / (atol + rtol |ref|); <= 1 passes
  Tolerance tol;      // effective atol, rtol
  bool pass = true, skipped = false;
};

// Compares one output: |got - ref| <= atol * scale + rtol * |ref|, where scale = max(1, max|ref|)
// for outputs whose elements may be near zero next to large ones (y, dx, dgamma, dbeta) and 1 for
// the per-row statistics.
Row compare_output(Row base, const char* name, ConstTensorView got, const std::vector<double>& ref,
                   Tolerance tol, bool scale_by_max = true) {
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
tile::TileOpConfig tile_config(const VerifyCase& c, int threads) {
  tile::TileOpConfig config = tile::default_tile_op_config({threads, nullptr});
  config.device.sanitizer = tile::SanitizerMode::kError;
  if (c.tile_l1_kib != 0) config.device.l1_size = c.tile_l1_kib * 1024;
  if (c.tile_grid != 0) config.device.grid_x = config.device.grid_y = c.tile_grid;
  return config;
}

// Runs one op; *path = the path the backend reports.
Status run_forward(Backend backend, const VerifyCase& c, const LayerNormForwardArgs& args,
                   int threads, LayerNormForwardResult* f, std::string* path) {
  if (backend != Backend::kTile) {
    RunReport report;
    const Status s = layernorm_forward(backend, args, f, {threads, &report});
    *path = report.path;
    return s;
  }
  const Shape& shape = args.x.shape;
  *f = {Tensor(shape, args.x.dtype), Tensor(shape.leading(), DType::kF32),
        Tensor(shape.leading(), DType::kF32)};
  tile::TileOpInfo info;
  const Status s =
      tile::norm_forward_tile({.norm = Norm::kLayerNorm,
                               .x = args.x,
                               .gamma = args.gamma,
                               .beta = args.beta,
                               .eps = args.eps},
                              {.y = f->y.view(), .mean = f->mean.view(), .rstd = f->rstd.view()},
                              tile_config(c, threads), &info);
  *path = info.path;
  return s;
}
Status run_backward(Backend backend, const VerifyCase& c, const LayerNormBackwardArgs& args,
                    int threads, LayerNormBackwardResult* b, std::string* path) {
  if (backend != Backend::kTile) {
    RunReport report;
    const Status s = layernorm_backward(backend, args, b, {threads, &report});
    *path = report.path;
    return s;
  }
  const Shape cs{args.x.shape.cols()};
  *b = {Tensor(args.x.shape, args.x.dtype), Tensor(cs, DType::kF32), Tensor(cs, DType::kF32)};
  tile::TileOpInfo info;
  const Status s = tile::norm_backward_tile(
      {.norm = Norm::kLayerNorm,
       .x = args.x,
       .dy = args.dy,
       .gamma = args.gamma,
       .mean = args.mean,
       .rstd = args.rstd},
      {.dx = b->dx.view(), .dgamma = b->dgamma.view(), .dbeta = b->dbeta.view()},
      tile_config(c, threads), &info);
  *path = info.path;
  return s;
}

// The op's row for a run that failed, and on the tile backend a failing "path" row when the
// path differs from the case's.
void check_run(Backend backend, const VerifyCase& c, Row op, const Status& s, bool backward,
               DType dtype, std::vector<Row>* rows) {
  if (!s.ok()) {
    op.pass = false;
    op.detail = s.to_string();
    rows->push_back(op);
  }
  const char* want = c.tile_paths.get(backward, dtype);
  if (backend == Backend::kTile && op.path != want) {
    op.output = "path";
    op.pass = false;
    op.detail = fmt::format("took the {} path, expected {}", op.path, want);
    rows->push_back(op);
  }
}

std::vector<Row> run_case(Backend backend, DType dtype, const VerifyCase& c, int threads) {
  const Tolerances tols = verify_tolerances(backend, dtype);
  const Shape& shape = c.shape;
  const Shape cs{shape.cols()};
  Tensor x = make_input(shape, dtype, c, 0, c.x_offset - 1, c.x_offset + 1);
  Tensor dy = make_input(shape, dtype, c, 1, -1, 1);
  Tensor gamma = make_input(cs, dtype, c, 2, 0, 1);
  Tensor beta = make_input(cs, dtype, c, 3, 0, 1);
  if (c.constant) beta.fill(0);
  const Row base{backend_name(backend), "", shape.to_string(), dtype_name(dtype),
                 c.constant ? fmt::format("x={} dy={} gamma={}", c.x, c.dy, c.gamma)
                            : fmt::format("random eps={}", c.eps)};
  std::vector<Row> rows;

  // Forward.
  const int64_t R = shape.rows(), C = shape.cols();
  const auto xv = reference::load_f64(x.cview()), gv = reference::load_f64(gamma.cview()),
             bv = reference::load_f64(beta.cview()), dyv = reference::load_f64(dy.cview());
  std::vector<double> y(xv.size()), mean(R), rstd(R);
  reference::layernorm_forward_f64(xv.data(), gv.data(), bv.data(), R, C, c.eps, y.data(),
                                   mean.data(), rstd.data());
  Row fwd = base;
  fwd.op = "forward";
  LayerNormForwardResult f;
  Status s = run_forward(backend, c, {x.cview(), gamma.cview(), beta.cview(), c.eps}, threads, &f,
                         &fwd.path);
  if (s.code() == StatusCode::kUnsupported) {
    fwd.skipped = true;
    fwd.detail = s.message();
    return {fwd};
  }
  if (s.ok()) {
    rows.push_back(compare_output(fwd, "y", f.y.cview(), y, tols.y));
    rows.push_back(compare_output(fwd, "mean", f.mean.cview(), mean, tols.stats, false));
    rows.push_back(compare_output(fwd, "rstd", f.rstd.cview(), rstd, tols.stats, false));
  }
  check_run(backend, c, fwd, s, false, dtype, &rows);

  // Backward on the reference statistics (as f32, what a forward would save).
  Tensor mean32(shape.leading(), DType::kF32), rstd32(shape.leading(), DType::kF32);
  for (int64_t r = 0; r < R; ++r) {
    mean32.set(r, mean[r]);
    rstd32.set(r, rstd[r]);
  }
  const auto m32 = reference::load_f64(mean32.cview()), r32 = reference::load_f64(rstd32.cview());
  std::vector<double> dx(xv.size()), dgamma(C), dbeta(C);
  reference::layernorm_backward_f64(xv.data(), dyv.data(), gv.data(), m32.data(), r32.data(), R, C,
                                    dx.data(), dgamma.data(), dbeta.data());
  Row bwd = base;
  bwd.op = "backward";
  LayerNormBackwardResult b;
  s = run_backward(backend, c,
                   {x.cview(), dy.cview(), gamma.cview(), mean32.cview(), rstd32.cview()}, threads,
                   &b, &bwd.path);
  if (s.ok()) {
    rows.push_back(compare_output(bwd, "dx", b.dx.cview(), dx, tols.dx));
    rows.push_back(compare_output(bwd, "dgamma", b.dgamma.cview(), dgamma, tols.dparams));
    rows.push_back(compare_output(bwd, "dbeta", b.dbeta.cview(), dbeta, tols.dparams));
  }
  check_run(backend, c, bwd, s, true, dtype, &rows);
  return rows;
}

}  // namespace

void add_verify_command(CLI::App& app) {
  struct Args {
    std::vector<std::string> backends;
    std::vector<std::string> dtypes{"f32", "bf16"};
    int threads = 0;
    uint32_t tile_l1_kib = 0;
    bool json = false;
    bool verbose = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "verify",
      "Run the built backends against the float64 reference over the verification shapes (incl. "
      "the bug report's constant inputs); print a table; exit 1 on any failure");
  cmd->add_option("--backend", args->backends,
                  "backends to check (repeatable; default: every built backend but reference)");
  cmd->add_option("--dtype", args->dtypes, "dtypes to check (repeatable)")->capture_default_str();
  cmd->add_option("--threads", args->threads, "cpu backend threads, 0 = all");
  cmd->add_option("--tile-l1-kib", args->tile_l1_kib,
                  "run every tile case on a machine with this L1 per core (KiB); the path checks "
                  "then show where the plan's choice moves")
      ->check(CLI::Range(1u, 1u << 20));
  cmd->add_flag("--json", args->json, "print the rows as JSON on stdout");
  cmd->add_flag("--verbose", args->verbose, "one line per output instead of per case");
  cmd->callback([args] {
    std::vector<Backend> backends;
    for (const auto& name : args->backends) {
      Backend b;
      if (Status s = parse_backend_arg(name, &b); !s.ok()) throw CLI::RuntimeError(report_error(s));
      if (!backend_built(b))
        throw CLI::RuntimeError(
            report_error(fmt::format("--backend '{}' is not built into this binary", name)));
      backends.push_back(b);
    }
    if (backends.empty())
      for (Backend b : all_backends())
        if (b != Backend::kReference && backend_built(b)) backends.push_back(b);
    std::vector<DType> dtypes;
    for (const auto& name : args->dtypes) {
      DType d;
      if (Status s = parse_dtype_arg(name, &d); !s.ok()) throw CLI::RuntimeError(report_error(s));
      dtypes.push_back(d);
    }

    std::vector<Row> all;
    int failures = 0, skipped = 0, checked = 0;
    // err/allowed: the worst element's |got - ref| / (atol + rtol |ref|); <= 1 passes.
    if (!args->json)
      std::printf("%-9s %-8s %-14s %-5s %-20s %-10s %-7s %10s %11s  %s\n", "backend", "op", "shape",
                  "dtype", "data", "path", "worst", "max|err|", "err/allowed", "result");
    // Progress goes to stderr, and only to a terminal (a log or pipe gets the table alone).
    const bool progress = isatty(STDERR_FILENO) != 0;
    for (Backend backend : backends) {
      auto cases = verify_cases(backend);
      if (args->tile_l1_kib != 0)
        for (VerifyCase& c : cases) c.tile_l1_kib = args->tile_l1_kib;
      bool backend_unavailable = false;
      for (DType dtype : dtypes) {
        for (size_t ci = 0; ci < cases.size() && !backend_unavailable; ++ci) {
          if (progress) {
            std::fprintf(stderr, "\r[%s %s %zu/%zu] %-40.40s", backend_name(backend),
                         dtype_name(dtype), ci + 1, cases.size(), cases[ci].name.c_str());
            std::fflush(stderr);
          }
          auto rows = run_case(backend, dtype, cases[ci], args->threads);
          if (progress) std::fprintf(stderr, "\r%80s\r", "");
          if (rows.size() == 1 && rows[0].skipped) {
            // The backend cannot run here at all (e.g. no CUDA device): one line, not one per case.
            backend_unavailable = true;
            skipped += static_cast<int>(cases.size() * dtypes.size());
            Row r = rows[0];
            r.op = "all";
            r.shape = r.dtype = r.data = "-";
            if (!args->json)
              std::printf("%-9s %-8s %-14s %-5s %-20s %-10s %-7s %10s %11s  skip: %s\n",
                          r.backend.c_str(), "all", "-", "-", "-", "-", "-", "-", "-",
                          r.detail.c_str());
            all.push_back(r);
            break;
          }
          // Summarise per op unless verbose: the worst output (a failing one, else the largest
          // err/allowed) stands for it.
          std::vector<Row> shown;
          for (const Row& r : rows) {
            if (args->verbose || r.skipped) {
              shown.push_back(r);
              continue;
            }
            auto it = std::find_if(shown.begin(), shown.end(),
                                   [&](const Row& o) { return o.op == r.op; });
            if (it == shown.end()) {
              shown.push_back(r);
            } else if ((!r.pass && it->pass) || (r.pass == it->pass && r.excess > it->excess)) {
              *it = r;
            }
          }
          for (const Row& r : rows) {
            if (r.skipped) {
              ++skipped;
            } else {
              ++checked;
              failures += !r.pass;
            }
          }
          for (Row r : shown) {
            if (!args->verbose && !r.skipped) {
              // Per-op summary: fail if any output of that op failed.
              for (const Row& o : rows)
                if (o.op == r.op && !o.pass) r.pass = false;
            }
            if (!args->json) {
              const char* result = r.skipped ? "skip" : r.pass ? "pass" : "FAIL";
              std::printf("%-9s %-8s %-14s %-5s %-20s %-10s %-7s %10.3g %11.3g  %s%s%s\n",
                          r.backend.c_str(), r.op.c_str(), r.shape.c_str(), r.dtype.c_str(),
                          r.data.c_str(), r.path.empty() ? "-" : r.path.c_str(), r.output.c_str(),
                          r.err, r.excess, result, r.detail.empty() ? "" : ": ", r.detail.c_str());
              std::fflush(stdout);
            }
            all.push_back(r);
          }
        }
      }
    }
    if (args->json) {
      nlohmann::json j = nlohmann::json::array();
      for (const Row& r : all)
        j.push_back({{"backend", r.backend},
                     {"op", r.op},
                     {"shape", r.shape},
                     {"dtype", r.dtype},
                     {"data", r.data},
                     {"path", r.path},
                     {"output", r.output},
                     {"max_abs_err", r.err},
                     {"atol", r.tol.atol},
                     {"rtol", r.tol.rtol},
                     {"err_over_allowed", r.excess},
                     {"pass", r.pass},
                     {"skipped", r.skipped},
                     {"detail", r.detail}});
      std::printf(
          "%s\n",
          nlohmann::json{
              {"rows", j}, {"checked", checked}, {"failures", failures}, {"skipped", skipped}}
              .dump(2)
              .c_str());
    } else {
      std::printf("verify: %d outputs checked, %d failed, %d skipped\n", checked, failures,
                  skipped);
    }
    if (failures > 0) throw CLI::RuntimeError(kExitFailed);
  });
}

}  // namespace tilenorm::cli
