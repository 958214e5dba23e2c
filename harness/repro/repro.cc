#include "harness/repro/repro.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "reference/norm.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile {

const std::vector<ReproCase>& repro_cases() {
  // Shapes (B·S·H rows x C) and data of the report's test file.
  static const std::vector<ReproCase> cases = {
      {"constant 100x8192", 100, 8192, true, 0.5f, 1.0f, 1.0f, 0},
      {"constant 100x4096", 100, 4096, true, 0.5f, 1.0f, 1.0f, 0},
      {"constant 100x8192 (dy 0.5, gamma 2, x 1)", 100, 8192, true, 1.0f, 0.5f, 2.0f, 0},
      {"constant 819x8462", 819, 8462, true, 0.5f, 1.0f, 1.0f, 0},
      {"constant 100x2048", 100, 2048, true, 0.5f, 1.0f, 1.0f, 0},
      {"random 819x8462", 819, 8462, false, 0, 0, 0, 101},
      {"random 100x8192", 100, 8192, false, 0, 0, 0, 102},
      {"random 819x8462 (nightly)", 819, 8462, false, 0, 0, 0, 103},
      {"random 13x20", 13, 20, false, 0, 0, 0, 104},
      {"random 32x33", 32, 33, false, 0, 0, 0, 105},
      {"random 300x8191", 300, 8191, false, 0, 0, 0, 106},
      {"random 19x213", 19, 213, false, 0, 0, 0, 107},
  };
  return cases;
}

const std::vector<ReproTest>& repro_tests() {
  constexpr double kBugRtol = 1e-2, kBugAtol = 1e-2;   // the BugRepro tests
  constexpr double kMainRtol = 1e-3, kMainAtol = 0.5;  // the original tests
  constexpr double kPostFixAtol = 2e-2;                // upstream's dx atol after its fix
  static const std::vector<ReproTest> tests = {
      {"BugRepro_Deterministic_256Tiles", 0, kBugRtol, kBugAtol},
      {"BugRepro_Deterministic_128Tiles", 1, kBugRtol, kBugAtol},
      {"BugRepro_Deterministic_DifferentValues", 2, kBugRtol, kBugAtol},
      {"BugRepro_Deterministic_8462Features", 3, kBugRtol, kBugAtol},
      {"BugRepro_Deterministic_2048Features", 4, kBugRtol, kBugAtol},
      {"BugRepro_TightTolerance_8462Features", 5, kBugRtol, kBugAtol},
      {"BugRepro_TightTolerance_8192Features", 6, kBugRtol, kBugAtol},
      {"NIGHTLY_MetalLayerNormBw_LargeFeatures_NoL1Fit", 7, kMainRtol, kMainAtol},
      {"NIGHTLY_MetalLayerNormBw_LargeFeatures_NoL1Fit@2e-2", 7, kMainRtol, kPostFixAtol},
      {"MetalLayerNormBw_OneTile", 8, kMainRtol, kMainAtol},
      {"MetalLayerNormBw_OneTile@2e-2", 8, kMainRtol, kPostFixAtol},
      {"MetalLayerNormBw_TwoIncompleteTiles", 9, kMainRtol, kMainAtol},
      {"MetalLayerNormBw_TwoIncompleteTiles@2e-2", 9, kMainRtol, kPostFixAtol},
      {"MetalLayerNormBw_DoesNotFitInL1_WtNotDivisibleBy4", 10, kMainRtol, kMainAtol},
      {"MetalLayerNormBw_DoesNotFitInL1_WtNotDivisibleBy4@2e-2", 10, kMainRtol, kPostFixAtol},
      {"MetalLayerNormBw_OneTilePerRow", 11, kMainRtol, kMainAtol},
      {"MetalLayerNormBw_OneTilePerRow@2e-2", 11, kMainRtol, kPostFixAtol},
  };
  return tests;
}

const ReproTest* find_repro_test(std::string_view name) {
  for (const ReproTest& t : repro_tests())
    if (name == t.name) return &t;
  return nullptr;
}

namespace {

// Inputs of a case (bf16-rounded floats), the statistics the op receives and the float64
// reference dx.
struct CaseData {
  std::vector<float> x, dy, gamma, mean, rstd;
  std::vector<double> ref_dx;
};

CaseData make_case(const ReproCase& c) {
  const size_t n = size_t(c.rows * c.C);
  CaseData d;
  d.x.resize(n);
  d.dy.resize(n);
  d.gamma.resize(size_t(c.C));
  std::mt19937_64 rng(c.seed);
  // Uniform [lo, hi) from the top 53 bits (std::uniform_real_distribution differs by library).
  auto uniform = [&](double lo, double hi) {
    return float(lo + (hi - lo) * double(rng() >> 11) * 0x1.0p-53);
  };
  for (size_t i = 0; i < n; ++i) d.x[i] = round_to_bf16(c.constant ? c.x : uniform(-1, 1));
  for (size_t i = 0; i < n; ++i) d.dy[i] = round_to_bf16(c.constant ? c.dy : uniform(-1, 1));
  for (auto& g : d.gamma) g = round_to_bf16(c.constant ? c.gamma : uniform(0, 1));
  const std::vector<double> x(d.x.begin(), d.x.end()), dy(d.dy.begin(), d.dy.end()),
      gamma(d.gamma.begin(), d.gamma.end());
  std::vector<double> mean(size_t(c.rows)), rstd(size_t(c.rows));
  reference::layernorm_forward_f64(x.data(), gamma.data(), nullptr, c.rows, c.C, 1e-6, nullptr,
                                   mean.data(), rstd.data());
  d.mean.assign(mean.begin(), mean.end());
  d.rstd.assign(rstd.begin(), rstd.end());
  d.ref_dx.resize(n);
  std::vector<double> dgamma(size_t(c.C)), dbeta(size_t(c.C));
  reference::layernorm_backward_f64(x.data(), dy.data(), gamma.data(), mean.data(), rstd.data(),
                                    c.rows, c.C, d.ref_dx.data(), dgamma.data(), dbeta.data());
  return d;
}

std::vector<ReproFinding> distinct_findings(const RunResult& run, bool full_path) {
  std::vector<ReproFinding> out;
  for (const SanitizerReport& r : run.reports) {
    const std::string kind = report_kind_name(r.kind);
    auto it = std::find_if(out.begin(), out.end(), [&](const ReproFinding& f) {
      return f.kind == kind && f.kernel == r.kernel_name && f.op == r.op && f.line == r.line;
    });
    if (it == out.end()) {
      const char* slash = std::strrchr(r.file, '/');
      out.push_back(
          {kind, r.kernel_name, r.op, slash && !full_path ? slash + 1 : r.file, r.line, 0});
      it = out.end() - 1;
    }
    ++it->count;
  }
  return out;
}

}  // namespace

bool finding_follows_bug2(const ReportVariant& v, bool fit, const ReproFinding& f) {
  if (!v.bug2 || fit || f.kernel != "report_backward_compute") return false;
  for (const char* kind : {"dst-op-outside-acquire", "dst-protocol", "dead-store",
                           "poison-dst-read", "dst-pack-before-commit"})
    if (f.kind == kind) return true;
  return false;
}

Status run_repro(const ReproOptions& options, ReproResult* result) {
  DeviceConfig config;  // 8x8 cores, 1464 KiB L1 (Wormhole n150), faithful numerics
  config.sanitizer = SanitizerMode::kWarn;
  config.print_warnings = false;
  config.repeat_reports = false;
  config.host_threads = options.host_threads;
  Device device(config);
  // The cases the selected tests need, each generated once.
  std::vector<int> case_ids;
  for (const ReproTest* t : options.tests)
    if (std::find(case_ids.begin(), case_ids.end(), t->case_index) == case_ids.end())
      case_ids.push_back(t->case_index);
  std::vector<CaseData> data(repro_cases().size());
  // Every column: the selected variants of the report's op, then the extra columns.
  struct Column {
    std::string name;
    std::function<Status(const ReportBackwardInputs&, ReportBackwardResult*)> run;
    bool full_path;
  };
  std::vector<Column> columns;
  for (const ReportVariant* v : options.variants)
    columns.push_back({v->name,
                       [&device, v](const ReportBackwardInputs& in, ReportBackwardResult* out) {
                         return report_layernorm_backward(device, in, *v, out);
                       },
                       false});
  for (const ReproColumn& c : options.columns) columns.push_back({c.name, c.run, true});
  const size_t total = columns.size() * case_ids.size();
  size_t done = 0;
  result->cells.clear();
  for (const Column& col : columns) {
    std::vector<ReportBackwardResult> runs(repro_cases().size());
    for (int id : case_ids) {
      const ReproCase& c = repro_cases()[size_t(id)];
      if (options.progress) options.progress(col.name, c.name, done, total);
      CaseData& d = data[size_t(id)];
      if (d.x.empty()) d = make_case(c);
      const ReportBackwardInputs in{c.rows,         c.C,           d.x.data(),   d.dy.data(),
                                    d.gamma.data(), d.mean.data(), d.rstd.data()};
      TN_RETURN_IF_ERROR(col.run(in, &runs[size_t(id)]));
      ++done;
    }
    for (const ReproTest* t : options.tests) {
      const ReportBackwardResult& run = runs[size_t(t->case_index)];
      const CaseData& d = data[size_t(t->case_index)];
      ReproCell cell;
      cell.variant = col.name;
      cell.test = t->name;
      cell.path = run.fit ? "fit" : "block";
      cell.program_cache_hit = run.program_cache_hit;
      cell.pass = true;
      for (size_t i = 0; i < d.ref_dx.size(); ++i) {
        const double err = std::fabs(double(run.dx[i]) - d.ref_dx[i]);
        if (!std::isfinite(err)) {
          cell.max_err = std::numeric_limits<double>::infinity();
          cell.pass = false;
          continue;
        }
        cell.max_err = std::max(cell.max_err, err);
        if (err > t->atol + t->rtol * std::fabs(d.ref_dx[i])) cell.pass = false;
      }
      cell.findings = distinct_findings(run.run, col.full_path);
      result->cells.push_back(std::move(cell));
    }
  }
  result->program_cache_hits = device.program_cache().hits();
  result->program_cache_misses = device.program_cache().misses();
  return {};
}

std::vector<std::string> check_cell(const ReproCell& cell) {
  std::vector<std::string> out;
  const ReportVariant* v = find_report_variant(cell.variant);
  const ReproTest* t = find_repro_test(cell.test);
  if (v == nullptr || t == nullptr) return {"unknown variant or test"};
  const char want = expected_outcome(cell.variant, cell.test);
  if (want == 'P' && !cell.pass)
    out.push_back(fmt::format("expected pass, failed ({:.4g})", cell.max_err));
  if (want == 'F' && cell.pass)
    out.push_back(fmt::format("expected fail, passed ({:.4g})", cell.max_err));
  const bool fit = cell.path == "fit";
  const auto expected = expected_findings(*v, repro_cases()[size_t(t->case_index)], fit);
  for (const ExpectedFinding& e : expected) {
    const bool found = std::any_of(cell.findings.begin(), cell.findings.end(), [&](const auto& f) {
      return f.kind == e.kind && f.line == e.line && f.kernel == "report_backward_compute";
    });
    if (!found)
      out.push_back(fmt::format("missing sanitizer finding {} at line {}", e.kind, e.line));
  }
  for (const ReproFinding& f : cell.findings) {
    const bool listed = std::any_of(expected.begin(), expected.end(), [&](const auto& e) {
      return f.kind == e.kind && f.line == e.line && f.kernel == "report_backward_compute";
    });
    if (!listed && !finding_follows_bug2(*v, fit, f))
      out.push_back(fmt::format("unexpected sanitizer finding {} in {} {} ({}:{})", f.kind,
                                f.kernel, f.op, f.file, f.line));
  }
  return out;
}

std::vector<const ReportVariant*> variants_agreeing_with(
    const std::vector<const ReproCell*>& cells) {
  std::vector<const ReportVariant*> out;
  for (const ReportVariant& v : report_variants()) {
    const bool agrees = std::all_of(cells.begin(), cells.end(), [&](const ReproCell* c) {
      const char want = expected_outcome(v.name, c->test);
      return want == '~' || (want == 'P') == c->pass;
    });
    if (agrees) out.push_back(&v);
  }
  return out;
}

}  // namespace tilenorm::tile
