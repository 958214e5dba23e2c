// The tt-metal style host API: work split in tt-metal's column-major core order, a program of
// dialect kernels given by path, builder errors, and findings at the kernel's own file and line.

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

}  // namespace
}  // namespace tilenorm::tt
