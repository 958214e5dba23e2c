// The device's program cache under the LayerNorm tile ops: a second call with the same shapes,
// format and config on one device reuses the built program and only rewrites the runtime args
// (the buffers move), with the bits of a fresh device; other shapes build another program.
#include <gtest/gtest.h>

#include "test_util.h"
#include "tile/ops/norm_backward/norm_backward.h"
#include "tile/ops/norm_forward/norm_forward.h"
#include "tile_family.h"

namespace tilenorm::tile {
namespace {

using tilenorm::testing::bitwise_equal;
using tilenorm::testing::random_tensor;

struct Backward {
  Tensor dx, dgamma, dbeta;
  TileOpInfo info;
};

Backward backward(const Shape& shape, uint64_t seed, Device* on_device, uint32_t l1 = 1464 * 1024) {
  const Tensor x = random_tensor(shape, DType::kBF16, seed);
  const Tensor dy = random_tensor(shape, DType::kBF16, seed + 1);
  const Tensor gamma = random_tensor(Shape{shape.cols()}, DType::kBF16, seed + 2, 0, 1);
  const auto f = tilenorm::testing::reference_forward(x.cview(), gamma.cview(), {}, 1e-5);
  Tensor mean(shape.leading(), DType::kF32), rstd(shape.leading(), DType::kF32);
  for (int64_t r = 0; r < shape.rows(); ++r) {
    mean.set(r, f.mean[size_t(r)]);
    rstd.set(r, f.rstd[size_t(r)]);
  }
  Backward b{Tensor(shape, DType::kBF16),
             Tensor(Shape{shape.cols()}, DType::kF32),
             Tensor(Shape{shape.cols()}, DType::kF32),
             {}};
  TileOpConfig config;
  config.device.l1_size = l1;
  config.on_device = on_device;
  const Status s = norm_backward_tile(
      {.x = x.cview(),
       .dy = dy.cview(),
       .gamma = gamma.cview(),
       .mean = mean.cview(),
       .rstd = rstd.cview()},
      {.dx = b.dx.view(), .dgamma = b.dgamma.view(), .dbeta = b.dbeta.view()}, config, &b.info);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return b;
}

TEST(TileProgramCache, BackwardSecondCallReusesTheProgram) {
  Device device(DeviceConfig{});
  const uint64_t mark = device.dram_mark();
  const Backward first = backward(Shape{70, 300}, 1, &device);
  EXPECT_FALSE(first.info.program_cache_hit);
  EXPECT_EQ(device.dram_mark(), mark) << "the op frees its buffers on a long-lived device";
  const Backward second = backward(Shape{70, 300}, 11, &device);
  EXPECT_TRUE(second.info.program_cache_hit);
  EXPECT_EQ(device.program_cache().hits(), 1u);
  EXPECT_EQ(device.program_cache().misses(), 1u);
  // The cached program ran on the second call's buffers: the bits of a fresh device.
  const Backward fresh = backward(Shape{70, 300}, 11, nullptr);
  EXPECT_FALSE(fresh.info.program_cache_hit);
  EXPECT_TRUE(bitwise_equal(second.dx, fresh.dx));
  EXPECT_TRUE(bitwise_equal(second.dgamma, fresh.dgamma));
  EXPECT_TRUE(bitwise_equal(second.dbeta, fresh.dbeta));
  EXPECT_FALSE(bitwise_equal(second.dx, first.dx));
  // Another shape is another program.
  EXPECT_FALSE(backward(Shape{70, 333}, 3, &device).info.program_cache_hit);
  EXPECT_EQ(device.program_cache().size(), 2u);
}

TEST(TileProgramCache, ForwardSecondCallReusesTheProgram) {
  Device device(DeviceConfig{});
  auto forward = [](uint64_t seed, Device* on_device, TileOpInfo* info) {
    const Shape shape{40, 100};
    const Tensor x = random_tensor(shape, DType::kF32, seed);
    const Tensor gamma = random_tensor(Shape{100}, DType::kF32, seed + 1);
    Tensor y(shape, DType::kF32), mean(shape.leading(), DType::kF32),
        rstd(shape.leading(), DType::kF32);
    TileOpConfig config;
    config.on_device = on_device;
    EXPECT_TRUE(norm_forward_tile({.x = x.cview(), .gamma = gamma.cview(), .eps = 1e-5},
                                  {.y = y.view(), .mean = mean.view(), .rstd = rstd.view()}, config,
                                  info)
                    .ok());
    return y;
  };
  TileOpInfo a, b, c;
  forward(1, &device, &a);
  const Tensor y = forward(2, &device, &b);
  EXPECT_FALSE(a.program_cache_hit);
  EXPECT_TRUE(b.program_cache_hit);
  EXPECT_TRUE(bitwise_equal(y, forward(2, nullptr, &c)));
  EXPECT_EQ(device.program_cache().hits(), 1u);
}

// Every ordered pair of family members (LayerNorm, RMSNorm, each with and without the residual;
// forward and backward) of one shape on one device: each gets a program of its own (a miss, then
// a hit when it runs again), and each result is the reference's and the bits of a fresh device.
TEST(TileProgramCache, EveryPairOfFamilyMembersGetsItsOwnProgram) {
  const Shape shape{70, 300};
  const std::vector<family::Member> members = family::all_members();
  for (const family::Member& a : members) {
    for (const family::Member& b : members) {
      if (&a == &b) continue;
      SCOPED_TRACE(family::member_name(a) + " then " + family::member_name(b));
      Device device(DeviceConfig{});
      const family::Run first = family::run_member(a, shape, DType::kBF16, 1, &device);
      const family::Run second = family::run_member(b, shape, DType::kBF16, 2, &device);
      const family::Run again = family::run_member(a, shape, DType::kBF16, 3, &device);
      ASSERT_TRUE(first.status.ok()) << first.status.to_string();
      ASSERT_TRUE(second.status.ok()) << second.status.to_string();
      ASSERT_TRUE(again.status.ok()) << again.status.to_string();
      EXPECT_FALSE(first.cache_hit);
      EXPECT_FALSE(second.cache_hit);
      EXPECT_TRUE(again.cache_hit);
      EXPECT_EQ(device.program_cache().misses(), 2u);
      EXPECT_EQ(device.program_cache().hits(), 1u);
      EXPECT_EQ(device.program_cache().size(), 2u);
      EXPECT_TRUE(
          family::same_bits(second, family::run_member(b, shape, DType::kBF16, 2, nullptr)));
      EXPECT_TRUE(family::same_bits(again, family::run_member(a, shape, DType::kBF16, 3, nullptr)));
    }
  }
}

// The attributes of one member: another dtype, shape or path is another program; eps is a
// runtime argument (the program is reused and the result is that eps's), and so are the device's
// numerics and sanitizer settings, which the program does not depend on.
TEST(TileProgramCache, KeyCoversDtypeShapeAndPathNotEps) {
  const Shape shape{70, 300};
  const family::Member ln{};
  Device device(DeviceConfig{});
  auto expect_counts = [&](uint64_t misses, uint64_t hits) {
    EXPECT_EQ(device.program_cache().misses(), misses);
    EXPECT_EQ(device.program_cache().hits(), hits);
  };
  EXPECT_FALSE(family::run_member(ln, shape, DType::kBF16, 1, &device).cache_hit);
  expect_counts(1, 0);
  EXPECT_FALSE(family::run_member(ln, shape, DType::kF32, 1, &device).cache_hit);
  expect_counts(2, 0);
  EXPECT_FALSE(family::run_member(ln, Shape{70, 320}, DType::kBF16, 1, &device).cache_hit);
  expect_counts(3, 0);
  EXPECT_FALSE(family::run_member(ln, Shape{40, 300}, DType::kBF16, 1, &device).cache_hit);
  expect_counts(4, 0);
  // eps: the same program with the new eps in its runtime args, checked against the reference.
  const family::Run eps = family::run_member(ln, shape, DType::kBF16, 2, &device, {}, 0.5);
  EXPECT_TRUE(eps.cache_hit);
  expect_counts(4, 1);
  EXPECT_TRUE(
      family::same_bits(eps, family::run_member(ln, shape, DType::kBF16, 2, nullptr, {}, 0.5)));
  // The path (steered by the op's force_path): another program.
  {
    TileOpInfo info;
    const Tensor x = random_tensor(shape, DType::kBF16, 5);
    const Tensor gamma = random_tensor(Shape{300}, DType::kBF16, 6);
    Tensor y(shape, DType::kBF16), mean(shape.leading(), DType::kF32),
        rstd(shape.leading(), DType::kF32);
    TileOpConfig config;
    config.on_device = &device;
    config.force_path = "block";
    ASSERT_TRUE(norm_forward_tile({.x = x.cview(), .gamma = gamma.cview()},
                                  {.y = y.view(), .mean = mean.view(), .rstd = rstd.view()}, config,
                                  &info)
                    .ok());
    EXPECT_EQ(info.path, "block");
    EXPECT_FALSE(info.program_cache_hit);
    expect_counts(5, 1);
  }
  // Numerics: the program is reused and gives the bits of a fresh device in that mode.
  device.set_numerics(NumericsMode::kExact);
  DeviceConfig exact;
  exact.numerics = NumericsMode::kExact;
  const family::Run in_exact = family::run_member(ln, shape, DType::kBF16, 4, &device);
  EXPECT_TRUE(in_exact.cache_hit);
  expect_counts(5, 2);
  EXPECT_TRUE(
      family::same_bits(in_exact, family::run_member(ln, shape, DType::kBF16, 4, nullptr, exact)));
  EXPECT_EQ(device.program_cache().size(), 5u);
}

}  // namespace
}  // namespace tilenorm::tile
