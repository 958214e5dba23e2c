// After a tile op fails — a sanitizer report (error mode), a deadlock, a bad DRAM access, an
// exception thrown in a kernel, resource exhaustion (a CB larger than its window, CBs beyond L1,
// DRAM full) — the device goes on: its DRAM allocator is back at its mark, the failed program is
// not in the program cache, the programs cached before are still served, and the next ops give
// the reference's values and the bits of a fresh device.
#include <gtest/gtest.h>

#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/machine/machine_test_util.h"
#include "tile/ops/op_host.h"
#include "tile/ops/report_layernorm_backward/report_layernorm_backward.h"
#include "tile_family.h"

namespace tilenorm::tile {
namespace {

using family::Member;

// ---- A copy op (y = x, or y = 2x) through run_program, with one planted fault.

enum class Fault {
  kNone,
  kSanitizer,       // the compute kernel pops 2 pages after waiting for 1 (error mode only)
  kDeadlock,        // the reader first waits for a page only the compute kernel could push
  kBadAccess,       // the reader's args point it past the end of x (same kernels as kNone)
  kThrow,           // the compute kernel throws std::runtime_error inside a dst section
  kCbOverCapacity,  // the reader reserves 3 pages of a 2-page CB
  kL1,              // the input CB is larger than L1
};

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::kNone:
      return "none";
    case Fault::kSanitizer:
      return "sanitizer";
    case Fault::kDeadlock:
      return "deadlock";
    case Fault::kBadAccess:
      return "bad_access";
    case Fault::kThrow:
      return "throw";
    case Fault::kCbOverCapacity:
      return "cb_over_capacity";
    case Fault::kL1:
      return "l1";
  }
  return "?";
}

// What the failing run's Status names.
const char* fault_message(Fault f) {
  switch (f) {
    case Fault::kSanitizer:
      return "cb-pop-more-than-waited";
    case Fault::kDeadlock:
      return "deadlock";
    case Fault::kBadAccess:
      return "noc-bad-access";
    case Fault::kThrow:
      return "threw: planted exception";
    case Fault::kCbOverCapacity:
      return "cb-over-capacity";
    case Fault::kL1:
      return "circular buffers of core";
    case Fault::kNone:
      break;
  }
  return "";
}

using test_util::CountArgs;
using test_util::IoArgs;
using test_util::kIn0;
using test_util::kOut;
constexpr uint32_t kBack = 1;

// test_util::read_tiles with the reader's faults planted in front.
template <Fault F>
void copy_reader(const IoArgs& a) {
  if constexpr (F == Fault::kDeadlock) cb_wait_front(kBack, 1);
  if constexpr (F == Fault::kCbOverCapacity) cb_reserve_back(kIn0, 3);
  test_util::read_tiles(a);
}

template <bool kDouble, Fault F>
void copy_compute(const CountArgs& a) {
  if constexpr (kDouble) {
    add_tiles_init(kIn0, kIn0);
  } else {
    copy_tile_init(kIn0);
  }
  for (uint32_t i = 0; i < a.count; ++i) {
    cb_wait_front(kIn0, 1);
    tile_regs_acquire();
    if constexpr (kDouble) {
      add_tiles(kIn0, kIn0, 0, 0, 0);
    } else {
      copy_tile(kIn0, 0, 0);
    }
    // Thrown holding a written dst section and a waited page.
    if constexpr (F == Fault::kThrow) throw std::runtime_error("planted exception");
    test_util::commit_and_pack_slot0(kOut);
    cb_pop_front(kIn0, F == Fault::kSanitizer ? 2 : 1);
  }
}

using CopyKernels = OpKernels<IoArgs, CountArgs, IoArgs>;

template <bool kDouble, Fault F>
CopyKernels copy_kernels_of() {
  return {"copy", &copy_reader<F>, &copy_compute<kDouble, F>, &test_util::write_tiles};
}

CopyKernels copy_kernels(bool twice, Fault f) {
  auto pick = [&]<bool kDouble>() {
    switch (f) {
      case Fault::kSanitizer:
        return copy_kernels_of<kDouble, Fault::kSanitizer>();
      case Fault::kDeadlock:
        return copy_kernels_of<kDouble, Fault::kDeadlock>();
      case Fault::kThrow:
        return copy_kernels_of<kDouble, Fault::kThrow>();
      case Fault::kCbOverCapacity:
        return copy_kernels_of<kDouble, Fault::kCbOverCapacity>();
      case Fault::kNone:
      case Fault::kBadAccess:
      case Fault::kL1:
        break;
    }
    return copy_kernels_of<kDouble, Fault::kNone>();
  };
  return twice ? pick.template operator()<true>() : pick.template operator()<false>();
}

// y = x (or 2x when `twice`) of a bf16 [rows, C] matrix through run_program under `key` (by
// default one that names every attribute; a test passes one that misses some). The tile-rows
// are split over the cores as the tile ops split them.
struct CopyRun {
  Status status;
  bool cache_hit = false;
  Tensor y;
};
CopyRun copy_op(Device& device, const Tensor& x, Fault fault, bool twice = false,
                const uint64_t* key = nullptr) {
  const int64_t rows = x.shape().rows(), C = x.shape().cols();
  const DataFormat e = DataFormat::Float16_b;
  TileOpConfig config;
  config.on_device = &device;
  OpDevice op_device(config);
  const uint32_t in_pages = fault == Fault::kL1 ? device.config().l1_size / tile_size(e) + 1 : 2;
  const std::vector<CbDesc> cbs = {
      {kIn0, e, in_pages, "in"}, {kBack, e, 1, "back"}, {kOut, e, 2, "out"}};
  const TilePlan plan = tile_plan(rows, C, device.config(), "fit",
                                  [&](const TilePlan&) { return std::vector<CbDesc>(cbs); });
  CopyRun run;
  run.y = Tensor(x.shape(), DType::kBF16);
  run.y.fill(NAN);
  DeviceTensor t, y = device_tensor_spec(rows, C, e);
  run.status = upload_matrix(device, x.cview(), rows, C, e, 0.0f, &t);
  if (run.status.ok()) run.status = allocate(device, &y);
  if (!run.status.ok()) return run;
  auto args_of = [&](uint32_t, uint32_t first, uint32_t count) {
    // kBadAccess: the reader's tiles start past the end of x.
    const uint32_t past = fault == Fault::kBadAccess ? t.buffer.num_pages : 0;
    return CoreArgs<IoArgs, CountArgs, IoArgs>{
        .reader = {t.buffer.address, first * plan.wt + past, count * plan.wt, kIn0},
        .compute = {count * plan.wt},
        .writer = {y.buffer.address, first * plan.wt, count * plan.wt, kOut}};
  };
  const uint64_t own_key =
      ProgramHash().add(std::string_view("copy")).add(twice).add(fault).add(rows).add(C).value();
  TileOpInfo info;
  run.status = run_program(device, key != nullptr ? *key : own_key, plan, cbs,
                           copy_kernels(twice, fault), args_of, 0, {{&y, run.y.view()}}, &info);
  run.cache_hit = info.program_cache_hit;
  return run;
}

// The copy op's result against x (or 2x): exact, as bf16 doubles exactly.
::testing::AssertionResult copied(const CopyRun& run, const Tensor& x, bool twice = false) {
  if (!run.status.ok()) return ::testing::AssertionFailure() << run.status.to_string();
  std::vector<double> want = reference::load_f64(x.cview());
  if (twice)
    for (double& v : want) v *= 2;
  return testing::AllClose("y", run.y.cview(), want, Tolerance{0, 0});
}

// ---- The ops that must keep working: two family members, checked against the reference and
// against a fresh device.
const Shape kShape{70, 300};
const std::vector<Member> kCorrectOps = {{Norm::kLayerNorm, false, false},
                                         {Norm::kRmsNorm, true, true}};

std::vector<family::Run> run_correct_ops(Device& device, uint64_t seed) {
  std::vector<family::Run> runs;
  runs.reserve(kCorrectOps.size());
  for (const Member& m : kCorrectOps)
    runs.push_back(family::run_member(m, kShape, DType::kBF16, seed, &device, device.config()));
  return runs;
}

void expect_correct_ops(Device& device, uint64_t seed, bool hits) {
  const std::vector<family::Run> runs = run_correct_ops(device, seed);
  for (size_t i = 0; i < kCorrectOps.size(); ++i) {
    SCOPED_TRACE(family::member_name(kCorrectOps[i]));
    ASSERT_TRUE(runs[i].status.ok()) << runs[i].status.to_string();
    EXPECT_EQ(runs[i].cache_hit, hits);
    const family::Run fresh =
        family::run_member(kCorrectOps[i], kShape, DType::kBF16, seed, nullptr, device.config());
    EXPECT_TRUE(family::same_bits(runs[i], fresh)) << "differs from a fresh device";
  }
}

struct Case {
  Fault fault;
  SanitizerMode sanitizer;
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << fault_name(c.fault) << (c.sanitizer == SanitizerMode::kError ? " error" : " off");
}

class TileRecovery : public ::testing::TestWithParam<Case> {};

// The correct ops run (their programs are cached), the faulty op fails twice (a miss each time:
// nothing of it is cached), then the correct ops hit their cached programs and give the
// reference's values, the copy op's correct program runs on the same device, and the DRAM
// allocator is back at its mark.
TEST_P(TileRecovery, NextOpsOnTheDeviceAreCorrect) {
  const Case c = GetParam();
  DeviceConfig config;
  config.sanitizer = c.sanitizer;
  config.host_threads = 2;
  Device device(config);
  const uint64_t mark = device.dram_mark();
  expect_correct_ops(device, 1, false);
  const Tensor x = testing::random_tensor(Shape{100, 200}, DType::kBF16, 7);
  const ProgramCache& cache = device.program_cache();
  const size_t cached = cache.size();
  const uint64_t misses = cache.misses(), hits = cache.hits();
  for (int attempt = 0; attempt < 2; ++attempt) {
    SCOPED_TRACE(attempt);
    const CopyRun failed = copy_op(device, x, c.fault);
    ASSERT_FALSE(failed.status.ok());
    EXPECT_NE(failed.status.message().find(fault_message(c.fault)), std::string::npos)
        << failed.status.to_string();
    EXPECT_EQ(failed.status.code(),
              c.fault == Fault::kL1 ? StatusCode::kResourceExhausted : StatusCode::kInternal);
    EXPECT_EQ(cache.size(), cached) << "a failed program is not cached";
    EXPECT_EQ(cache.misses(), misses + 1 + attempt);
    EXPECT_EQ(cache.hits(), hits);
    EXPECT_EQ(device.dram_mark(), mark);
  }
  expect_correct_ops(device, 2, true);
  EXPECT_TRUE(copied(copy_op(device, x, Fault::kNone), x));
  EXPECT_EQ(device.dram_mark(), mark);
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (SanitizerMode mode : {SanitizerMode::kError, SanitizerMode::kOff}) {
    for (Fault f : {Fault::kSanitizer, Fault::kDeadlock, Fault::kBadAccess, Fault::kThrow,
                    Fault::kCbOverCapacity, Fault::kL1}) {
      if (f == Fault::kSanitizer && mode != SanitizerMode::kError) continue;
      out.push_back({f, mode});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(EveryFault, TileRecovery, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(fault_name(info.param.fault)) +
                                  (info.param.sanitizer == SanitizerMode::kError ? "_error"
                                                                                 : "_off");
                         });

// A program that ran and was cached, then fails on bad runtime args (a tile past its buffer):
// it leaves the cache, and the next call with good args builds it again and is correct.
TEST(TileRecoveryCache, ACachedProgramThatFailsLeavesTheCache) {
  Device device(DeviceConfig{});
  const Tensor x = testing::random_tensor(Shape{64, 96}, DType::kBF16, 3);
  const uint64_t key = ProgramHash().add(std::string_view("copy_shared_key")).value();
  const CopyRun first = copy_op(device, x, Fault::kNone, false, &key);
  EXPECT_TRUE(copied(first, x));
  EXPECT_FALSE(first.cache_hit);
  EXPECT_EQ(device.program_cache().size(), 1u);
  const CopyRun failed = copy_op(device, x, Fault::kBadAccess, false, &key);
  EXPECT_NE(failed.status.message().find("noc-bad-access"), std::string::npos)
      << failed.status.to_string();
  EXPECT_TRUE(failed.cache_hit);
  EXPECT_EQ(device.program_cache().size(), 0u);
  const CopyRun again = copy_op(device, x, Fault::kNone, false, &key);
  EXPECT_TRUE(copied(again, x));
  EXPECT_FALSE(again.cache_hit);
  EXPECT_EQ(device.program_cache().size(), 1u);
  EXPECT_EQ(device.program_cache().hits(), 1u);
  EXPECT_EQ(device.program_cache().misses(), 2u);
}

// An op whose key misses what its program is built from (here the compute kernel: copy, then
// double; and the rows, so the number of cores) under one key still gets a program of its own:
// run_program adds the kernels, the CBs and the cores to the key.
TEST(TileRecoveryCache, AKeyThatMissesAttributesStillGetsTheRightProgram) {
  Device device(DeviceConfig{});
  const Tensor x = testing::random_tensor(Shape{64, 96}, DType::kBF16, 4);
  const uint64_t key = ProgramHash().add(std::string_view("copy_or_double")).value();
  EXPECT_TRUE(copied(copy_op(device, x, Fault::kNone, false, &key), x));
  const CopyRun doubled = copy_op(device, x, Fault::kNone, true, &key);
  EXPECT_TRUE(copied(doubled, x, true));
  EXPECT_FALSE(doubled.cache_hit);
  EXPECT_EQ(device.program_cache().size(), 2u);
  // Three tile-rows: three cores where the cached copy program has kernels on two.
  const Tensor taller = testing::random_tensor(Shape{96, 96}, DType::kBF16, 5);
  const CopyRun more_cores = copy_op(device, taller, Fault::kNone, false, &key);
  EXPECT_TRUE(copied(more_cores, taller));
  EXPECT_FALSE(more_cores.cache_hit);
  EXPECT_TRUE(copied(copy_op(device, x, Fault::kNone, false, &key), x));
  EXPECT_EQ(device.program_cache().hits(), 1u);
  EXPECT_EQ(device.program_cache().size(), 3u);
}

// A real op that fails for DRAM (x fits the banks, y does not) gives its buffers back, and the
// next ops on the device are correct.
TEST(TileRecoveryResources, DramExhaustedMidOp) {
  DeviceConfig config;
  config.dram_bank_size = 128 * 1024;
  Device device(config);
  const uint64_t mark = device.dram_mark();
  expect_correct_ops(device, 1, false);
  const family::Run big =
      family::run_member(kCorrectOps[0], Shape{320, 1024}, DType::kBF16, 9, &device, config);
  ASSERT_FALSE(big.status.ok());
  EXPECT_EQ(big.status.code(), StatusCode::kResourceExhausted) << big.status.to_string();
  EXPECT_EQ(device.dram_mark(), mark);
  expect_correct_ops(device, 2, true);
  EXPECT_EQ(device.dram_mark(), mark);
}

// A real op forced onto the fit path with a row larger than L1 fails at its CBs; nothing of it
// is cached and the next ops on the device are correct.
TEST(TileRecoveryResources, L1ExhaustedByARealOp) {
  Device device(DeviceConfig{});
  expect_correct_ops(device, 1, false);
  const Tensor x = testing::random_tensor(Shape{32, 32 * 800}, DType::kBF16, 5);
  const Tensor gamma = testing::random_tensor(Shape{32 * 800}, DType::kBF16, 6);
  Tensor y(x.shape(), DType::kBF16), mean(Shape{32}, DType::kF32), rstd(Shape{32}, DType::kF32);
  TileOpConfig config;
  config.on_device = &device;
  config.force_path = "fit";
  const size_t cached = device.program_cache().size();
  const Status s =
      norm_forward_tile({.x = x.cview(), .gamma = gamma.cview()},
                        {.y = y.view(), .mean = mean.view(), .rstd = rstd.view()}, config);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.to_string();
  EXPECT_EQ(device.program_cache().size(), cached);
  expect_correct_ops(device, 2, true);
}

// The report's op: the as-reported variant fails in error mode (the sanitizer names its bugs);
// its program is not cached, and the full fix then runs on the same device with the bits of a
// fresh device and within the tile backend's dx tolerance of the reference.
TEST(TileRecoveryReportOp, AFailedVariantIsNotCachedAndTheNextRunsCorrectly) {
  const Shape shape{40, 100};
  const Tensor x = testing::random_tensor(shape, DType::kBF16, 11);
  const Tensor dy = testing::random_tensor(shape, DType::kBF16, 12);
  const Tensor gamma = testing::random_tensor(Shape{100}, DType::kBF16, 13, 0, 1);
  const testing::ForwardRef f = testing::reference_forward(x.cview(), gamma.cview(), {}, 1e-5);
  Tensor mean(shape.leading(), DType::kF32), rstd(shape.leading(), DType::kF32);
  for (int64_t r = 0; r < shape.rows(); ++r) {
    mean.set(r, f.mean[size_t(r)]);
    rstd.set(r, f.rstd[size_t(r)]);
  }
  const testing::BackwardRef ref =
      testing::reference_backward(x.cview(), dy.cview(), gamma.cview(), mean.cview(), rstd.cview());
  auto floats = [](const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(t.get(int64_t(i)));
    return v;
  };
  const std::vector<float> xf = floats(x), dyf = floats(dy), gf = floats(gamma), mf = floats(mean),
                           rf = floats(rstd);
  const ReportBackwardInputs in{shape.rows(), shape.cols(), xf.data(), dyf.data(),
                                gf.data(),    mf.data(),    rf.data()};
  DeviceConfig config;
  config.print_warnings = false;
  Device device(config);
  ReportBackwardResult failed, fixed, fresh;
  const Status s =
      report_layernorm_backward(device, in, *find_report_variant("as-reported"), &failed);
  EXPECT_NE(s.message().find("implicit-accumulation"), std::string::npos) << s.to_string();
  EXPECT_EQ(device.program_cache().size(), 0u) << "a failed program is not cached";
  ASSERT_TRUE(report_layernorm_backward(device, in, *find_report_variant("full-fix"), &fixed).ok());
  EXPECT_FALSE(fixed.program_cache_hit);
  EXPECT_EQ(device.program_cache().size(), 1u);
  Device fresh_device(config);
  ASSERT_TRUE(
      report_layernorm_backward(fresh_device, in, *find_report_variant("full-fix"), &fresh).ok());
  EXPECT_EQ(fixed.dx, fresh.dx);
  Tensor dx(shape, DType::kF32);
  for (size_t i = 0; i < fixed.dx.size(); ++i) dx.set(int64_t(i), fixed.dx[i]);
  double scale = 1;
  for (double v : ref.dx) scale = std::max(scale, std::fabs(v));
  const Tolerance tol = conformance::tolerance(NormOp{.norm = Norm::kLayerNorm}, Backend::kTile,
                                               DType::kBF16, conformance::Output::kDx)
                            .tol;
  EXPECT_TRUE(testing::AllClose("dx", dx.cview(), ref.dx, {tol.atol * scale, tol.rtol}));
}

}  // namespace
}  // namespace tilenorm::tile
