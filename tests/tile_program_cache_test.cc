// The device's program cache under the LayerNorm tile ops: a second call with the same shapes,
// format and config on one device reuses the built program and only rewrites the runtime args
// (the buffers move), with the bits of a fresh device; other shapes build another program.
#include <gtest/gtest.h>

#include "test_util.h"
#include "tile/ops/norm_backward/norm_backward.h"
#include "tile/ops/norm_forward/norm_forward.h"

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

}  // namespace
}  // namespace tilenorm::tile
