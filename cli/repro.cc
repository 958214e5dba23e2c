// `tilenorm repro`: the bug report's tests against every variant of the report's own op on the
// tile machine: the kill matrix (max |dx - ref|, pass/fail, path, sanitizer findings), checked
// against the expected matrix of docs/layernorm.md; exit 0 when every cell matches it. With
// --kernels DIR, tt-train's own layernorm_bw kernels in the tt-metal tree DIR run as one more
// column (through the ported program factory), with the variants whose expected column they
// agree with.
#include "harness/repro/repro.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "cli_common.h"
#include "tile/tt/layernorm_bw_program_factory.h"

namespace tilenorm::cli {
namespace {

using tile::ReproCell;
using tile::ReproResult;

std::string cell_text(const ReproCell& c) {
  return fmt::format("{} {:.3g}", c.pass ? "pass" : "FAIL", c.max_err);
}

// Column names: the variants, then the extra columns.
std::vector<std::string> column_names(const tile::ReproOptions& o) {
  std::vector<std::string> names;
  for (const auto* v : o.variants) names.push_back(v->name);
  for (const auto& c : o.columns) names.push_back(c.name);
  return names;
}

void print_table(const tile::ReproOptions& o, const ReproResult& r,
                 const std::vector<std::vector<std::string>>& problems) {
  const std::vector<std::string> columns = column_names(o);
  const size_t nt = o.tests.size();
  size_t name_w = 4;
  for (const auto* t : o.tests) name_w = std::max(name_w, std::string(t->name).size());
  std::printf("%-*s %-6s", int(name_w), "test", "path");
  for (const auto& name : columns) std::printf(" %-16s", name.c_str());
  std::printf("\n");
  for (size_t ti = 0; ti < nt; ++ti) {
    std::printf("%-*s %-6s", int(name_w), o.tests[ti]->name, r.cells[ti].path.c_str());
    for (size_t vi = 0; vi < columns.size(); ++vi) {
      const size_t k = vi * nt + ti;
      const std::string text = cell_text(r.cells[k]) + (problems[k].empty() ? "" : " !");
      std::printf(" %-16s", text.c_str());
    }
    std::printf("\n");
  }
  // Findings per variant: distinct (kind, kernel, op, line) with the tests that raised them.
  std::printf("\nsanitizer findings (kind, kernel, op, source line: tests)\n");
  for (size_t vi = 0; vi < columns.size(); ++vi) {
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
    std::printf("  %s:%s\n", columns[vi].c_str(), order.empty() ? " none" : "");
    for (const auto& key : order)
      std::printf("    %s: %zu of %zu tests\n", key.c_str(), by_finding[key].size(), nt);
  }
}

// For each extra column, the variants whose expected column its cells agree with.
std::vector<std::vector<std::string>> agreements(const tile::ReproOptions& o,
                                                 const ReproResult& r) {
  std::vector<std::vector<std::string>> out;
  const size_t nt = o.tests.size();
  for (size_t ci = 0; ci < o.columns.size(); ++ci) {
    std::vector<const ReproCell*> cells;
    for (size_t ti = 0; ti < nt; ++ti)
      cells.push_back(&r.cells[(o.variants.size() + ci) * nt + ti]);
    std::vector<std::string> names;
    for (const auto* v : tile::variants_agreeing_with(cells)) names.push_back(v->name);
    out.push_back(std::move(names));
  }
  return out;
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
                     {"expected", k < o.variants.size() * o.tests.size()
                                      ? nlohmann::json(std::string(
                                            1, tile::expected_outcome(c.variant, c.test)))
                                      : nlohmann::json()},
                     {"path", c.path},
                     {"findings", findings},
                     {"matches_expected", problems[k].empty()},
                     {"mismatches", problems[k]}});
  }
  nlohmann::json variants = nlohmann::json::array(), tests = nlohmann::json::array();
  for (const auto* v : o.variants) variants.push_back({{"name", v->name}, {"summary", v->summary}});
  const auto agree = agreements(o, r);
  for (size_t ci = 0; ci < o.columns.size(); ++ci)
    variants.push_back({{"name", o.columns[ci].name},
                        {"summary", "tt-train's layernorm_bw kernels of a tt-metal tree"},
                        {"agrees_with", agree[ci]}});
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
    std::string kernels;
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
  cmd->add_option("--kernels", args->kernels,
                  "a tt-metal source tree: run its tt-train layernorm_bw reader, compute kernel "
                  "and writer (JIT-compiled, through the ported program factory) as one more "
                  "column, named after the tree; without --variant, only that column");
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
    // --kernels: tt-train's kernels of the tree DIR, on a device of the repro's geometry.
    std::unique_ptr<tt::Device> tt_device;
    if (!args->kernels.empty()) {
      namespace fs = std::filesystem;
      std::error_code ec;
      const fs::path root = fs::absolute(args->kernels, ec).lexically_normal();
      const Status found = tt::check_layernorm_bw_kernels(root.string());
      if (!found.ok()) throw CLI::RuntimeError(report_error("--kernels: " + found.message()));
      tt::DeviceConfig config;
      config.kernel_root = root.string();
      tt_device = std::make_unique<tt::Device>(config);
      const fs::path name =
          root.filename().empty() ? root.parent_path().filename() : root.filename();
      tt::Device* device = tt_device.get();
      o.columns.push_back({name.string(), [device](const tile::ReportBackwardInputs& in,
                                                   tile::ReportBackwardResult* out) {
                             return tt::run_layernorm_bw(*device, in, out);
                           }});
    }
    if (o.variants.empty() && o.columns.empty())
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
    // The variants' cells are held to the expected matrix; an extra column has none of its own.
    const size_t checked = o.variants.size() * o.tests.size();
    for (size_t k = 0; k < r.cells.size(); ++k) {
      problems.push_back(k < checked ? tile::check_cell(r.cells[k]) : std::vector<std::string>{});
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
      const auto agree = agreements(o, r);
      for (size_t ci = 0; ci < o.columns.size(); ++ci) {
        std::string names;
        for (const auto& n : agree[ci]) names += (names.empty() ? "" : ", ") + n;
        std::printf("%s agrees with the expected column of: %s\n", o.columns[ci].name.c_str(),
                    names.empty() ? "no variant" : names.c_str());
      }
      if (checked == 0)
        ;  // only extra columns: no expected matrix to hold them to
      else if (mismatched == 0)
        std::printf("all %zu cells match the expected matrix (docs/layernorm.md)\n", checked);
      else
        std::printf("%zu of %zu cells differ from the expected matrix\n", mismatched, checked);
    }
    if (mismatched != 0) throw CLI::RuntimeError(kExitFailed);
  });
}

}  // namespace tilenorm::cli
