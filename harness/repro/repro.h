// The bug report's tests run against every variant of the report's op: the kill matrix of
// `tilenorm repro`, and the expected matrix it is held to (expected_matrix.cc, derived in
// docs/layernorm.md from each defect's mechanism).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tile/machine/device.h"
#include "tile/ops/report_layernorm_backward/report_layernorm_backward.h"

namespace tilenorm::tile {

// One input set: shape and data (constant values, or uniform random x, dy in [-1, 1) and gamma
// in [0, 1) from a seed), rounded to bf16 as the report's tests upload them; eps = 1e-6.
struct ReproCase {
  const char* name;
  int64_t rows, C;
  bool constant;
  float x, dy, gamma;  // constant inputs
  uint64_t seed;       // random inputs
};

// A test of the report: a case graded on dx at a tolerance, |dx - ref| <= atol + rtol·|ref|.
struct ReproTest {
  const char* name;
  int case_index;  // into repro_cases()
  double rtol, atol;
};

const std::vector<ReproCase>& repro_cases();
const std::vector<ReproTest>& repro_tests();
const ReproTest* find_repro_test(std::string_view name);

// One sanitizer finding of a run, with how many times it was raised (kept reports).
struct ReproFinding {
  std::string kind, kernel, op, file;
  uint32_t line = 0;
  uint64_t count = 0;
};

struct ReproCell {
  std::string variant, test;
  double max_err = 0;  // max |dx - ref| (inf when a value is not finite)
  bool pass = false;
  std::string path;  // "fit" or "block"
  // Distinct (kind, kernel, op, line), in order of first report.
  std::vector<ReproFinding> findings;
  bool program_cache_hit = false;
};

// Expected outcome of a cell: 'P' passes, 'F' fails, '~' within a factor ~1.5 of the tolerance,
// where the draw decides (not checked).
char expected_outcome(std::string_view variant, std::string_view test);
// The sanitizer findings a variant's run must raise on a case: (kind, line) pairs, empty for a
// variant meant to be correct (which must raise none).
struct ExpectedFinding {
  const char* kind;
  uint32_t line;
};
std::vector<ExpectedFinding> expected_findings(const ReportVariant& v, const ReproCase& c,
                                               bool fit);
// Whether a finding that is not in expected_findings is still explained: the follow-on reports
// of Bug 2's nested acquire on the block path (the inner commit and release leave the outer
// section in a state every later dst call reports).
bool finding_follows_bug2(const ReportVariant& v, bool fit, const ReproFinding& f);

// Runs the selected variants x tests on one device (faithful numerics, sanitizer in collecting
// warn mode, 8x8 cores, 1464 KiB L1), each case once per variant; `progress` (optional) is
// called before each run. Cells come variant-major in the given orders.
// A column of kernels that are not one of the report's variants (e.g. tt-train's own sources run
// through the tt host API): its name and how it runs a case. Its findings keep the full path of
// the file that raised them.
struct ReproColumn {
  std::string name;
  std::function<Status(const ReportBackwardInputs&, ReportBackwardResult*)> run;
};

struct ReproOptions {
  std::vector<const ReportVariant*> variants;
  std::vector<ReproColumn> columns;  // after the variants
  std::vector<const ReproTest*> tests;
  std::function<void(const std::string& variant, const std::string& case_name, size_t done,
                     size_t total)>
      progress;
  int host_threads = 0;
};
struct ReproResult {
  std::vector<ReproCell> cells;
  uint64_t program_cache_hits = 0, program_cache_misses = 0;
};
Status run_repro(const ReproOptions& options, ReproResult* result);

// A cell's mismatches against the expected matrix and findings (empty when it matches).
std::vector<std::string> check_cell(const ReproCell& cell);

// The variants whose expected outcomes a column's cells (one per test) all agree with; tests
// where the variant's outcome is left to the draw ('~') are not compared.
std::vector<const ReportVariant*> variants_agreeing_with(
    const std::vector<const ReproCell*>& cells);

}  // namespace tilenorm::tile
