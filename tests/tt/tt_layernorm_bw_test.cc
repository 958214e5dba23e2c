// tt-train's layernorm_bw program factory on the tt host API: what it sets up (CBs, fit rule,
// defines, compile-time and runtime args, core groups), and, with TILENORM_TT_KERNELS naming a
// tt-metal tree, the real kernels run against the in-tree transcription of the same op.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "harness/repro/repro.h"
#include "tile/machine/api/tensor_accessor.h"
#include "tile/tt/host_internal.h"
#include "tile/tt/layernorm_bw_program_factory.h"

namespace tilenorm::tt {
namespace {

struct Fixture {
  explicit Fixture(DeviceConfig config = {}) : device(std::move(config)) {
    for (Buffer* b : {&x, &gamma, &mean, &rstd, &dy, &dx, &dg, &db})
      EXPECT_TRUE(device.CreateBuffer({2048, 2048, DataFormat::Float16_b}, b).ok());
  }
  Status create(LayerNormBwShape shape) {
    return create_layernorm_bw_program(device, shape,
                                       {&x, &gamma, &mean, &rstd, &dy, &dx, &dg, &db}, &p);
  }
  const Program::Impl::Kernel& kernel(size_t i) const { return p.program.impl().kernels.at(i); }
  // Pages of CB `index` (each CB is created on its own config).
  uint32_t pages(uint8_t index) const {
    for (const auto& cb : p.program.impl().cbs)
      if (cb.config.formats().count(index))
        return cb.config.total_size() / cb.config.page_sizes().at(index);
    return 0;
  }
  DataFormat format(uint8_t index) const {
    for (const auto& cb : p.program.impl().cbs)
      if (cb.config.formats().count(index)) return cb.config.formats().at(index);
    return DataFormat::Float16_b;
  }
  Device device;
  Buffer x, gamma, mean, rstd, dy, dx, dg, db;
  LayerNormBwProgram p;
};

constexpr uint32_t kAcc = tile::kInterleavedDramAccessorArg;

TEST(TtLayerNormBwFactory, FitPathCbsArgsAndTheTwoCoreGroups) {
  Fixture f;
  // 100 tile rows of C = 1000 (Wt = 32, 8 valid columns in the last tile).
  ASSERT_TRUE(f.create({1, 1, 3200, 1000}).ok());
  EXPECT_TRUE(f.p.everything_fits_in_l1);
  EXPECT_EQ(f.p.Wt, 32u);
  EXPECT_EQ(f.p.mask_w, 8u);
  // 1/1000 = 0x3A83126F as float: its upper half twice (truncated, not rounded to 0x3A83).
  EXPECT_EQ(f.p.packed_scaler, 0x3A833A83u);
  EXPECT_EQ(f.p.program.impl().cbs.size(), 15u);
  for (uint8_t cb : {0, 1, 4, 7, 8, 12, 13, 14}) EXPECT_EQ(f.pages(cb), 1u) << int(cb);
  for (uint8_t cb : {2, 5, 6}) EXPECT_EQ(f.pages(cb), 32u) << int(cb);
  EXPECT_EQ(f.pages(3), 33u);  // x̂: Wt rounded up to whole blocks of 3
  for (uint8_t cb : {9, 10, 11}) EXPECT_EQ(f.pages(cb), 6u) << int(cb);
  for (uint8_t cb = 0; cb < 15; ++cb)
    EXPECT_EQ(f.format(cb), cb >= 13 ? DataFormat::Float32 : DataFormat::Float16_b) << int(cb);

  ASSERT_EQ(f.p.program.impl().kernels.size(), 4u);  // reader, writer, two compute groups
  const Defines both{{"DO_MASK_W", "1"}, {"EVERYTHING_FITS_IN_L1", "1"}};
  const auto& reader = f.kernel(0);
  EXPECT_EQ(reader.kind, tile::KernelKind::kReader);
  EXPECT_EQ(reader.path, kLayerNormBwReaderPath);
  EXPECT_EQ(reader.compile_args,
            (std::vector<uint32_t>{0x3A833A83u, 3, 8, 32, kAcc, kAcc, kAcc, kAcc, kAcc}));
  EXPECT_EQ(reader.defines, both);
  EXPECT_EQ(f.kernel(1).kind, tile::KernelKind::kWriter);
  EXPECT_EQ(f.kernel(1).compile_args, (std::vector<uint32_t>{3, 32, kAcc, kAcc, kAcc}));
  // 100 rows on 64 cores: 36 cores (column-major) take 2 rows, 28 take 1.
  EXPECT_EQ(f.kernel(2).compile_args, (std::vector<uint32_t>{2, 3, 8, 32}));
  EXPECT_EQ(f.kernel(2).cores.num_cores(), 36u);
  EXPECT_EQ(f.kernel(3).compile_args, (std::vector<uint32_t>{1, 3, 8, 32}));
  EXPECT_EQ(f.kernel(3).cores.num_cores(), 28u);
  for (size_t k : {2, 3}) {
    EXPECT_TRUE(f.kernel(k).compute.fp32_dest_acc_en);
    EXPECT_EQ(f.kernel(k).compute.math_fidelity, tile::MathFidelity::HiFi4);
    EXPECT_EQ(f.kernel(k).defines, both);
  }
  // Runtime args: {γ, x, mean, rstd, dy, start row, rows}; core 35 = (4, 3), core 36 = (4, 4).
  auto reader_args = [&](uint32_t x, uint32_t y) { return reader.args.at({x, y}); };
  const std::vector<uint32_t> addrs{f.gamma.address(), f.x.address(), f.mean.address(),
                                    f.rstd.address(), f.dy.address()};
  auto with = [&](std::vector<uint32_t> a, uint32_t start, uint32_t n) {
    a.push_back(start);
    a.push_back(n);
    return a;
  };
  EXPECT_EQ(reader_args(0, 0), with(addrs, 0, 2));
  EXPECT_EQ(reader_args(0, 1), with(addrs, 2, 2));
  EXPECT_EQ(reader_args(4, 3), with(addrs, 70, 2));
  EXPECT_EQ(reader_args(4, 4), with(addrs, 72, 1));
  EXPECT_EQ(reader_args(7, 7), with(addrs, 99, 1));
  EXPECT_EQ(f.kernel(1).args.at({4, 4}),
            (std::vector<uint32_t>{f.dx.address(), f.dg.address(), f.db.address(), 72, 1}));
}

TEST(TtLayerNormBwFactory, BlockPathAndTheFitRuleAgainstL1AboveTheAllocatorBase) {
  Fixture f;
  // C = 8462: Wt = 265 needs 2048·(3·265 + 267 + 24) + 8192 bytes > 1464 KiB.
  ASSERT_TRUE(f.create({1, 1, 64, 8462}).ok());
  EXPECT_FALSE(f.p.everything_fits_in_l1);
  EXPECT_EQ(f.p.mask_w, 14u);
  for (uint8_t cb : {2, 3, 5, 6}) EXPECT_EQ(f.pages(cb), 6u) << int(cb);
  EXPECT_EQ(f.kernel(0).defines, (Defines{{"DO_MASK_W", "1"}}));
  EXPECT_EQ(f.p.program.impl().kernels.size(), 3u);  // 2 rows on 2 cores: one compute group
  // C = 4800 (150 tiles) needs 1,286,144 bytes: it fits, unless the allocator base takes 300 KiB.
  Fixture fits;
  ASSERT_TRUE(fits.create({1, 1, 32, 4800}).ok());
  EXPECT_TRUE(fits.p.everything_fits_in_l1);
  EXPECT_EQ(fits.kernel(0).defines, (Defines{{"EVERYTHING_FITS_IN_L1", "1"}}));
  DeviceConfig based;
  based.l1_allocator_base = 300 * 1024;
  Fixture above(based);
  ASSERT_TRUE(above.create({1, 1, 32, 4800}).ok());
  EXPECT_FALSE(above.p.everything_fits_in_l1);
}

TEST(TtLayerNormBwFactory, BadArguments) {
  Fixture f;
  const Status st = f.create({1, 1, 0, 64});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("empty shape [1, 1, 0, 64]"), std::string::npos) << st.message();
  const std::string missing =
      (std::filesystem::temp_directory_path() / "tilenorm_no_tt_tree").string();
  const Status k = check_layernorm_bw_kernels(missing);
  EXPECT_EQ(k.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(k.message().find(missing + "/" + kLayerNormBwReaderPath + " not found"),
            std::string::npos)
      << k.message();
}

// The tt-metal tree named by TILENORM_TT_KERNELS, or empty (the tests below then skip).
std::string tt_tree() {
  const char* dir = std::getenv("TILENORM_TT_KERNELS");
  return dir == nullptr ? std::string() : std::string(dir);
}

#define SKIP_WITHOUT_TT_TREE()                                                         \
  if (tt_tree().empty())                                                               \
  GTEST_SKIP() << "set TILENORM_TT_KERNELS to a tt-metal source tree (its root holds " \
                  "tt-train/sources/ttml/metal/...) to run tt-train's layernorm_bw kernels"

// The real kernels and the in-tree transcription of the reported op compute the same dx bit for
// bit (same ops in the same order on the same machine), on both paths, with and without a mask.
TEST(TtLayerNormBwRealKernels, MatchTheTranscriptionBitForBit) {
  SKIP_WITHOUT_TT_TREE();
  ASSERT_TRUE(check_layernorm_bw_kernels(tt_tree()).ok());
  DeviceConfig config;
  config.kernel_root = tt_tree();
  Device device(config);
  tile::DeviceConfig tc;
  tc.sanitizer = tile::SanitizerMode::kWarn;
  tc.print_warnings = false;
  tc.repeat_reports = false;
  tile::Device transcription(tc);
  const tile::ReportVariant* as_reported = tile::find_report_variant("as-reported");
  ASSERT_NE(as_reported, nullptr);
  for (auto [rows, C] : {std::pair<int64_t, int64_t>{64, 128}, {40, 100}, {32, 8462}}) {
    std::vector<float> x(size_t(rows * C)), dy(x.size());
    std::vector<float> gamma(static_cast<size_t>(C)), mean(static_cast<size_t>(rows));
    std::vector<float> rstd(static_cast<size_t>(rows));
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = float(int(i * 7 % 23) - 11) / 8.0f;
      dy[i] = float(int(i * 5 % 19) - 9) / 16.0f;
    }
    for (size_t c = 0; c < gamma.size(); ++c) gamma[c] = float(c % 13) / 16.0f;
    for (size_t r = 0; r < mean.size(); ++r) {
      mean[r] = float(r % 5) / 32.0f;
      rstd[r] = 1.0f + float(r % 3) / 4.0f;
    }
    const tile::ReportBackwardInputs in{rows,         C,           x.data(),   dy.data(),
                                        gamma.data(), mean.data(), rstd.data()};
    tile::ReportBackwardResult real, ours;
    const Status st = run_layernorm_bw(device, in, &real);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_TRUE(tile::report_layernorm_backward(transcription, in, *as_reported, &ours).ok());
    EXPECT_EQ(real.fit, ours.fit) << C;
    ASSERT_EQ(real.dx.size(), ours.dx.size());
    EXPECT_TRUE(std::any_of(real.dx.begin(), real.dx.end(), [](float v) { return v != 0.0f; }));
    for (size_t i = 0; i < real.dx.size(); ++i) ASSERT_EQ(real.dx[i], ours.dx[i]) << C << " " << i;
    for (size_t c = 0; c < size_t(C); ++c) {
      ASSERT_EQ(real.dgamma[c], ours.dgamma[c]) << C << " " << c;
      ASSERT_EQ(real.dbeta[c], ours.dbeta[c]) << C << " " << c;
    }
  }
}

// The report's tests on tt-train's own kernels give the as-reported column: dx off by rstd·s1 =
// 1000 on the deterministic tests (992 at C = 8462, where 1/C is truncated), the NIGHTLY within
// atol 0.5 but not 2e-2, and the sanitizer naming Bug 1 and Bug 2 at the compute kernel's lines.
TEST(TtLayerNormBwRealKernels, ReproduceTheReportedColumn) {
  SKIP_WITHOUT_TT_TREE();
  DeviceConfig config;
  config.kernel_root = tt_tree();
  Device device(config);
  tile::ReproOptions o;
  for (const auto& t : tile::repro_tests()) o.tests.push_back(&t);
  o.columns.push_back(
      {"tt", [&](const tile::ReportBackwardInputs& in, tile::ReportBackwardResult* out) {
         return run_layernorm_bw(device, in, out);
       }});
  tile::ReproResult r;
  const Status st = tile::run_repro(o, &r);
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(r.cells.size(), o.tests.size());
  auto cell = [&](const std::string& test) -> const tile::ReproCell& {
    for (const auto& c : r.cells)
      if (c.test == test) return c;
    ADD_FAILURE() << test;
    return r.cells.front();
  };
  for (const char* t :
       {"BugRepro_Deterministic_256Tiles", "BugRepro_Deterministic_128Tiles",
        "BugRepro_Deterministic_DifferentValues", "BugRepro_Deterministic_2048Features"}) {
    EXPECT_FALSE(cell(t).pass) << t;
    EXPECT_NEAR(cell(t).max_err, 1000.0, 1.0) << t;
  }
  EXPECT_FALSE(cell("BugRepro_Deterministic_8462Features").pass);
  EXPECT_NEAR(cell("BugRepro_Deterministic_8462Features").max_err, 992.0, 1.0);
  EXPECT_TRUE(cell("NIGHTLY_MetalLayerNormBw_LargeFeatures_NoL1Fit").pass);
  EXPECT_FALSE(cell("NIGHTLY_MetalLayerNormBw_LargeFeatures_NoL1Fit@2e-2").pass);
  const std::string kernel = "layernorm_bw_kernel.cpp";
  auto has = [&](const tile::ReproCell& c, const std::string& kind, uint32_t line) {
    return std::any_of(c.findings.begin(), c.findings.end(), [&](const tile::ReproFinding& f) {
      return f.kind == kind && f.line == line &&
             std::filesystem::path(f.file).filename() == kernel &&
             f.file.rfind(tt_tree(), 0) == 0;  // the real file, under the tree
    });
  };
  for (const auto& c : r.cells) {
    // Bug 1: mul_tiles(x̂, s2) onto the slot still holding s1.
    EXPECT_TRUE(has(c, "implicit-accumulation", 437)) << c.test;
    // Bug 2, block path: compute_x_hat_preprocessing acquires inside the s2 sum's section.
    EXPECT_EQ(has(c, "dst-nested-acquire", 63), c.path == "block") << c.test;
  }
  std::vector<const tile::ReproCell*> column;
  for (const auto& c : r.cells) column.push_back(&c);
  const auto agree = tile::variants_agreeing_with(column);
  EXPECT_TRUE(std::any_of(agree.begin(), agree.end(), [](const tile::ReportVariant* v) {
    return v->name == std::string("as-reported");
  }));
  EXPECT_FALSE(std::any_of(agree.begin(), agree.end(), [](const tile::ReportVariant* v) {
    return v->name == std::string("full-fix");
  }));
}

}  // namespace
}  // namespace tilenorm::tt
