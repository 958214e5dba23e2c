// The kernel JIT: tt-metal dialect sources compiled to shared objects, cached on disk, run on the
// tile machine; compile errors and unmodelled API as Status.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tile/machine/api/tensor_accessor.h"
#include "tile/machine/device.h"
#include "tile/machine/machine_test_util.h"
#include "tile/tt/jit.h"

namespace tilenorm::tt {
namespace {

namespace fs = std::filesystem;
using tile::KernelKind;

const std::string kKernels = TILENORM_TT_TEST_KERNELS;

std::string make_temp_dir() {
  std::string t = (fs::temp_directory_path() / "tilenorm_jit_XXXXXX").string();
  EXPECT_NE(mkdtemp(t.data()), nullptr);
  return t;
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

// Runs reader_pages -> compute_scale -> writer_pages over 4 tiles; the output in `out`.
Status run_scale(const std::string& include_dir, std::vector<float>* out) {
  tile::Device d(tile::test_util::small_grid(1, 1));
  const std::vector<float> in = tile::test_util::random_tiles(4, -2, 2, 11);
  const tile::Buffer src = tile::test_util::make_buffer(d, in, tile::DataFormat::Float16_b);
  tile::Buffer dst;
  TN_RETURN_IF_ERROR(d.create_buffer(4, tile::DataFormat::Float32, &dst));
  const std::vector<uint32_t> ct = {4, tile::kInterleavedDramAccessorArg};
  JitKernel r, c, w;
  TN_RETURN_IF_ERROR(jit_compile({kKernels + "/reader_pages.cpp", KernelKind::kReader, ct}, &r));
  TN_RETURN_IF_ERROR(jit_compile(
      {kKernels + "/compute_scale.cpp", KernelKind::kCompute, {4}, {}, {include_dir}}, &c));
  TN_RETURN_IF_ERROR(jit_compile({kKernels + "/writer_pages.cpp", KernelKind::kWriter, ct}, &w));
  tile::Program p(d);
  TN_RETURN_IF_ERROR(p.use_host_addressable_l1());
  const tile::CoreCoord core{0, 0};
  TN_RETURN_IF_ERROR(p.create_circular_buffer(core, 0, tile::DataFormat::Float16_b, 2));
  TN_RETURN_IF_ERROR(p.create_circular_buffer(core, 16, tile::DataFormat::Float32, 2));
  const auto rk = p.create_kernel(KernelKind::kReader, core, r.entry, "reader_pages");
  p.create_kernel(KernelKind::kCompute, core, c.entry, "compute_scale",
                  tile::ComputeConfig{.fp32_dest_acc_en = true});  // x * 3 exact in fp32
  const auto wk = p.create_kernel(KernelKind::kWriter, core, w.entry, "writer_pages");
  p.set_runtime_arg_words(rk, core, {src.address});
  p.set_runtime_arg_words(wk, core, {dst.address});
  TN_RETURN_IF_ERROR(d.run(p));
  const std::vector<float> got = tile::test_util::read_all(d, dst);
  out->assign(got.begin(), got.end());
  for (size_t i = 0; i < in.size(); ++i) (*out)[i] /= in[i] == 0.0f ? 1.0f : in[i];
  return Status::ok_status();
}

class TtJit : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = make_temp_dir();
    include_ = make_temp_dir();
    setenv("TILENORM_JIT_CACHE", cache_.c_str(), 1);
  }
  void TearDown() override {
    unsetenv("TILENORM_JIT_CACHE");
    fs::remove_all(cache_);
    fs::remove_all(include_);
  }
  std::string cache_, include_;
};

// Every output element is its input times the scale the included header sets.
void expect_scaled(const std::vector<float>& ratio, float scale) {
  ASSERT_EQ(ratio.size(), 4u * tile::kTileElems);
  for (size_t i = 0; i < ratio.size(); ++i) ASSERT_FLOAT_EQ(ratio[i], scale) << i;
}

TEST_F(TtJit, RunsDialectKernelsAndRecompilesWhenAnIncludedHeaderChanges) {
  write(fs::path(include_) / "helper.h", "constexpr float kScale = 2.0f;\n");
  const JitStats before = jit_stats();
  std::vector<float> ratio;
  ASSERT_TRUE(run_scale(include_, &ratio).ok());
  expect_scaled(ratio, 2.0f);
  EXPECT_EQ(jit_stats().compiles - before.compiles, 3u);
  // Same sources: nothing compiles.
  ASSERT_TRUE(run_scale(include_, &ratio).ok());
  EXPECT_EQ(jit_stats().compiles - before.compiles, 3u);
  // The compute kernel's header changes: that kernel alone compiles again.
  write(fs::path(include_) / "helper.h", "constexpr float kScale = 3.0f;\n");
  ASSERT_TRUE(run_scale(include_, &ratio).ok());
  expect_scaled(ratio, 3.0f);
  EXPECT_EQ(jit_stats().compiles - before.compiles, 4u);
}

// Child process of the next test: compiles the three kernels and prints the JIT counters.
TEST(TtJitChild, CompileAndReport) {
  const char* inc = std::getenv("TILENORM_JIT_CHILD_INCLUDE");
  if (inc == nullptr) GTEST_SKIP() << "runs as a child of TtJit.TwoProcessesShareTheDiskCache";
  std::vector<float> ratio;
  const Status st = run_scale(inc, &ratio);
  ASSERT_TRUE(st.ok()) << st.message();
  expect_scaled(ratio, 2.0f);
  const JitStats s = jit_stats();
  std::ofstream(std::getenv("TILENORM_JIT_CHILD_OUT")) << s.compiles << " " << s.disk_hits;
}

TEST_F(TtJit, TwoProcessesShareTheDiskCacheAndAWarmRunCompilesNothing) {
  write(fs::path(include_) / "helper.h", "constexpr float kScale = 2.0f;\n");
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  auto child = [&](const std::string& out) {
    return fmt::format(
        "TILENORM_JIT_CHILD_INCLUDE={} TILENORM_JIT_CHILD_OUT={} {} "
        "--gtest_filter=TtJitChild.CompileAndReport > /dev/null 2>&1",
        include_, out, self);
  };
  const std::string a = cache_ + "/a.txt", b = cache_ + "/b.txt", c = cache_ + "/c.txt";
  // Two cold processes at once: both succeed (entries are written by rename).
  ASSERT_EQ(std::system(fmt::format("({}) & ({}); wait", child(a), child(b)).c_str()), 0);
  ASSERT_EQ(std::system(child(c).c_str()), 0);
  auto counters = [](const std::string& f) {
    std::ifstream in(f);
    std::pair<int, int> p{-1, -1};
    in >> p.first >> p.second;
    return p;
  };
  EXPECT_GE(counters(a).first + counters(a).second, 3);
  EXPECT_GE(counters(b).first + counters(b).second, 3);
  EXPECT_EQ(counters(c), (std::pair<int, int>{0, 3}));  // warm: three disk hits, no compile
}

TEST_F(TtJit, ACompileErrorNamesTheKernelAndTheCompilersLines) {
  JitKernel k;
  const Status st = jit_compile({kKernels + "/does_not_compile.cpp", KernelKind::kReader}, &k);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("does_not_compile.cpp does not compile"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("does_not_compile.cpp:5"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("not_declared_anywhere"), std::string::npos) << st.message();
}

TEST_F(TtJit, AnUnmodelledApiIsNamedNotACrash) {
  JitKernel k;
  const Status st = jit_compile({kKernels + "/unmodelled_api.cpp", KernelKind::kReader}, &k);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("calls noc_semaphore_wait(unsigned int volatile*, unsigned int), "
                              "which the tile machine does not model"),
            std::string::npos)
      << st.message();
}

TEST_F(TtJit, AMissingSourceIsNamed) {
  JitKernel k;
  const Status st = jit_compile({kKernels + "/no_such_kernel.cpp", KernelKind::kReader}, &k);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no_such_kernel.cpp not found"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace tilenorm::tt
