// The `tilenorm` binary end to end: outputs on the report's constant inputs, and one test per
// kind of bad input asserting the one-line message, exit code 2 and that no output was written.
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/npy.h"
#include "reference/norm.h"
#include "test_util.h"
#include "tilenorm/rmsnorm.h"

namespace tilenorm {
namespace {

namespace fs = std::filesystem;

using testing::CliRun;
using testing::RunHooks;
using testing::slurp;

class Cli : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const Tensor& t) {
    std::string path = (dir_ / name).string();
    EXPECT_TRUE(npy_write(path, t.cview()).ok());
    return path;
  }

  CliRun run(const std::string& args, const RunHooks& hooks = {}) {
    return testing::run_cli(TILENORM_CLI, args, dir_, hooks);
  }

  // Writes the report's constant inputs: x = 0.5, dy = 1, gamma = 1, shape [100, 2048].
  void write_report_inputs() {
    x_ = write("x.npy", testing::constant_tensor(Shape{100, 2048}, DType::kF32, 0.5));
    dy_ = write("dy.npy", testing::constant_tensor(Shape{100, 2048}, DType::kF64, 1.0));
    gamma_ = write("gamma.npy", testing::constant_tensor(Shape{2048}, DType::kF32, 1.0));
  }

  // A bad-input run: exit code 2, one stderr line containing `needle`, no output directory.
  void expect_bad_input(const std::string& args, const std::string& needle) {
    testing::expect_cli_bad_input(TILENORM_CLI, args, dir_, needle);
  }

  testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
  std::string x_, dy_, gamma_;
};

TEST_F(Cli, BackwardOnReportConstantInputsWritesExactValues) {
  write_report_inputs();
  for (const char* backend : {"reference", "cpu"}) {
    const fs::path out = dir_ / backend;
    const CliRun r = run("backward --x " + x_ + " --dy " + dy_ + " --gamma " + gamma_ +
                         " --eps 1e-6 --backend " + backend + " --out " + out.string());
    ASSERT_EQ(r.rc, 0) << r.err;
    Tensor dx, dgamma, dbeta;
    ASSERT_TRUE(npy_read((out / "dx.npy").string(), DType::kF64, &dx).ok());
    ASSERT_TRUE(npy_read((out / "dgamma.npy").string(), DType::kF64, &dgamma).ok());
    ASSERT_TRUE(npy_read((out / "dbeta.npy").string(), DType::kF64, &dbeta).ok());
    EXPECT_EQ(dx.shape(), (Shape{100, 2048}));
    EXPECT_EQ(dgamma.shape(), (Shape{2048}));
    for (int64_t i = 0; i < dx.numel(); ++i)
      ASSERT_EQ(dx.get(i), 0.0) << backend << " dx[" << i << "]";
    for (int64_t i = 0; i < 2048; ++i) {
      ASSERT_EQ(dgamma.get(i), 0.0) << backend;
      ASSERT_EQ(dbeta.get(i), 100.0) << backend;
    }
    EXPECT_NE(r.out.find("dx.npy  [100, 2048] f32 min 0 max 0 mean 0"), std::string::npos) << r.out;
  }
}

TEST_F(Cli, ForwardWritesStatisticsOfLeadingShape) {
  x_ = write("x.npy", testing::constant_tensor(Shape{2, 3, 64}, DType::kF32, 0.5));
  gamma_ = write("gamma.npy", testing::constant_tensor(Shape{64}, DType::kF32, 1.0));
  const fs::path out = dir_ / "fwd";
  const CliRun r =
      run("forward --x " + x_ + " --gamma " + gamma_ + " --eps 1e-6 --json --out " + out.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  Tensor mean, rstd, y;
  ASSERT_TRUE(npy_read((out / "mean.npy").string(), DType::kF64, &mean).ok());
  ASSERT_TRUE(npy_read((out / "rstd.npy").string(), DType::kF64, &rstd).ok());
  ASSERT_TRUE(npy_read((out / "y.npy").string(), DType::kF64, &y).ok());
  EXPECT_EQ(mean.shape(), (Shape{2, 3}));
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(mean.get(i), 0.5);
    EXPECT_NEAR(rstd.get(i), 1000.0, 1e-3);
  }
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_EQ(y.get(i), 0.0);
  EXPECT_NE(r.out.find("\"command\": \"forward\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"backend\": \"cpu\""), std::string::npos) << r.out;
}

TEST_F(Cli, BadInputsNameTheArgumentAndWriteNothing) {
  write_report_inputs();
  const std::string common = " --x " + x_ + " --gamma " + gamma_ + " --backend reference";
  const std::string g7 = write("g7.npy", testing::constant_tensor(Shape{7}, DType::kF32, 1));
  const std::string dy_bad =
      write("dyb.npy", testing::constant_tensor(Shape{100, 2047}, DType::kF32, 1));
  const std::string m99 = write("m99.npy", testing::constant_tensor(Shape{99}, DType::kF32, 0));
  const std::string m100 = write("m100.npy", testing::constant_tensor(Shape{100}, DType::kF32, 0));
  const std::string empty = write("empty.npy", Tensor(Shape{0, 2048}, DType::kF32));
  const std::string c0 = write("c0.npy", Tensor(Shape{100, 0}, DType::kF32));
  const std::string broken = (dir_ / "broken.npy").string();
  std::ofstream(broken) << "\x93NUMPY garbage";

  expect_bad_input(
      "backward --backend reference --x " + x_ + " --dy " + dy_bad + " --gamma " + gamma_,
      "dy has shape [100, 2047], expected [100, 2048]");
  expect_bad_input("forward --x " + x_ + " --gamma " + g7, "gamma has shape [7], expected [2048]");
  expect_bad_input("backward" + common + " --dy " + dy_ + " --mean " + m99 + " --rstd " + m100,
                   "mean has shape [99], expected [100]");
  expect_bad_input("backward" + common + " --dy " + dy_ + " --mean " + m100,
                   "--mean and --rstd go together");
  expect_bad_input("forward --x " + empty + " --gamma " + gamma_, "x is empty (shape [0, 2048])");
  expect_bad_input("forward --x " + c0 + " --gamma " + gamma_, "x has C = 0");
  for (const char* eps : {"nan", "inf", "0", "-1e-5"})
    expect_bad_input("forward" + common + " --eps " + eps,
                     "--eps must be finite and > 0, got " + std::string(eps));
  expect_bad_input("forward" + common + " --eps abc", "--eps 'abc' is not a number");
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --backend gpu",
                   "--backend 'gpu' is unknown");
  expect_bad_input("forward" + common + " --dtype f16", "--dtype 'f16' is unknown");
  expect_bad_input("forward --x " + (dir_ / "missing.npy").string() + " --gamma " + gamma_,
                   "--x " + (dir_ / "missing.npy").string() + ": cannot open");
  expect_bad_input("forward --x " + broken + " --gamma " + gamma_, "broken.npy: ");
  expect_bad_input("forward --gamma " + gamma_, "--x is required");
}

TEST_F(Cli, ThreadCountAboveTheMaximumIsBadInput) {
  write_report_inputs();
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --threads 100000",
                   "--threads must be between 0 and 1024, got 100000");
}

// Threads that cannot start (1024 stacks do not fit a 2 GiB address space) are a run-time
// failure: one line and exit 1, never an abort.
TEST_F(Cli, ExceptionIsOneLineAndExitOne) {
  write_report_inputs();
  const fs::path out = dir_ / "out";
  const CliRun r =
      run("forward --x " + x_ + " --gamma " + gamma_ + " --threads 1024 --out " + out.string(),
          {.shell_prefix = "ulimit -v 2097152; "});
  EXPECT_EQ(r.rc, 1) << "signal " << r.sig << "\nstderr: " << r.err;
  EXPECT_EQ(r.err.rfind("tilenorm: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  EXPECT_FALSE(fs::exists(out / "y.npy"));
}

// Names in a folder, sorted.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

class CliOutputs : public Cli {
 protected:
  // A first forward run fills out_; returns its y and mean bytes.
  void first_run() {
    write_report_inputs();
    ASSERT_EQ(run(forward_args()).rc, 0);
    old_y_ = slurp(out_ / "y.npy");
    old_mean_ = slurp(out_ / "mean.npy");
    x_ = write("x2.npy", testing::random_tensor(Shape{100, 2048}, DType::kF32, 7));
  }
  std::string forward_args() const {
    return "forward --x " + x_ + " --gamma " + gamma_ + " --threads 1 --out " + out_.string();
  }
  // A failed second run left y and mean as the first run wrote them, and nothing else.
  void expect_first_outputs_kept(const std::vector<std::string>& names) {
    EXPECT_EQ(slurp(out_ / "y.npy"), old_y_) << "y.npy replaced by a failed run";
    EXPECT_EQ(slurp(out_ / "mean.npy"), old_mean_) << "mean.npy replaced by a failed run";
    EXPECT_EQ(listing(out_), names) << "temporary or backup files left behind";
  }
  const fs::path out_ = dir_ / "out";
  std::string old_y_, old_mean_;
};

TEST_F(CliOutputs, DirectoryAtTheLastOutputReplacesNone) {
  first_run();
  fs::remove(out_ / "rstd.npy");
  fs::create_directory(out_ / "rstd.npy");
  const CliRun r = run(forward_args());
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("rstd.npy: cannot replace a directory"), std::string::npos) << r.err;
  expect_first_outputs_kept({"mean.npy", "rstd.npy", "y.npy"});
}

// A file size limit (ulimit -f) fails the write of y: an error, not a crash, and no output changed.
TEST_F(CliOutputs, WriteFailureReplacesNone) {
  first_run();
  const CliRun r = run(forward_args(), {.shell_prefix = "ulimit -f 256; "});
  EXPECT_EQ(r.rc, 2) << "signal " << r.sig << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find("y.npy: write failed"), std::string::npos) << r.err;
  expect_first_outputs_kept({"mean.npy", "rstd.npy", "y.npy"});
}

// Symlinks planted at every name a pid-based temporary scheme would use do not get written.
TEST_F(CliOutputs, PlantedSymlinksAtTemporaryNamesAreNotFollowed) {
  write_report_inputs();
  const fs::path victim = dir_ / "victim.txt";
  std::ofstream(victim) << "precious";
  fs::create_directory(out_);
  const CliRun r = run(forward_args(), {.before_exec = [&](pid_t pid) {
                         for (const char* name : {"y", "mean", "rstd"})
                           fs::create_symlink(victim, out_ / (std::string(name) + ".npy.tmp." +
                                                              std::to_string(pid)));
                       }});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(slurp(victim), "precious");
  EXPECT_FALSE(fs::is_symlink(out_ / "y.npy"));
  Tensor y;
  ASSERT_TRUE(npy_read((out_ / "y.npy").string(), DType::kF32, &y).ok());
  EXPECT_EQ(y.shape(), (Shape{100, 2048}));
}

// SIGTERM as soon as the first temporary appears (inotify): the run ends by the signal and
// leaves no temporary; the outputs are all there or none is.
TEST_F(CliOutputs, SigtermWhileWritingLeavesNoTemporary) {
  x_ = write("x.npy", testing::constant_tensor(Shape{512, 16384}, DType::kF32, 0.5));
  gamma_ = write("gamma.npy", testing::constant_tensor(Shape{16384}, DType::kF32, 1.0));
  fs::create_directory(out_);
  const int ino = inotify_init1(IN_CLOEXEC);
  ASSERT_GE(ino, 0);
  ASSERT_GE(inotify_add_watch(ino, out_.c_str(), IN_CREATE), 0);
  bool created = false;
  const CliRun r = run(forward_args(), {.while_running = [&](pid_t pid) {
                         pollfd p{ino, POLLIN, 0};
                         created = ::poll(&p, 1, 30000) == 1;
                         ::kill(pid, SIGTERM);
                       }});
  ::close(ino);
  ASSERT_TRUE(created) << "no temporary appeared; rc " << r.rc << " " << r.err;
  EXPECT_EQ(r.sig, SIGTERM) << "rc " << r.rc << " " << r.err;
  const std::vector<std::string> names = listing(out_);
  if (!names.empty()) {
    EXPECT_EQ(names, (std::vector<std::string>{"mean.npy", "rstd.npy", "y.npy"}));
  }
}

// An input too large for memory (a 2 GiB payload under a 1 GiB address-space limit) is reported
// as such, after the file size was checked against the header.
TEST_F(Cli, InputLargerThanMemoryIsReportedAsSuch) {
  write_report_inputs();
  const fs::path big = dir_ / "big.npy";
  {
    Tensor one(Shape{1}, DType::kF32);
    std::string bytes = npy_encode(one.cview());
    const std::string from = "(1,)", to = "(268435456, 2)";
    bytes.replace(bytes.find(from), from.size(), to);
    bytes.erase(bytes.size() - 5 - (to.size() - from.size()), to.size() - from.size());
    std::ofstream(big, std::ios::binary) << bytes.substr(0, bytes.size() - 4);
    fs::resize_file(big, bytes.size() - 4 + (uint64_t{268435456} * 2 * 4));  // sparse
  }
  const fs::path out = dir_ / "out";
  const CliRun r =
      run("forward --x " + big.string() + " --gamma " + gamma_ + " --out " + out.string(),
          {.shell_prefix = "ulimit -v 1048576; "});
  EXPECT_EQ(r.rc, 2) << "signal " << r.sig << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find("out of memory allocating 2147483648 bytes for shape [268435456, 2]"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// Peak memory of a forward run on a 256 MiB f32 input with f32 compute (no conversion): the
// inputs and outputs themselves, +5 %, + 24 MiB for the binary, its libraries and the runtime
// (a run on a tiny input peaks near 10 MiB). Inputs are read straight into their tensors and
// outputs written straight from them; a conversion (an <f2/<f8 file, --dtype bf16) costs only a
// 1 MiB buffer more.
TEST_F(Cli, ForwardPeakMemoryIsInputsPlusOutputs) {
  const Shape shape{4096, 16384};
  x_ = write("x.npy", testing::constant_tensor(shape, DType::kF32, 0.5));
  gamma_ = write("gamma.npy", testing::constant_tensor(Shape{16384}, DType::kF32, 1.0));
  const CliRun small = run("forward --x " + write("xs.npy", Tensor(Shape{4, 16384}, DType::kF32)) +
                           " --gamma " + gamma_ + " --threads 1 --out " + (dir_ / "o1").string());
  ASSERT_EQ(small.rc, 0) << small.err;
  const CliRun r = run("forward --x " + x_ + " --gamma " + gamma_ + " --threads 1 --out " +
                       (dir_ / "o").string());
  ASSERT_EQ(r.rc, 0) << r.err;
  const double x_bytes = 4.0 * shape.numel(), stats_bytes = 2 * 4.0 * shape[0];
  const double data_kib = (2 * x_bytes + 4.0 * 16384 + stats_bytes) / 1024;  // x, gamma; y, stats
  const double budget_kib = data_kib * 1.05 + 24 * 1024;
  EXPECT_LE(r.maxrss_kib, budget_kib)
      << "inputs + outputs " << data_kib << " KiB; a tiny run " << small.maxrss_kib << " KiB";
  std::printf("forward peak RSS %ld KiB for %.0f KiB of inputs + outputs (tiny run %ld KiB)\n",
              r.maxrss_kib, data_kib, small.maxrss_kib);
}

// --dtype f64 on the reference backend: f64 in, f64 computed, '<f8' out (statistics too),
// bitwise the float64 reference on the unrounded data (x = 1e4 + noise is not f32-exact).
TEST_F(Cli, DtypeF64RunsTheReferenceInF64EndToEnd) {
  const int64_t rows = 4, C = 16;
  Tensor x = testing::random_tensor(Shape{rows, C}, DType::kF64, 1);
  for (int64_t i = 0; i < x.numel(); ++i) x.set(i, 1e4 + x.get(i));
  const Tensor dy = testing::random_tensor(Shape{rows, C}, DType::kF64, 2);
  const Tensor gamma = testing::random_tensor(Shape{C}, DType::kF64, 3, 0.5, 1.5);
  x_ = write("x.npy", x);
  dy_ = write("dy.npy", dy);
  gamma_ = write("gamma.npy", gamma);
  std::vector<double> y(rows * C), mean(rows), rstd(rows), dx(rows * C), dg(C), db(C);
  reference::layernorm_forward_f64(x.data<double>(), gamma.data<double>(), nullptr, rows, C, 1e-300,
                                   y.data(), mean.data(), rstd.data());
  reference::layernorm_backward_f64(x.data<double>(), dy.data<double>(), gamma.data<double>(),
                                    mean.data(), rstd.data(), rows, C, dx.data(), dg.data(),
                                    db.data());
  const auto expect_file = [&](const fs::path& path, const std::vector<double>& want) {
    EXPECT_NE(slurp(path).find("'descr': '<f8'"), std::string::npos) << path;
    Tensor t;
    ASSERT_TRUE(npy_read(path.string(), DType::kF64, &t).ok()) << path;
    ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << path;
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.get(i), want[i]) << path << " " << i;
  };
  // eps 1e-300 is a normal f64 (and far below any f32).
  const std::string common = " --x " + x_ + " --gamma " + gamma_ + " --eps 1e-300 --dtype f64";
  const fs::path fwd = dir_ / "fwd";
  CliRun r = run("forward" + common + " --backend reference --out " + fwd.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  expect_file(fwd / "y.npy", y);
  expect_file(fwd / "mean.npy", mean);
  expect_file(fwd / "rstd.npy", rstd);
  std::string given_stats = " --mean ";
  given_stats.append((fwd / "mean.npy").string()).append(" --rstd ");
  given_stats.append((fwd / "rstd.npy").string());
  for (const std::string& stats : {std::string(), given_stats}) {
    const fs::path bwd = dir_ / (stats.empty() ? "bwd" : "bwd_stats");
    std::string args = "backward" + common;
    args.append(" --dy ").append(dy_).append(stats).append(" --backend reference --out ");
    r = run(args.append(bwd.string()));
    ASSERT_EQ(r.rc, 0) << r.err;
    expect_file(bwd / "dx.npy", dx);
    expect_file(bwd / "dgamma.npy", dg);
    expect_file(bwd / "dbeta.npy", db);
  }
  expect_bad_input("forward" + common + " --backend tile",
                   "--dtype f64 runs on the reference and cpu backends only (got --backend tile)");
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --eps 1e-300 --backend reference",
                   "eps 1e-300 is below 1.1754943508222875e-38, the smallest normal f32 number");
}

TEST_F(Cli, UnbuiltBackendIsBadInput) {
  if (backend_built(Backend::kCuda)) GTEST_SKIP() << "the CUDA backend is built into this binary";
  write_report_inputs();
  expect_bad_input("forward --x " + x_ + " --gamma " + gamma_ + " --backend cuda",
                   "backend 'cuda' is not built");
}

// repro: bad arguments name the argument (exit 2); a selected cell prints its row and exits 0
// when it matches the expected matrix.
TEST_F(Cli, ReproBadArgumentsNameTheArgument) {
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {"repro --variant nope", "--variant 'nope' is not a variant"},
           {"repro --test nope", "--test 'nope' is not a test of the report"},
           {"repro --threads -1", "--threads must be between 0 and 1024, got -1"},
           {"repro --kernels /nonexistent/tt",
            "--kernels: /nonexistent/tt does not hold tt-train's layernorm_bw kernels "
            "(/nonexistent/tt/tt-train/sources/ttml/metal/ops/layernorm_bw/device/kernels/"
            "dataflow/reader_layernorm_bw_interleaved_start_id.cpp not found)"}}) {
    const CliRun r = run(args);
    EXPECT_EQ(r.rc, 2) << args << "\nstderr: " << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\nstderr: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST_F(Cli, ReproSelectedCellsPrintTheirValuesAndMatch) {
  const CliRun r = run(
      "repro --variant as-reported --variant full-fix --test BugRepro_Deterministic_2048Features");
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("FAIL 1e+03"), std::string::npos) << r.out;  // dx = -1000 vs 0
  EXPECT_NE(r.out.find("pass 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("implicit-accumulation in report_backward_compute mul_tiles"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("all 2 cells match the expected matrix"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << "progress goes to stderr only on a terminal: " << r.err;
  const CliRun j = run("repro --variant full-fix --test MetalLayerNormBw_OneTile --json");
  ASSERT_EQ(j.rc, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.out);
  ASSERT_EQ(doc["cells"].size(), 1u);
  EXPECT_EQ(doc["cells"][0]["path"], "fit");
  EXPECT_EQ(doc["cells"][0]["expected"], "P");
  EXPECT_TRUE(doc["cells"][0]["pass"].get<bool>());
  EXPECT_LT(doc["cells"][0]["max_abs_err"].get<double>(), 0.014);
}

// With TILENORM_TT_KERNELS naming a tt-metal tree: its kernels as a column named after the tree,
// with findings at the real compute kernel's file and line.
TEST_F(Cli, ReproKernelsColumnOfATtMetalTree) {
  const char* tree = std::getenv("TILENORM_TT_KERNELS");
  if (tree == nullptr)
    GTEST_SKIP() << "set TILENORM_TT_KERNELS to a tt-metal source tree to run its kernels";
  const std::filesystem::path root = std::filesystem::path(tree).lexically_normal();
  const std::string name = (root.filename().empty() ? root.parent_path() : root).filename();
  const CliRun j = run(std::string("repro --kernels ") + tree +
                       " --test BugRepro_Deterministic_2048Features --json");
  ASSERT_EQ(j.rc, 0) << j.err;
  const auto doc = nlohmann::json::parse(j.out);
  ASSERT_EQ(doc["cells"].size(), 1u);
  const auto& cell = doc["cells"][0];
  EXPECT_EQ(cell["variant"], name);
  EXPECT_FALSE(cell["pass"].get<bool>());
  EXPECT_NEAR(cell["max_abs_err"].get<double>(), 1000.0, 1.0);
  bool bug1 = false;
  for (const auto& f : cell["findings"])
    bug1 = bug1 || (f["kind"] == "implicit-accumulation" && f["line"] == 437 &&
                    f["file"].get<std::string>().find("/compute/layernorm_bw_kernel.cpp") !=
                        std::string::npos);
  EXPECT_TRUE(bug1) << cell["findings"].dump();
  EXPECT_EQ(doc["variants"][0]["name"], name);
}

}  // namespace
}  // namespace tilenorm

// `tilenorm forward` / `backward` across the norm family: --norm rmsnorm, --residual and
// --dresidual write the files named in README.md with the public API's values bit for bit, and
// their bad inputs are one-line errors with exit code 2 and no output.
namespace tilenorm {
namespace {

using testing::bitwise_equal;
using testing::random_tensor;

constexpr int kRows = 6, kC = 96;

class CliNorm : public ::testing::Test {
 protected:
  void SetUp() override {
    x_ = random_tensor(Shape{kRows, kC}, DType::kF32, 1);
    dy_ = random_tensor(Shape{kRows, kC}, DType::kF32, 2);
    gamma_ = random_tensor(Shape{kC}, DType::kF32, 3, 0.5, 1.5);
    beta_ = random_tensor(Shape{kC}, DType::kF32, 4);
    residual_ = random_tensor(Shape{kRows, kC}, DType::kF32, 5);
    dh_in_ = random_tensor(Shape{kRows, kC}, DType::kF32, 6);
    for (auto [name, t] : {std::pair{"x", &x_},
                           {"dy", &dy_},
                           {"gamma", &gamma_},
                           {"beta", &beta_},
                           {"residual", &residual_},
                           {"dh_in", &dh_in_}})
      EXPECT_TRUE(npy_write(file(name), t->cview()).ok());
  }

  std::string file(const std::string& name) const { return (dir_ / (name + ".npy")).string(); }

  CliRun run(const std::string& args) { return testing::run_cli(TILENORM_CLI, args, dir_); }

  // Runs `args --out DIR/<out>`, expects success and exactly the files `names` there.
  fs::path run_ok(const std::string& args, const std::string& out,
                  const std::vector<std::string>& names) {
    fs::path d = dir_ / out;
    const CliRun r = run(args + " --threads 2 --out " + d.string());
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    std::vector<std::string> got;
    if (fs::is_directory(d))
      for (const auto& e : fs::directory_iterator(d)) got.push_back(e.path().stem().string());
    std::sort(got.begin(), got.end());
    std::vector<std::string> want = names;
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << args;
    return d;
  }

  static Tensor read(const fs::path& d, const std::string& name, DType dtype = DType::kF32) {
    Tensor t;
    EXPECT_TRUE(npy_read((d / (name + ".npy")).string(), dtype, &t).ok()) << name;
    return t;
  }

  void expect_bad_input(const std::string& args, const std::string& needle) {
    testing::expect_cli_bad_input(TILENORM_CLI, args, dir_, needle);
  }

  testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
  Tensor x_, dy_, gamma_, beta_, residual_, dh_in_;
  const NormOptions opt_{2, nullptr};
};

const char* const kBackends[] = {"reference", "cpu"};

TEST_F(CliNorm, RmsNormForwardAndBackwardEqualTheApi) {
  for (const char* name : kBackends) {
    SCOPED_TRACE(name);
    const Backend backend = *parse_backend(name);
    const std::string common = " --norm rmsnorm --backend " + std::string(name);
    RmsNormForwardResult f;
    ASSERT_TRUE(rmsnorm_forward(backend, {x_.cview(), gamma_.cview()}, &f, opt_).ok());
    const fs::path fwd = run_ok("forward --x " + file("x") + " --gamma " + file("gamma") + common,
                                std::string("fwd_") + name, {"y", "rrms"});
    EXPECT_TRUE(bitwise_equal(read(fwd, "y"), f.y));
    EXPECT_TRUE(bitwise_equal(read(fwd, "rrms"), f.rrms));

    RmsNormBackwardResult b;
    ASSERT_TRUE(rmsnorm_backward(backend, {x_.cview(), dy_.cview(), gamma_.cview(), f.rrms.cview()},
                                 &b, opt_)
                    .ok());
    const std::string bwd_args =
        "backward --x " + file("x") + " --dy " + file("dy") + " --gamma " + file("gamma") + common;
    // Without --rrms the same backend's forward computes it; with it, the saved one is used.
    for (const std::string& stats : {std::string(), " --rrms " + (fwd / "rrms.npy").string()}) {
      const fs::path bwd =
          run_ok(bwd_args + stats, std::string("bwd_") + name + (stats.empty() ? "" : "_rrms"),
                 {"dx", "dgamma"});
      EXPECT_TRUE(bitwise_equal(read(bwd, "dx"), b.dx)) << stats;
      EXPECT_TRUE(bitwise_equal(read(bwd, "dgamma"), b.dgamma)) << stats;
    }
  }
}

TEST_F(CliNorm, ResidualForwardWritesHAndYOfTheApi) {
  for (const char* name : kBackends) {
    const Backend backend = *parse_backend(name);
    for (const char* norm : {"layernorm", "rmsnorm"}) {
      SCOPED_TRACE(std::string(name) + " " + norm);
      const bool rms = std::string(norm) == "rmsnorm";
      Tensor y, h;
      std::vector<std::string> files = {"y", "h", "mean", "rstd"};
      if (rms) {
        RmsNormForwardResult f;
        ASSERT_TRUE(rmsnorm_forward(backend,
                                    {x_.cview(), gamma_.cview(), kDefaultEps, residual_.cview()},
                                    &f, opt_)
                        .ok());
        y = std::move(f.y);
        h = std::move(f.h);
        files = {"y", "h", "rrms"};
      } else {
        LayerNormForwardResult f;
        ASSERT_TRUE(layernorm_forward(
                        backend,
                        {x_.cview(), gamma_.cview(), beta_.cview(), kDefaultEps, residual_.cview()},
                        &f, opt_)
                        .ok());
        y = std::move(f.y);
        h = std::move(f.h);
      }
      const fs::path out = run_ok("forward --x " + file("x") + " --gamma " + file("gamma") +
                                      (rms ? "" : " --beta " + file("beta")) + " --residual " +
                                      file("residual") + " --norm " + norm + " --backend " + name,
                                  std::string(name) + "_" + norm, files);
      const Tensor got_h = read(out, "h");
      ASSERT_EQ(got_h.shape(), x_.shape());
      for (int64_t i = 0; i < x_.numel(); ++i)
        ASSERT_EQ(got_h.get(i), static_cast<double>(static_cast<float>(x_.get(i)) +
                                                    static_cast<float>(residual_.get(i))))
            << "h[" << i << "]";
      EXPECT_TRUE(bitwise_equal(got_h, h));
      EXPECT_TRUE(bitwise_equal(read(out, "y"), y));
    }
  }
}

TEST_F(CliNorm, BackwardWithDresidualEqualsTheApiWithDhIn) {
  for (const char* name : kBackends) {
    const Backend backend = *parse_backend(name);
    for (const char* norm : {"layernorm", "rmsnorm"}) {
      SCOPED_TRACE(std::string(name) + " " + norm);
      const bool rms = std::string(norm) == "rmsnorm";
      // x plays h here: the backward of a residual forward takes h as its x.
      Tensor dx, dgamma, dbeta;
      if (rms) {
        RmsNormForwardResult f;
        ASSERT_TRUE(rmsnorm_forward(backend, {x_.cview(), gamma_.cview()}, &f, opt_).ok());
        RmsNormBackwardResult b;
        ASSERT_TRUE(rmsnorm_backward(
                        backend,
                        {x_.cview(), dy_.cview(), gamma_.cview(), f.rrms.cview(), dh_in_.cview()},
                        &b, opt_)
                        .ok());
        dx = std::move(b.dx);
        dgamma = std::move(b.dgamma);
      } else {
        LayerNormForwardResult f;
        ASSERT_TRUE(layernorm_forward(backend, {x_.cview(), gamma_.cview()}, &f, opt_).ok());
        LayerNormBackwardResult b;
        ASSERT_TRUE(layernorm_backward(backend,
                                       {x_.cview(), dy_.cview(), gamma_.cview(), f.mean.cview(),
                                        f.rstd.cview(), dh_in_.cview()},
                                       &b, opt_)
                        .ok());
        dx = std::move(b.dx);
        dgamma = std::move(b.dgamma);
        dbeta = std::move(b.dbeta);
      }
      const fs::path out =
          run_ok("backward --x " + file("x") + " --dy " + file("dy") + " --gamma " + file("gamma") +
                     " --dresidual " + file("dh_in") + " --norm " + norm + " --backend " + name,
                 std::string(name) + "_" + norm,
                 rms ? std::vector<std::string>{"dx", "dgamma"}
                     : std::vector<std::string>{"dx", "dgamma", "dbeta"});
      EXPECT_TRUE(bitwise_equal(read(out, "dx"), dx));
      EXPECT_TRUE(bitwise_equal(read(out, "dgamma"), dgamma));
      if (!rms) {
        EXPECT_TRUE(bitwise_equal(read(out, "dbeta"), dbeta));
      }
    }
  }
}

TEST_F(CliNorm, JsonSummaryNamesTheNorm) {
  const CliRun r = run("forward --norm rmsnorm --json --x " + file("x") + " --gamma " +
                       file("gamma") + " --out " + (dir_ / "out").string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"norm\": \"rmsnorm\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"rrms\""), std::string::npos) << r.out;
}

TEST_F(CliNorm, BadInputsNameTheArgumentAndWriteNothing) {
  const Tensor narrow = random_tensor(Shape{kRows, kC - 1}, DType::kF32, 7);
  ASSERT_TRUE(npy_write(file("narrow"), narrow.cview()).ok());
  const std::string fwd =
      "forward --backend reference --x " + file("x") + " --gamma " + file("gamma");
  const std::string bwd = "backward --backend reference --x " + file("x") + " --dy " + file("dy") +
                          " --gamma " + file("gamma");
  expect_bad_input(fwd + " --norm rmsnorm --beta " + file("beta"),
                   "--beta '" + file("beta") + "' is not taken by --norm rmsnorm");
  expect_bad_input(bwd + " --rrms " + file("gamma"),
                   "--rrms '" + file("gamma") + "' is not taken by --norm layernorm");
  expect_bad_input(bwd + " --norm rmsnorm --mean " + file("gamma"),
                   "--mean/--rstd are not taken by --norm rmsnorm");
  expect_bad_input(fwd + " --norm groupnorm", "--norm 'groupnorm' is unknown");
  for (const char* norm : {"layernorm", "rmsnorm"}) {
    expect_bad_input(fwd + " --norm " + norm + " --residual " + file("narrow"),
                     "residual has shape [6, 95], expected [6, 96]");
    expect_bad_input(bwd + " --norm " + norm + " --dresidual " + file("narrow"),
                     "--dresidual: dh_in has shape [6, 95], expected [6, 96]");
  }
  expect_bad_input(fwd + " --residual " + (dir_ / "missing.npy").string(),
                   "--residual " + (dir_ / "missing.npy").string() + ": cannot open");
}

// The table's measurement takes seconds (the copy ceiling), so only the argument check runs here.
TEST_F(CliNorm, BenchUnknownNormIsBadInput) {
  const CliRun r = run("bench --impls tilenorm --shapes 4x64 --norm layernorm,groupnorm");
  if (r.err.find("TILENORM_BUILD_BENCHMARKS=OFF") != std::string::npos)
    GTEST_SKIP() << "built without bench/";
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_EQ(r.err,
            "tilenorm: error: --norm 'groupnorm' is unknown (choose layernorm or rmsnorm)\n");
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace tilenorm
