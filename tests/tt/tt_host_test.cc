// The tt-metal style host API: work split in tt-metal's column-major core order, a program of
// dialect kernels given by path, builder errors, findings at the kernel's own file and line, and
// the oldest and newest compute dialects' forwarders on kernels of their own generation.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tilenorm/tt/host.h"

namespace tilenorm::tt {
namespace {

namespace fs = std::filesystem;

const std::string kKernels = TILENORM_TT_TEST_KERNELS;

TEST(TtHost, SplitWorkToCoresIsColumnMajorWithTheLongerGroupFirst) {
  // 100 rows on 8x8: 64 cores, the first 36 (columns 0..3, then x=4 y=0..3) take 2 rows.
  const WorkSplit s = split_work_to_cores({8, 8}, 100);
  EXPECT_EQ(s.num_cores, 64u);
  EXPECT_EQ(s.units_per_core_group_1, 2u);
  EXPECT_EQ(s.units_per_core_group_2, 1u);
  EXPECT_EQ(s.core_group_1.num_cores(), 36u);
  EXPECT_EQ(s.core_group_2.num_cores(), 28u);
  EXPECT_EQ(s.all_cores.num_cores(), 64u);
  EXPECT_TRUE(s.core_group_1.contains({3, 7}));
  EXPECT_TRUE(s.core_group_1.contains({4, 3}));
  EXPECT_FALSE(s.core_group_1.contains({4, 4}));
  EXPECT_TRUE(s.core_group_2.contains({4, 4}));
  EXPECT_TRUE(s.core_group_2.contains({7, 7}));
  EXPECT_EQ(36u * 2 + 28u * 1, 100u);
  // Fewer rows than cores: 10 cores, column 0 and (1, 0..1), one row each.
  const WorkSplit t = split_work_to_cores({8, 8}, 10);
  EXPECT_EQ(t.num_cores, 10u);
  EXPECT_EQ(t.units_per_core_group_1, 1u);
  EXPECT_TRUE(t.core_group_2.empty());
  EXPECT_TRUE(t.all_cores.contains({0, 7}));
  EXPECT_TRUE(t.all_cores.contains({1, 1}));
  EXPECT_FALSE(t.all_cores.contains({1, 2}));
  EXPECT_FALSE(t.all_cores.contains({2, 0}));
}

class TtHostRun : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "tilenorm_host_XXXXXX").string();
    ASSERT_NE(mkdtemp(t.data()), nullptr);
    dir_ = t;
    setenv("TILENORM_JIT_CACHE", (dir_ + "/cache").c_str(), 1);
    std::ofstream(dir_ + "/helper.h") << "constexpr float kScale = 3.0f;\n";
  }
  void TearDown() override {
    unsetenv("TILENORM_JIT_CACHE");
    fs::remove_all(dir_);
  }
  // in -> reader_pages -> c_0 -> compute_scale -> c_16 -> writer_pages -> out, on two cores
  // (core (1, 0) on its own buffers holding -in), built the way a tt-metal program factory
  // builds it. out holds core (0, 0)'s 4 tiles, then core (1, 0)'s.
  Status run_scale(Program& program, Device& device, RunReport* report, std::vector<float>* in,
                   std::vector<float>* out) {
    const uint32_t tiles = 4;
    in->resize(tiles * 1024);
    for (size_t i = 0; i < in->size(); ++i) (*in)[i] = float(int(i % 61) - 30) / 8.0f;
    std::vector<float> neg(in->size());
    for (size_t i = 0; i < in->size(); ++i) neg[i] = -(*in)[i];
    Buffer src[2], dst[2];
    for (int c = 0; c < 2; ++c) {
      TN_RETURN_IF_ERROR(device.CreateBuffer({tiles * 2048, 2048, DataFormat::Float16_b}, &src[c]));
      TN_RETURN_IF_ERROR(device.CreateBuffer({tiles * 4096, 4096, DataFormat::Float32}, &dst[c]));
    }
    TN_RETURN_IF_ERROR(device.WriteTiles(src[0], in->data(), 32, 32 * tiles));
    TN_RETURN_IF_ERROR(device.WriteTiles(src[1], neg.data(), 32, 32 * tiles));
    const CoreRangeSet cores(std::vector<CoreRange>{CoreRange({0, 0}), CoreRange({1, 0})});
    CreateCircularBuffer(
        program, cores,
        CircularBufferConfig(2 * 2048, {{0, DataFormat::Float16_b}}).set_page_size(0, 2048));
    CreateCircularBuffer(
        program, cores,
        CircularBufferConfig(2 * 4096, {{16, DataFormat::Float32}}).set_page_size(16, 4096));
    std::vector<uint32_t> reader_ct{tiles};
    TensorAccessorArgs(src[0]).append_to(reader_ct);
    std::vector<uint32_t> writer_ct{tiles};
    TensorAccessorArgs(&dst[0]).append_to(writer_ct);
    const KernelHandle r = CreateKernel(program, kKernels + "/reader_pages.cpp", cores,
                                        ReaderDataMovementConfig(reader_ct));
    CreateKernel(program, kKernels + "/compute_scale.cpp", cores,
                 ComputeConfig{.fp32_dest_acc_en = true, .compile_args = {tiles}});
    const KernelHandle w = CreateKernel(program, kKernels + "/writer_pages.cpp", cores,
                                        WriterDataMovementConfig(writer_ct));
    for (uint32_t c = 0; c < 2; ++c) {
      SetRuntimeArgs(program, r, {c, 0}, {src[c].address()});
      SetRuntimeArgs(program, w, {c, 0}, {dst[c].address()});
    }
    TN_RETURN_IF_ERROR(RunProgram(device, program, report));
    out->resize(2 * in->size());
    TN_RETURN_IF_ERROR(device.ReadTiles(dst[0], 32, 32 * tiles, out->data()));
    return device.ReadTiles(dst[1], 32, 32 * tiles, out->data() + in->size());
  }
  std::string dir_;
};

TEST_F(TtHostRun, RunsAProgramOfDialectKernelsByPathAndAWarmRunCompilesNothing) {
  Device device({.kernel_root = dir_});
  Program program = CreateProgram();
  RunReport report;
  std::vector<float> in, out;
  const Status st = run_scale(program, device, &report, &in, &out);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(report.kernels_compiled, 3u);
  EXPECT_TRUE(report.findings.empty());
  // 3·x on core (0, 0) and 3·(-x) on core (1, 0), exact in fp32 from bf16 inputs that are
  // multiples of 1/8.
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(out[i], 3.0f * in[i]) << i;
    ASSERT_EQ(out[in.size() + i], -3.0f * in[i]) << i;
  }
  Program again = CreateProgram();
  ASSERT_TRUE(run_scale(again, device, &report, &in, &out).ok());
  EXPECT_EQ(report.kernels_compiled, 0u);
  EXPECT_EQ(report.kernels_cached, 3u);
}

TEST_F(TtHostRun, BuilderErrorsAreReturnedByRunProgram) {
  Device device({.kernel_root = dir_});
  {
    Program p = CreateProgram();
    CreateCircularBuffer(
        p, CoreRange({0, 0}),
        CircularBufferConfig(4096, {{0, DataFormat::Float16_b}}).set_page_size(0, 1024));
    RunReport report;
    const Status st = RunProgram(device, p, &report);
    EXPECT_EQ(st.code(), StatusCode::kUnsupported);
    EXPECT_NE(st.message().find("CB 0 page size 1024"), std::string::npos) << st.message();
  }
  {
    Program p = CreateProgram();
    const KernelHandle k = CreateKernel(p, kKernels + "/reader_pages.cpp", CoreRange({0, 0}),
                                        ReaderDataMovementConfig({1}));
    SetRuntimeArgs(p, k, {3, 2}, {0});
    RunReport report;
    const Status st = RunProgram(device, p, &report);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("core (x=3, y=2) is not one of kernel"), std::string::npos)
        << st.message();
  }
  {
    Program p = CreateProgram();
    CreateKernel(p, kKernels + "/compute_scale.cpp", CoreRange({0, 0}),
                 ComputeConfig{.math_approx_mode = true});
    RunReport report;
    const Status st = RunProgram(device, p, &report);
    EXPECT_EQ(st.code(), StatusCode::kUnsupported);
    EXPECT_NE(st.message().find("math_approx_mode"), std::string::npos) << st.message();
  }
  {
    Program p = CreateProgram();
    CreateKernel(p, "kernels/not_there.cpp", CoreRange({0, 0}), ReaderDataMovementConfig());
    RunReport report;
    const Status st = RunProgram(device, p, &report);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find(dir_ + "/kernels/not_there.cpp"), std::string::npos)
        << st.message();
  }
}

TEST_F(TtHostRun, AFindingNamesTheKernelsOwnFileAndLine) {
  Device device({.kernel_root = dir_});
  Program p = CreateProgram();
  const std::string path = kKernels + "/compute_nested_acquire.cpp";
  CreateKernel(p, path, CoreRange({0, 0}), ComputeConfig{});
  RunReport report;
  ASSERT_TRUE(RunProgram(device, p, &report).ok());
  ASSERT_FALSE(report.findings.empty());
  const Finding& f = report.findings.front();
  EXPECT_EQ(f.kind, "dst-nested-acquire");
  EXPECT_EQ(f.kernel, path);
  EXPECT_EQ(fs::path(f.file).filename(), "compute_nested_acquire.cpp");
  EXPECT_EQ(f.line, 8u);
  EXPECT_EQ(f.core, (CoreCoord{0, 0}));
}

TEST_F(TtHostRun, DprintGoesToTheRunsLogWhenAskedFor) {
  for (const bool keep : {true, false}) {
    Device device({.kernel_root = dir_, .dprint = keep});
    Program p = CreateProgram();
    const CoreRangeSet cores(std::vector<CoreRange>{CoreRange({0, 0}), CoreRange({1, 0})});
    const KernelHandle k =
        CreateKernel(p, kKernels + "/dprint_values.cpp", cores, ReaderDataMovementConfig());
    SetRuntimeArgs(p, k, {0, 0}, {7});
    SetRuntimeArgs(p, k, {1, 0}, {8});
    RunReport report;
    ASSERT_TRUE(RunProgram(device, p, &report).ok());
    EXPECT_TRUE(report.findings.empty());
    const std::string expected = keep ? "core (x=0, y=0) reader: n=7 half=0.5 -3\n"
                                        "core (x=0, y=0) reader: <tile 1 of CB 0: not printed>\n"
                                        "core (x=0, y=0) reader: unended\n"
                                        "core (x=1, y=0) reader: n=8 half=0.5 -3\n"
                                        "core (x=1, y=0) reader: <tile 1 of CB 0: not printed>\n"
                                        "core (x=1, y=0) reader: unended\n"
                                      : "";
    EXPECT_EQ(report.dprint, expected);
  }
}

// The compute dialects' generations: a compute kernel between reader_two (a and b, tile i of
// each, and the scaler tile) and writer_pages with tile-named writes (4 output tiles per input
// tile), on one core.
class TtDialectRun : public TtHostRun {
 protected:
  static constexpr uint32_t kTiles = 2;
  // a and b are multiples of 1/8 in [-4, 4): every product, sum and matmul below is exact in
  // fp32, so the expectations are exact.
  void SetUp() override {
    TtHostRun::SetUp();
    a_.resize(kTiles * 1024);
    b_.resize(kTiles * 1024);
    for (size_t i = 0; i < a_.size(); ++i) {
      a_[i] = float(int(i * 7 % 61) - 30) / 8.0f;
      b_[i] = float(int(i * 13 % 59) - 29) / 8.0f;
    }
  }
  // Element (r, c) of tile t of a row-major [32, 32 * tiles] matrix.
  static float at(const std::vector<float>& m, uint32_t tiles, uint32_t t, uint32_t r, uint32_t c) {
    return m[size_t{r} * 32 * tiles + 32 * t + c];
  }
  Status run(const std::string& compute, const Defines& defines, RunReport* report) {
    Device device({.kernel_root = dir_});
    Program program = CreateProgram();
    Buffer a, b, out;
    TN_RETURN_IF_ERROR(device.CreateBuffer({kTiles * 2048, 2048, DataFormat::Float16_b}, &a));
    TN_RETURN_IF_ERROR(device.CreateBuffer({kTiles * 2048, 2048, DataFormat::Float16_b}, &b));
    TN_RETURN_IF_ERROR(device.CreateBuffer({4 * kTiles * 4096, 4096, DataFormat::Float32}, &out));
    TN_RETURN_IF_ERROR(device.WriteTiles(a, a_.data(), 32, 32 * kTiles));
    TN_RETURN_IF_ERROR(device.WriteTiles(b, b_.data(), 32, 32 * kTiles));
    const CoreRange core({0, 0});
    for (uint32_t cb : {0u, 1u}) {
      CreateCircularBuffer(
          program, core,
          CircularBufferConfig(2 * 2048, {{cb, DataFormat::Float16_b}}).set_page_size(cb, 2048));
    }
    CreateCircularBuffer(
        program, core,
        CircularBufferConfig(2048, {{2, DataFormat::Float16_b}}).set_page_size(2, 2048));
    CreateCircularBuffer(
        program, core,
        CircularBufferConfig(4 * 4096, {{16, DataFormat::Float32}}).set_page_size(16, 4096));
    std::vector<uint32_t> reader_ct{kTiles};
    TensorAccessorArgs(b).append_to(reader_ct);
    std::vector<uint32_t> writer_ct{4 * kTiles};
    TensorAccessorArgs(out).append_to(writer_ct);
    const KernelHandle r = CreateKernel(program, kKernels + "/reader_two.cpp", core,
                                        ReaderDataMovementConfig(reader_ct));
    CreateKernel(
        program, kKernels + "/" + compute, core,
        ComputeConfig{.fp32_dest_acc_en = true, .compile_args = {kTiles}, .defines = defines});
    const KernelHandle w = CreateKernel(program, kKernels + "/writer_pages.cpp", core,
                                        WriterDataMovementConfig(writer_ct, {{"TILE_NAMED", "1"}}));
    SetRuntimeArgs(program, r, {0, 0}, {a.address(), b.address()});
    SetRuntimeArgs(program, w, {0, 0}, {out.address()});
    TN_RETURN_IF_ERROR(RunProgram(device, program, report));
    out_.resize(4 * kTiles * 1024);
    return device.ReadTiles(out, 32, 32 * 4 * kTiles, out_.data());
  }
  // Output tile `k` of input tile t.
  float out(uint32_t t, uint32_t k, uint32_t r, uint32_t c) const {
    return at(out_, 4 * kTiles, 4 * t + k, r, c);
  }
  float a(uint32_t t, uint32_t r, uint32_t c) const { return at(a_, kTiles, t, r, c); }
  float b(uint32_t t, uint32_t r, uint32_t c) const { return at(b_, kTiles, t, r, c); }
  // (a_t · b_tᵀ)[r][c]
  float a_bt(uint32_t t, uint32_t r, uint32_t c) const {
    double s = 0;
    for (uint32_t k = 0; k < 32; ++k) s += double(a(t, r, k)) * b(t, c, k);
    return float(s);
  }
  std::vector<float> a_, b_, out_;
};

const Defines kReduceDefines = {{"REDUCE_OP", "PoolType::SUM"},
                                {"REDUCE_DIM", "ReduceDim::REDUCE_ROW"}};

TEST_F(TtDialectRun, OldestComputeDialectForwardsToTheMachine) {
  RunReport report;
  const Status st = run("compute_oldest.cpp", kReduceDefines, &report);
  ASSERT_TRUE(st.ok()) << st.message();
  for (const Finding& f : report.findings) ADD_FAILURE() << f.kind << " " << f.message;
  for (uint32_t t = 0; t < kTiles; ++t) {
    for (uint32_t r = 0; r < 32; ++r) {
      float row_sum = 0;
      for (uint32_t c = 0; c < 32; ++c) {
        ASSERT_EQ(out(t, 0, r, c), a(t, r, c) * b(t, r, c)) << t << " " << r << " " << c;
        ASSERT_EQ(out(t, 1, r, c), a(t, r, c) + b(t, r, c)) << t << " " << r << " " << c;
        ASSERT_EQ(out(t, 2, r, c), a_bt(t, r, c)) << t << " " << r << " " << c;
        row_sum += a(t, r, c);
      }
      ASSERT_EQ(out(t, 3, r, 0), row_sum) << t << " " << r;
    }
  }
}

TEST_F(TtDialectRun, AMathOpAfterAPackOfAnAcquireDstSectionIsReported) {
  RunReport report;
  Defines defines = kReduceDefines;
  defines["MATH_AFTER_PACK"] = "1";
  ASSERT_TRUE(run("compute_oldest.cpp", defines, &report).ok());
  uint32_t line = 0, n = 0;
  std::ifstream in(kKernels + "/compute_oldest.cpp");
  for (std::string s; std::getline(in, s);) {
    ++n;
    if (s.find("line: math-after-pack") != std::string::npos) line = n;
  }
  bool found = false;
  for (const Finding& f : report.findings) {
    if (f.kind == "dst-protocol" && f.line == line &&
        fs::path(f.file).filename() == "compute_oldest.cpp") {
      found = true;
    }
  }
  EXPECT_TRUE(found) << "no dst-protocol finding at compute_oldest.cpp:" << line;
  // The first section's pack ran before the op: a * b as without it.
  EXPECT_EQ(out(0, 0, 5, 7), a(0, 5, 7) * b(0, 5, 7));
}

TEST_F(TtDialectRun, NewestComputeDialectForwardsToTheMachine) {
  RunReport report;
  const Status st = run("compute_newest.cpp", {}, &report);
  ASSERT_TRUE(st.ok()) << st.message();
  for (const Finding& f : report.findings) ADD_FAILURE() << f.kind << " " << f.message;
  for (uint32_t t = 0; t < kTiles; ++t) {
    for (uint32_t r = 0; r < 32; ++r) {
      for (uint32_t c = 0; c < 32; ++c) {
        ASSERT_EQ(out(t, 0, r, c), a(t, r, c) * b(t, 0, c)) << t << " " << r << " " << c;
        ASSERT_EQ(out(t, 1, r, c), a(t, r, c)) << t << " " << r << " " << c;
        ASSERT_EQ(out(t, 2, r, c), a_bt(t, r, c)) << t << " " << r << " " << c;
        ASSERT_EQ(out(t, 3, r, c), a(t, r, c) - b(t, r, 0)) << t << " " << r << " " << c;
      }
    }
  }
}

}  // namespace
}  // namespace tilenorm::tt
