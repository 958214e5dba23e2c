// `tilenorm verify` end to end: the table alone on a pipe, one row per registry case and
// direction with the tile path, and a path or run failure failing the run.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness/conformance/conformance.h"

namespace tilenorm {
namespace {

namespace fs = std::filesystem;

struct VerifyRun {
  int rc = -1;
  std::string out, err;
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Runs `tilenorm verify ARGS` with stdout and stderr redirected to files in a folder of its own.
VerifyRun run_verify(const std::string& args) {
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const fs::path dir =
      fs::temp_directory_path() / ("tilenorm_verify_" + test + "_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string cmd = std::string(TILENORM_CLI) + " verify " + args + " >" +
                          (dir / "out").string() + " 2>" + (dir / "err").string();
  const int status = std::system(cmd.c_str());
  VerifyRun r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(dir / "out"),
              read_file(dir / "err")};
  fs::remove_all(dir);
  return r;
}

// The table's rows of one backend, split into words (shape "[3, 273, 8462]" spans words).
struct TableRow {
  std::string line, norm, op, shape, path, result;
};
std::vector<TableRow> rows_of(const std::string& out, const std::string& backend) {
  std::vector<TableRow> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(backend + " ", 0) != 0) continue;
    TableRow r{line};
    std::istringstream w(line);
    std::string word;
    w >> word >> r.norm >> r.op;
    if (r.op == "all") continue;  // an op the backend cannot run: one "skip" line
    for (w >> word, r.shape = word; word.back() != ']'; w >> word) r.shape += " " + word;
    w >> word >> word;  // dtype, data's first word
    while (w >> word && word != "fit" && word != "block" && word != "streamed" && word != "-") {
    }
    r.path = word;
    const size_t at = line.find("pass");
    r.result = at != std::string::npos ? line.substr(at) : line.substr(line.find("FAIL"));
    rows.push_back(r);
  }
  return rows;
}

TEST(Verify, PipedOutputIsTheTableWithThePathPerRow) {
  const VerifyRun r = run_verify("--backend tile --dtype bf16");
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  // Progress only on a terminal: nothing on stderr, no carriage returns in the table.
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
  EXPECT_NE(r.out.find(" path "), std::string::npos);
  EXPECT_NE(r.out.find(" err/allowed "), std::string::npos);
  const std::vector<TableRow> rows = rows_of(r.out, "tile");
  // One row per LayerNorm case of the registry and direction: forward, backward on the
  // reference statistics, backward on the forward's own.
  size_t layernorm_cases = 0, layernorm_rows = 0;
  for (const conformance::Case& c : conformance::registry()) layernorm_cases += c.op == NormOp{};
  for (const TableRow& row : rows) layernorm_rows += row.norm == "layernorm";
  ASSERT_EQ(layernorm_rows, 3 * layernorm_cases);
  int block = 0, streamed = 0;
  for (const TableRow& row : rows) {
    // A passing row carries no message (not the other op's, not a stale one).
    EXPECT_EQ(row.result, "pass") << row.line;
    block += row.path == "block";
    streamed += row.path == "streamed";
    if (row.shape == "[300, 4600]") {
      EXPECT_EQ(row.path, "block") << row.line;
    }
    if (row.shape == "[40, 40010]" && row.op == "backward") {
      EXPECT_EQ(row.path, "streamed") << row.line;
    }
  }
  EXPECT_GE(block, 4);
  EXPECT_GE(streamed, 1);
  EXPECT_NE(r.out.find(", 0 failed"), std::string::npos) << r.out;
}

// On a 200 KiB L1 the backward's CBs do not fit and the forward moves off the expected paths:
// both fail the run (exit 1), each row naming why; passing rows stay clean.
TEST(Verify, PathOrRunFailureFailsTheRun) {
  const VerifyRun r = run_verify("--backend tile --dtype bf16 --tile-l1-kib 200");
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  int path_failures = 0, run_failures = 0, passes = 0;
  for (const TableRow& row : rows_of(r.out, "tile")) {
    if (row.result == "pass") {
      ++passes;
      continue;
    }
    ASSERT_EQ(row.result.rfind("FAIL: ", 0), 0u) << row.line;
    path_failures += row.result.find("path, expected") != std::string::npos;
    run_failures += row.op == "backward" && row.result.find("need") != std::string::npos;
  }
  EXPECT_GT(path_failures, 0) << r.out;
  EXPECT_GT(run_failures, 0) << r.out;
  EXPECT_GT(passes, 0) << r.out;
}

// --norm picks the norms (each alone and with the residual add); a bad name is bad input.
TEST(Verify, NormSelectsTheOps) {
  const VerifyRun r = run_verify("--backend cpu --dtype f32 --norm rmsnorm");
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("layernorm"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" rmsnorm "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" rmsnorm+res "), std::string::npos) << r.out;
  const VerifyRun bad = run_verify("--norm groupnorm");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("--norm must be layernorm or rmsnorm, got 'groupnorm'"), std::string::npos)
      << bad.err;
  EXPECT_EQ(bad.out, "");
}

}  // namespace
}  // namespace tilenorm
