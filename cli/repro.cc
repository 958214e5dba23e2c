// `tilenorm repro`: the bug report's tests against every variant of the report's own op on the
// tile machine: the kill matrix (max |dx - ref|, pass/fail, path, sanitizer findings), checked
// against the expected matrix of docs/layernorm.md; exit 0 when every cell matches it.
#include "harness/repro/repro.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include "cli_common.h"

namespace tilenorm::cli {
namespace {

using tile::ReproCell;
using tile::ReproResult;

std::string cell_text(const ReproCell& c) {
  return fmt::format("{} {:.3g}", c.pass ? "pass" : "FAIL", c.max_err);
}

void print_table(const tile::ReproOptions& o, const ReproResult& r,
                 const std::vector<std::vector<std::string>>& problems) {
  const size_t nt = o.tests.size();
  size_t name_w = 4;
  for (const auto* t : o.tests) name_w = std::max(name_w, std::string(t->name).size());
  std::printf("%-*s %-6s", int(name_w), "test", "path");
  for (const auto* v : o.variants) std::printf(" %-16s", v->name);
  std::printf("\n");
  for (size_t ti = 0; ti < nt; ++ti) {
    std::printf("%-*s %-6s", int(name_w), o.tests[ti]->name, r.cells[ti].path.c_str());
    for (size_t vi = 0; vi < o.variants.size(); ++vi) {
      const size_t k = vi * nt + ti;
      const std::string text = cell_text(r.cells[k]) + (problems[k].empty() ? "" : " !");
      std::printf(" %-16s", text.c_str());
    }
    std::printf("\n");
  }
  // Findings per variant: distinct (kind, kernel, op, line) with the tests that raised them.
  std::printf("\nsanitizer findings (kind, kernel, op, source line: tests)\n");
  for (size_t vi = 0; vi < o.variants.size(); ++vi) {
    std::map<std::string, std::vector<std::string>> by_finding;
    std::vector<std::string> order;
    for (size_t ti = 0; ti < nt; ++ti) {
      for (const auto& f : r.cells[vi * nt + ti].findings) {
        const std::string key =
            fmt::format("{} in {} {} ({}:{})", f.kind, f.kernel, f.op, f.file, f.line);
        if (!by_finding.count(key)) order.push_back(key);
        by_finding[key].push_back(o.tests[ti]->name);
      }
    }
    std::printf("  %s:%s\n", o.variants[vi]->name, order.empty() ? " none" : "");
    for (const auto& key : order)
      std::printf("    %s: %zu of %zu tests\n", key.c_str(), by_finding[key].size(), nt);
  }
}

nlohmann::json to_json(const tile::ReproOptions& o, const ReproResult& r,
                       const std::vector<std::vector<std::string>>& problems, double seconds) {
  nlohmann::json cells = nlohmann::json::array();
  for (size_t k = 0; k < r.cells.size(); ++k) {
    const ReproCell& c = r.cells[k];
    nlohmann::json findings = nlohmann::json::array();
    for (const auto& f : c.findings)
      findings.push_back({{"kind", f.kind},
                          {"kernel", f.kernel},
                          {"op", f.op},
                          {"file", f.file},
                          {"line", f.line},
                          {"count", f.count}});
    cells.push_back({{"variant", c.variant},
                     {"test", c.test},
                     {"max_abs_err",
                      std::isfinite(c.max_err) ? nlohmann::json(c.max_err) : nlohmann::json("inf")},
                     {"pass", c.pass},
                     {"expected", std::string(1, tile::expected_outcome(c.variant, c.test))},
                     {"path", c.path},
                     {"findings", findings},
                     {"matches_expected", problems[k].empty()},
                     {"mismatches", problems[k]}});
  }
  nlohmann::json variants = nlohmann::json::array(), tests = nlohmann::json::array();
  for (const auto* v : o.variants) variants.push_back({{"name", v->name}, {"summary", v->summary}});
  for (const auto* t : o.tests) {
    const auto& c = tile::repro_cases()[size_t(t->case_index)];
    tests.push_back({{"name", t->name},
                     {"rows", c.rows},
                     {"C", c.C},
                     {"data", c.name},
                     {"rtol", t->rtol},
                     {"atol", t->atol}});
  }
  return {{"variants", variants},
          {"tests", tests},
          {"cells", cells},
          {"program_cache", {{"hits", r.program_cache_hits}, {"misses", r.program_cache_misses}}},
          {"seconds", seconds}};
}

}  // namespace

void add_repro_command(CLI::App& app) {
  struct Args {
    std::vector<std::string> variants, tests;
    bool json = false;
    int threads = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "repro",
      "Run the bug report's tests against every variant of the report's op on the tile machine "
      "and print the kill matrix; exit 0 when it equals the expected matrix (docs/layernorm.md)");
  std::string variant_names, test_names;
  for (const auto& v : tile::report_variants())
    variant_names += fmt::format("\n  {}: {}", v.name, v.summary);
  for (const auto& t : tile::repro_tests()) test_names += fmt::format("\n  {}", t.name);
  cmd->add_option("--variant", args->variants,
                  "variants to run (repeatable; default: all):" + variant_names);
  cmd->add_option("--test", args->tests, "tests to run (repeatable; default: all):" + test_names);
  cmd->add_option("--threads", args->threads, "host threads of the tile machine, 0 = all");
  cmd->add_flag("--json", args->json, "print the matrix as JSON on stdout");
  cmd->callback([args] {
    tile::ReproOptions o;
    for (const auto& name : args->variants) {
      const auto* v = tile::find_report_variant(name);
      if (v == nullptr)
        throw CLI::RuntimeError(report_error(
            fmt::format("--variant '{}' is not a variant (see tilenorm repro --help)", name)));
      o.variants.push_back(v);
    }
    for (const auto& name : args->tests) {
      const auto* t = tile::find_repro_test(name);
      if (t == nullptr)
        throw CLI::RuntimeError(report_error(fmt::format(
            "--test '{}' is not a test of the report (see tilenorm repro --help)", name)));
      o.tests.push_back(t);
    }
    if (args->threads < 0 || args->threads > kMaxThreads)
      throw CLI::RuntimeError(report_error(
          fmt::format("--threads must be between 0 and {}, got {}", kMaxThreads, args->threads)));
    if (o.variants.empty())
      for (const auto& v : tile::report_variants()) o.variants.push_back(&v);
    if (o.tests.empty())
      for (const auto& t : tile::repro_tests()) o.tests.push_back(&t);
    o.host_threads = args->threads;
    const bool tty = isatty(fileno(stderr)) != 0;
    if (tty) {
      o.progress = [](const std::string& variant, const std::string& c, size_t done, size_t total) {
        std::fprintf(stderr, "\r[%zu/%zu] %-16s %-44s", done + 1, total, variant.c_str(),
                     c.c_str());
        std::fflush(stderr);
      };
    }
    const auto t0 = std::chrono::steady_clock::now();
    tile::ReproResult r;
    const Status s = tile::run_repro(o, &r);
    if (tty) std::fprintf(stderr, "\r%80s\r", "");
    if (!s.ok()) throw CLI::RuntimeError(report_error(s));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<std::vector<std::string>> problems;
    size_t mismatched = 0;
    for (const auto& c : r.cells) {
      problems.push_back(tile::check_cell(c));
      if (!problems.back().empty()) ++mismatched;
    }
    if (args->json) {
      std::printf("%s\n", to_json(o, r, problems, seconds).dump(2).c_str());
    } else {
      print_table(o, r, problems);
      std::printf("\nprogram cache: %llu hits, %llu misses; %.1f s\n",
                  static_cast<unsigned long long>(r.program_cache_hits),
                  static_cast<unsigned long long>(r.program_cache_misses), seconds);
      for (size_t k = 0; k < r.cells.size(); ++k)
        for (const auto& p : problems[k])
          std::printf("mismatch: %s / %s: %s\n", r.cells[k].variant.c_str(),
                      r.cells[k].test.c_str(), p.c_str());
      if (mismatched == 0)
        std::printf("all %zu cells match the expected matrix (docs/layernorm.md)\n",
                    r.cells.size());
      else
        std::printf("%zu of %zu cells differ from the expected matrix\n", mismatched,
                    r.cells.size());
    }
    if (mismatched != 0) throw CLI::RuntimeError(kExitFailed);
  });
}

}  // namespace tilenorm::cli
