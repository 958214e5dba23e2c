#include "tilenorm/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <new>
#include <optional>

namespace tilenorm {
namespace {

TEST(Bf16, RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f), 1.0f);
  // 1 + 3*2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(round_to_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);  // above half: up
  EXPECT_EQ(round_to_bf16(-0.5f), -0.5f);
  EXPECT_EQ(round_to_bf16(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  // The largest finite float rounds up to infinity, as IEEE rounding does.
  EXPECT_TRUE(std::isinf(round_to_bf16(std::numeric_limits<float>::max())));
}

TEST(Bf16, NanStaysNan) {
  // A NaN whose payload sits only in the low 16 bits would become Inf if simply truncated.
  const float nan_low = float_from_bits(0x7f800001u);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(nan_low))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16_truncate(nan_low))));
  EXPECT_TRUE(std::isnan(round_to_bf16(std::nanf(""))));
}

TEST(Bf16, TruncationIsNamedAndBiased) {
  // 1/8462 truncated vs rounded: the report's scaler bias (bf16(1/C) * C = 0.99664 truncated).
  const float inv = 1.0f / 8462.0f;
  EXPECT_NEAR(bf16_to_float(float_to_bf16_truncate(inv)) * 8462.0, 0.99664, 5e-5);
  EXPECT_GT(bf16_to_float(float_to_bf16(inv)) * 8462.0, 0.999);
  EXPECT_EQ(float_to_bf16_truncate(1.0f + 0x1p-8f + 0x1p-20f).bits, 0x3f80);
}

TEST(Shape, RowsColsAndLeading) {
  const Shape s{3, 273, 8462};
  EXPECT_EQ(s.rows(), 819);
  EXPECT_EQ(s.cols(), 8462);
  EXPECT_EQ(s.leading(), (Shape{3, 273}));
  EXPECT_EQ(Shape{7}.rows(), 1);
  EXPECT_EQ(Shape{7}.leading(), (Shape{1}));
  EXPECT_EQ(s.to_string(), "[3, 273, 8462]");
}

// Shapes from untrusted input (a .npy header, a caller's view) are checked, never wrapped.
TEST(Shape, CheckedNumelRejectsNegativeDimsAndOverflow) {
  constexpr int64_t kBig = int64_t{1} << 62;
  EXPECT_EQ(Shape{}.checked_numel(), 1);
  EXPECT_EQ((Shape{3, 5}.checked_numel()), 15);
  EXPECT_EQ((Shape{kBig, 1}.checked_numel()), kBig);
  EXPECT_EQ((Shape{kBig, 2}.checked_numel()), std::nullopt);
  EXPECT_EQ((Shape{2, 2, kBig}.checked_numel()), std::nullopt);
  EXPECT_EQ((Shape{int64_t{1} << 32, int64_t{1} << 32, 8}.checked_numel()), std::nullopt);
  EXPECT_EQ((Shape{-1, 8}.checked_numel()), std::nullopt);
  EXPECT_EQ((Shape{-2, -4}.checked_numel()), std::nullopt);
  EXPECT_EQ((Shape{0, -1}.checked_numel()), std::nullopt);
  // A 0 dim makes the product 0 whatever the other dims would overflow to.
  const Shape zero{18223, 1, 3, 10000000000000000, 0};
  EXPECT_EQ(zero.checked_numel(), 0);
  EXPECT_EQ(zero.numel(), 0);
  EXPECT_EQ((Shape{kBig, kBig, 0, 7}.numel()), 0);
}

TEST(ShapeDeathTest, NumelAndRowsAbortOnInvalidShapes) {
  constexpr int64_t kBig = int64_t{1} << 62;
  EXPECT_DEATH((void)Shape({kBig, 4}).numel(), "overflows");
  EXPECT_DEATH((void)Shape({kBig, 4, 1}).rows(), "overflows");
  EXPECT_DEATH((void)Shape({-3, 4}).numel(), "negative");
  EXPECT_DEATH((void)Shape({-3, 4}).rows(), "negative");
}

TEST(Tensor, SizeNoAllocationHoldsIsBadAlloc) {
  EXPECT_THROW(Tensor(Shape{int64_t{1} << 62, 4}, DType::kF32), std::bad_alloc);
  EXPECT_THROW(Tensor(Shape{int64_t{1} << 32, int64_t{1} << 32, 8}, DType::kBF16), std::bad_alloc);
  EXPECT_THROW(Tensor(Shape{int64_t{1} << 61}, DType::kF64), std::bad_alloc);
}

TEST(Tensor, AlignedZeroedAndConverts) {
  Tensor t(Shape{5, 3}, DType::kBF16);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.get(i), 0.0);
  t.set(4, 1.0 / 3.0);
  EXPECT_EQ(t.get(4), static_cast<double>(round_to_bf16(1.0f / 3.0f)));
  const Tensor f = t.to(DType::kF32);
  EXPECT_EQ(f.get(4), t.get(4));
  Tensor empty(Shape{0, 4}, DType::kF32);
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_TRUE(empty.defined());
}

}  // namespace
}  // namespace tilenorm
