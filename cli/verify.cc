// `tilenorm verify`: every built backend against the float64 reference over the conformance
// registry (harness/conformance), including the bug report's constant inputs, printed as a table;
// exit 1 on any failure.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>

#include "cli_common.h"
#include "harness/conformance/conformance.h"
#include "harness/conformance/tt_kernels.h"

namespace tilenorm::cli {
namespace {

using conformance::Check;

// One line of the table: a check of one case.
struct Row {
  std::string backend, norm, shape, dtype, data;
  Check check;
  bool skipped = false;
};

}  // namespace

void add_verify_command(CLI::App& app) {
  struct Args {
    std::vector<std::string> backends;
    std::vector<std::string> dtypes{"f32", "bf16"};
    std::vector<std::string> norms;
    int threads = 0;
    uint32_t tile_l1_kib = 0;
    bool json = false;
    bool verbose = false;
    std::string tt_kernels;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "verify",
      "Run the built backends against the float64 reference over the conformance registry's cases "
      "(incl. the bug report's constant inputs); print a table; exit 1 on any failure");
  cmd->add_option("--backend", args->backends,
                  "backends to check (repeatable; default: every built backend but reference)");
  CLI::Option* dtype_opt = cmd->add_option("--dtype", args->dtypes, "dtypes to check (repeatable)")
                               ->capture_default_str();
  cmd->add_option("--norm", args->norms,
                  "layernorm | rmsnorm: the norms to check, each alone and with the residual add "
                  "(repeatable; default: both)");
  cmd->add_option("--threads", args->threads, "cpu backend threads, 0 = all");
  cmd->add_option("--tile-l1-kib", args->tile_l1_kib,
                  "run every tile case on a machine with this L1 per core (KiB); the path checks "
                  "then show where the plan's choice moves")
      ->check(CLI::Range(1u, 1u << 20));
  cmd->add_option("--tt-kernels", args->tt_kernels,
                  "run tt-train's norm kernels from the tt-metal tree DIR (layernorm_fw, "
                  "rmsnorm_fw, layernorm_bw, rmsnorm_bw through their ported program factories) "
                  "instead of the backends, against the tile backend's bands; bf16 only")
      ->type_name("DIR");
  cmd->add_flag("--json", args->json, "print the rows as JSON on stdout");
  cmd->add_flag("--verbose", args->verbose, "one line per output instead of per case");
  cmd->callback([args, dtype_opt] {
    // --tt-kernels: the tile backend's row, driven through tt-train's kernels.
    const bool tt = !args->tt_kernels.empty();
    uint32_t tt_compiled = 0, tt_cached = 0;
    conformance::ExternalOps tt_ops;
    if (tt) {
      if (!args->backends.empty())
        throw CLI::RuntimeError(
            report_error("--tt-kernels runs tt-train's kernels: it takes no --backend"));
      if (Status s = conformance::check_tt_kernels(args->tt_kernels); !s.ok())
        throw CLI::RuntimeError(report_error(fmt::format("--tt-kernels: {}", s.message())));
      if (dtype_opt->count() == 0) args->dtypes = {"bf16"};
      for (const auto& name : args->dtypes)
        if (name != "bf16")
          throw CLI::RuntimeError(report_error(fmt::format(
              "--tt-kernels: tt-train's norm kernels take bf16 only, got --dtype {}", name)));
      tt_ops = conformance::tt_kernel_ops(args->tt_kernels, &tt_compiled, &tt_cached);
      args->backends = {"tile"};
    }
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

    const conformance::RunOptions options{args->threads, args->tile_l1_kib, tt ? &tt_ops : nullptr};
    auto label = [&](Backend b) { return tt ? "tt-train" : backend_name(b); };
    std::vector<conformance::Case> cases;
    for (const conformance::Case& c : conformance::registry()) {
      bool wanted = args->norms.empty();
      for (const auto& name : args->norms) {
        const std::optional<Norm> n = parse_norm(name);
        if (!n)
          throw CLI::RuntimeError(
              report_error(fmt::format("--norm must be layernorm or rmsnorm, got '{}'", name)));
        wanted |= *n == c.op.norm;
      }
      if (wanted) cases.push_back(c);
    }
    std::vector<Row> all;
    int failures = 0, skipped = 0, checked = 0;
    // err/allowed: the worst element's |got - ref| / (atol + rtol |ref|); <= 1 passes.
    if (!args->json)
      std::printf("%-9s %-13s %-12s %-14s %-5s %-22s %-10s %-7s %10s %11s  %s\n", "backend", "norm",
                  "op", "shape", "dtype", "data", "path", "worst", "max|err|", "err/allowed",
                  "result");
    auto print = [&](const Row& r) {
      if (args->json) return;
      const Check& c = r.check;
      if (r.skipped) {
        std::printf("%-9s %-13s %-12s %-14s %-5s %-22s %-10s %-7s %10s %11s  skip: %s\n",
                    r.backend.c_str(), r.norm.c_str(), "all", "-", "-", "-", "-", "-", "-", "-",
                    c.detail.c_str());
      } else {
        std::printf("%-9s %-13s %-12s %-14s %-5s %-22s %-10s %-7s %10.3g %11.3g  %s%s%s\n",
                    r.backend.c_str(), r.norm.c_str(), c.direction.c_str(), r.shape.c_str(),
                    r.dtype.c_str(), r.data.c_str(), c.path.empty() ? "-" : c.path.c_str(),
                    c.output.c_str(), c.err, c.excess, c.pass ? "pass" : "FAIL",
                    c.detail.empty() ? "" : ": ", c.detail.c_str());
      }
      std::fflush(stdout);
    };
    // Progress goes to stderr, and only to a terminal (a log or pipe gets the table alone).
    const bool progress = isatty(STDERR_FILENO) != 0;
    for (Backend backend : backends) {
      // An op the backend cannot run here (no device, not implemented): one line, not one per
      // case.
      std::map<NormOp, bool> unavailable;
      for (DType dtype : dtypes) {
        for (size_t ci = 0; ci < cases.size(); ++ci) {
          const conformance::Case& c = cases[ci];
          if (unavailable[c.op]) {
            ++skipped;
            continue;
          }
          if (progress) {
            std::fprintf(stderr, "\r[%s %s %zu/%zu] %-40.40s", label(backend), dtype_name(dtype),
                         ci + 1, cases.size(), c.reason.c_str());
            std::fflush(stderr);
          }
          const conformance::CaseResult result = conformance::run_case(backend, dtype, c, options);
          if (progress) std::fprintf(stderr, "\r%80s\r", "");
          const Row base{label(backend), conformance::op_name(c.op), c.shape.to_string(),
                         dtype_name(dtype), conformance::input_label(c)};
          if (!result.unsupported.empty()) {
            unavailable[c.op] = true;
            ++skipped;
            Row r = base;
            r.skipped = true;
            r.check.detail = result.unsupported;
            print(r);
            all.push_back(r);
            continue;
          }
          for (const Check& k : result.checks) {
            ++checked;
            failures += !k.pass;
          }
          // Summarise per direction unless verbose: the worst check (a failing one, else the
          // largest err/allowed) stands for it, failing when any check of it failed.
          std::vector<Check> shown;
          for (const Check& k : result.checks) {
            if (args->verbose) {
              shown.push_back(k);
              continue;
            }
            auto it = std::find_if(shown.begin(), shown.end(),
                                   [&](const Check& o) { return o.direction == k.direction; });
            if (it == shown.end()) {
              shown.push_back(k);
            } else if ((!k.pass && it->pass) || (k.pass == it->pass && k.excess > it->excess)) {
              *it = k;
            }
          }
          for (const Check& k : shown) {
            Row r = base;
            r.check = k;
            print(r);
            all.push_back(r);
          }
        }
      }
    }
    if (args->json) {
      nlohmann::json j = nlohmann::json::array();
      for (const Row& r : all)
        j.push_back({{"backend", r.backend},
                     {"norm", r.norm},
                     {"op", r.skipped ? "all" : r.check.direction},
                     {"shape", r.shape},
                     {"dtype", r.dtype},
                     {"data", r.data},
                     {"path", r.check.path},
                     {"output", r.check.output},
                     {"max_abs_err", r.check.err},
                     {"atol", r.check.tol.atol},
                     {"rtol", r.check.tol.rtol},
                     {"err_over_allowed", r.check.excess},
                     {"pass", r.check.pass},
                     {"skipped", r.skipped},
                     {"detail", r.check.detail}});
      nlohmann::json out{
          {"rows", j}, {"checked", checked}, {"failures", failures}, {"skipped", skipped}};
      if (tt)
        out["tt_kernels"] = {{"root", args->tt_kernels},
                             {"kernels_compiled", tt_compiled},
                             {"kernels_cached", tt_cached}};
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      std::printf("verify: %d outputs checked, %d failed, %d cases skipped\n", checked, failures,
                  skipped);
      if (tt)
        std::printf("tt-train kernels from %s: %u compiled, %u from the JIT cache\n",
                    args->tt_kernels.c_str(), tt_compiled, tt_cached);
    }
    if (failures > 0) throw CLI::RuntimeError(kExitFailed);
  });
}

}  // namespace tilenorm::cli
