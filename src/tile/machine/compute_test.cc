// Arithmetic of every compute op against a float64 tile reference in exact and faithful modes,
// and the numerics rules (dst rounding, TF32 sources, packer rounding, release zeroing).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "tile/machine/api/compute/bcast.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/mask.h"
#include "tile/machine/api/compute/matmul.h"
#include "tile/machine/api/compute/reduce.h"
#include "tile/machine/api/compute/sanitizer.h"
#include "tile/machine/machine_test_util.h"

namespace tilenorm::tile {
namespace {

using namespace test_util;  // NOLINT: the shared test kernels

enum class Op : uint32_t {
  kCopy,
  kAdd,
  kSub,
  kMul,
  kMulTwice,
  kAddAccToDest,
  kAddRows,
  kAddCols,
  kAddScalar,
  kSubRows,
  kSubCols,
  kSubScalar,
  kMulRows,
  kMulCols,
  kMulScalar,
  kUnaryRow,
  kUnaryCol,
  kUnaryScalar,
  kReduceRow,
  kReduceCol,
  kReduceScalar,
  kReduceMaxRow,
  kMatmul,
  kMatmulTransposed,
  kSfpuAdd,
  kSfpuSub,
  kSfpuMul,
  kFill,
  kMask,
  kRsqrt,
  kRecip,
  kSqrt,
  kSquare,
  kAddUnary,
  kSubUnary,
  kMulUnary,
  kCount
};

const char* op_name(Op op) {
  static const char* kNames[] = {"copy",          "add",
                                 "sub",           "mul",
                                 "mul_twice",     "add_acc_to_dest",
                                 "add_rows",      "add_cols",
                                 "add_scalar",    "sub_rows",
                                 "sub_cols",      "sub_scalar",
                                 "mul_rows",      "mul_cols",
                                 "mul_scalar",    "unary_row",
                                 "unary_col",     "unary_scalar",
                                 "reduce_row",    "reduce_col",
                                 "reduce_scalar", "reduce_max_row",
                                 "matmul",        "matmul_t",
                                 "sfpu_add",      "sfpu_sub",
                                 "sfpu_mul",      "fill",
                                 "mask",          "rsqrt",
                                 "recip",         "sqrt",
                                 "square",        "add_unary",
                                 "sub_unary",     "mul_unary"};
  return kNames[static_cast<int>(op)];
}

struct OpArgs {
  Op op;
};

constexpr float kFillValue = 3.3f;
constexpr float kUnaryScalar = -0.625f;

// Waits for A0, A1 on in0 and B0, B1 on in1; computes `op` into dst slot 0; packs it.
void op_compute(const OpArgs& a) {
  binary_op_init_common(kIn0, kIn1, kOut);
  cb_wait_front(kIn0, 2);
  cb_wait_front(kIn1, 2);
  tile_regs_acquire();
  switch (a.op) {
    case Op::kCopy:
      copy_tile(kIn0, 0, 0);
      break;
    case Op::kAdd:
      add_tiles_init(kIn0, kIn1);
      add_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kSub:
      sub_tiles_init(kIn0, kIn1);
      sub_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kMul:
      mul_tiles_init(kIn0, kIn1);
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kMulTwice:
      mul_tiles_init(kIn0, kIn1);
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      mul_tiles(kIn0, kIn1, 1, 1, 0);
      break;
    case Op::kAddAccToDest:
      copy_tile(kIn0, 1, 0);
      add_tiles_init(kIn0, kIn1, true);
      add_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kAddRows:
      add_bcast_rows_init_short(kIn0, kIn1);
      add_tiles_bcast_rows(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kAddCols:
      add_bcast_cols_init_short(kIn0, kIn1);
      add_tiles_bcast_cols(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kAddScalar:
      add_bcast_scalar_init_short(kIn0, kIn1);
      add_tiles_bcast_scalar(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kSubRows:
      sub_bcast_rows_init_short(kIn0, kIn1);
      sub_tiles_bcast_rows(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kSubCols:
      sub_bcast_cols_init_short(kIn0, kIn1);
      sub_tiles_bcast_cols(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kSubScalar:
      sub_tiles_bcast_scalar_init_short(kIn0, kIn1);
      sub_tiles_bcast_scalar(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kMulRows:
      mul_bcast_rows_init_short(kIn0, kIn1);
      mul_tiles_bcast_rows(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kMulCols:
      mul_bcast_cols_init_short(kIn0, kIn1);
      mul_tiles_bcast_cols(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kMulScalar:
      mul_tiles_bcast_scalar_init_short(kIn0, kIn1);
      mul_tiles_bcast_scalar(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kUnaryRow:
      unary_bcast_init<BroadcastType::ROW>(kIn1, kOut);
      unary_bcast<BroadcastType::ROW>(kIn1, 0, 0);
      break;
    case Op::kUnaryCol:
      unary_bcast_init<BroadcastType::COL>(kIn1, kOut);
      unary_bcast<BroadcastType::COL>(kIn1, 0, 0);
      break;
    case Op::kUnaryScalar:
      unary_bcast_init<BroadcastType::SCALAR>(kIn1, kOut);
      unary_bcast<BroadcastType::SCALAR>(kIn1, 0, 0);
      break;
    case Op::kReduceRow:
      reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(kIn0, kIn1, kOut);
      reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(kIn0, kIn1, 0, 0, 0);
      reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(kIn0, kIn1, 1, 0, 0);  // accumulates
      reduce_uninit();
      break;
    case Op::kReduceCol:
      reduce_tile<PoolType::SUM, ReduceDim::REDUCE_COL>(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kReduceScalar:
      reduce_tile<PoolType::AVG, ReduceDim::REDUCE_SCALAR>(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kReduceMaxRow:
      reduce_tile<PoolType::MAX, ReduceDim::REDUCE_ROW>(kIn0, kIn1, 0, 0, 0);
      break;
    case Op::kMatmul:
      mm_init(kIn0, kIn1, kOut);
      matmul_tiles(kIn0, kIn1, 0, 1, 0);
      matmul_tiles(kIn0, kIn1, 1, 0, 0);  // accumulates: A0 @ B1 + A1 @ B0
      break;
    case Op::kMatmulTransposed:
      mm_init(kIn0, kIn1, kOut, 1);
      matmul_tiles(kIn0, kIn1, 0, 1, 0);
      break;
    case Op::kSfpuAdd:
    case Op::kSfpuSub:
    case Op::kSfpuMul:
    case Op::kMask:
      copy_tile(kIn0, 0, 0);
      copy_tile(kIn1, 0, 1);
      if (a.op == Op::kSfpuAdd) {
        add_binary_tile_init();
        add_binary_tile(0, 1, 0);
      }
      if (a.op == Op::kSfpuSub) {
        sub_binary_tile_init();
        sub_binary_tile(0, 1, 0);
      }
      if (a.op == Op::kSfpuMul) {
        mul_binary_tile_init();
        mul_binary_tile(0, 1);
      }
      if (a.op == Op::kMask) {
        mask_tile_init();
        mask_tile(0, 1);
      }
      break;
    case Op::kFill:
      fill_tile_init();
      fill_tile(0, kFillValue);
      break;
    case Op::kRsqrt:
      copy_tile(kIn0, 0, 0);
      rsqrt_tile_init();
      rsqrt_tile(0);
      break;
    case Op::kRecip:
      copy_tile(kIn0, 0, 0);
      recip_tile_init();
      recip_tile(0);
      break;
    case Op::kSqrt:
      copy_tile(kIn0, 0, 0);
      sqrt_tile_init();
      sqrt_tile(0);
      break;
    case Op::kSquare:
      copy_tile(kIn0, 0, 0);
      square_tile_init();
      square_tile(0);
      break;
    case Op::kAddUnary:
      copy_tile(kIn0, 0, 0);
      binop_with_scalar_tile_init();
      add_unary_tile(0, float_bits(kUnaryScalar));
      break;
    case Op::kSubUnary:
      copy_tile(kIn0, 0, 0);
      sub_unary_tile(0, float_bits(kUnaryScalar));
      break;
    case Op::kMulUnary:
      copy_tile(kIn0, 0, 0);
      mul_unary_tile(0, float_bits(kUnaryScalar));
      break;
    case Op::kCount:
      break;
  }
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 1);
  pack_tile(0, kOut);
  cb_push_back(kOut, 1);
  tile_regs_release();
  cb_pop_front(kIn0, 2);
  cb_pop_front(kIn1, 2);
}

struct Mode {
  NumericsMode numerics;
  bool fp32_dest;
  const char* name;
};
const Mode kModes[] = {{NumericsMode::kExact, false, "exact"},
                       {NumericsMode::kFaithful, false, "faithful_bf16_dst"},
                       {NumericsMode::kFaithful, true, "faithful_fp32_dst"}};

// How a double result becomes a dst value: fp32, then bf16 when dst is 16-bit in faithful mode.
float fin(const Mode& m, double x) {
  const float f = static_cast<float>(x);
  return m.numerics == NumericsMode::kFaithful && !m.fp32_dest ? round_to_bf16(f) : f;
}

struct Inputs {
  std::vector<float> a, b;  // two tiles each, face layout
};

Inputs make_inputs(Op op) {
  Inputs in;
  const bool positive = op == Op::kRsqrt || op == Op::kRecip || op == Op::kSqrt;
  in.a = random_tiles(2, positive ? 0.05f : -4.0f, 4.0f, 11 + static_cast<uint32_t>(op));
  in.b = random_tiles(2, -4.0f, 4.0f, 101 + static_cast<uint32_t>(op));
  auto at = [](int r, int c) { return tile_index(r, c); };
  // Broadcast operands: everything outside the broadcast row/column/element is NaN, so a read
  // of the wrong element shows up.
  if (op == Op::kAddRows || op == Op::kSubRows || op == Op::kMulRows || op == Op::kUnaryRow) {
    for (int r = 1; r < 32; ++r)
      for (int c = 0; c < 32; ++c) in.b[at(r, c)] = NAN;
  }
  if (op == Op::kAddCols || op == Op::kSubCols || op == Op::kMulCols || op == Op::kUnaryCol) {
    for (int r = 0; r < 32; ++r)
      for (int c = 1; c < 32; ++c) in.b[at(r, c)] = NAN;
  }
  if (op == Op::kAddScalar || op == Op::kSubScalar || op == Op::kMulScalar ||
      op == Op::kUnaryScalar) {
    for (int i = 1; i < kTileElems; ++i) in.b[i] = NAN;
  }
  if (op == Op::kReduceRow || op == Op::kReduceCol || op == Op::kReduceScalar ||
      op == Op::kReduceMaxRow) {
    // The scaler tile as tt-metal's generator writes it: the first row of each face.
    for (int i = 0; i < kTileElems; ++i) in.b[i] = 0.0f;
    for (int r : {0, 16})
      for (int c = 0; c < 32; ++c) in.b[at(r, c)] = 0.5f;
  }
  if (op == Op::kMask) {
    for (int i = 0; i < kTileElems; ++i) in.b[i] = (i % 3 == 0) ? 0.0f : 1.0f;
  }
  return in;
}

struct Expected {
  std::vector<double> value;     // float64 reference (already rounded where the op is exact)
  double tol = 0;                // absolute tolerance per element, 0 = bitwise
  std::vector<double> tol_each;  // per-element tolerance when non-empty
};

Expected reference(Op op, const Mode& m, const Inputs& in) {
  auto A = [&](int t, int r, int c) { return double{in.a[t * kTileElems + tile_index(r, c)]}; };
  auto B = [&](int t, int r, int c) { return double{in.b[t * kTileElems + tile_index(r, c)]}; };
  Expected e;
  e.value.assign(kTileElems, 0.0);
  const bool bf16_dst = m.numerics == NumericsMode::kFaithful && !m.fp32_dest;
  const double ulp = bf16_dst ? std::ldexp(1.0, -8) : std::ldexp(1.0, -24);  // relative half-ulp
  for (int r = 0; r < 32; ++r) {
    for (int c = 0; c < 32; ++c) {
      const int i = tile_index(r, c);
      const double a = A(0, r, c), b = B(0, r, c);
      double v = 0;
      switch (op) {
        case Op::kCopy:
          v = fin(m, a);
          break;
        case Op::kAdd:
          v = fin(m, a + b);
          break;
        case Op::kSub:
          v = fin(m, a - b);
          break;
        case Op::kMul:
          v = fin(m, a * b);
          break;
        case Op::kMulTwice:
          v = fin(m, double{fin(m, a * b)} + A(1, r, c) * B(1, r, c));
          break;
        case Op::kAddAccToDest:
          v = fin(m, A(1, r, c) + double{static_cast<float>(a + b)});
          break;
        case Op::kAddRows:
          v = fin(m, a + B(0, 0, c));
          break;
        case Op::kAddCols:
          v = fin(m, a + B(0, r, 0));
          break;
        case Op::kAddScalar:
          v = fin(m, a + B(0, 0, 0));
          break;
        case Op::kSubRows:
          v = fin(m, a - B(0, 0, c));
          break;
        case Op::kSubCols:
          v = fin(m, a - B(0, r, 0));
          break;
        case Op::kSubScalar:
          v = fin(m, a - B(0, 0, 0));
          break;
        case Op::kMulRows:
          v = fin(m, a * B(0, 0, c));
          break;
        case Op::kMulCols:
          v = fin(m, a * B(0, r, 0));
          break;
        case Op::kMulScalar:
          v = fin(m, a * B(0, 0, 0));
          break;
        case Op::kUnaryRow:
          v = B(0, 0, c);
          break;
        case Op::kUnaryCol:
          v = B(0, r, 0);
          break;
        case Op::kUnaryScalar:
          v = B(0, 0, 0);
          break;
        case Op::kSfpuAdd:
          v = fin(m, a + b);
          break;
        case Op::kSfpuSub:
          v = fin(m, a - b);
          break;
        case Op::kSfpuMul:
          v = fin(m, a * b);
          break;
        case Op::kFill:
          v = fin(m, kFillValue);
          break;
        case Op::kMask:
          v = b == 0.0 ? 0.0 : a;
          break;
        case Op::kSquare:
          v = fin(m, a * a);
          break;
        case Op::kAddUnary:
          v = fin(m, a + kUnaryScalar);
          break;
        case Op::kSubUnary:
          v = fin(m, a - kUnaryScalar);
          break;
        case Op::kMulUnary:
          v = fin(m, a * kUnaryScalar);
          break;
        case Op::kRsqrt:
          v = 1.0 / std::sqrt(a);
          break;
        case Op::kRecip:
          v = 1.0 / a;
          break;
        case Op::kSqrt:
          v = std::sqrt(a);
          break;
        default:
          break;
      }
      e.value[i] = v;
    }
  }
  if (op == Op::kRsqrt || op == Op::kRecip || op == Op::kSqrt) {
    // fp32 SFPU math, then dst rounding: within one ulp of dst's precision.
    e.tol_each.resize(kTileElems);
    for (int i = 0; i < kTileElems; ++i) e.tol_each[i] = 2 * ulp * std::fabs(e.value[i]);
  }
  const double s = 0.5;  // scaler
  auto sum_tol = [&](double abs_sum, double value) {
    return 64 * std::ldexp(1.0, -24) * abs_sum + ulp * (abs_sum + std::fabs(value));
  };
  if (op == Op::kReduceRow || op == Op::kReduceMaxRow) {
    e.tol_each.assign(kTileElems, 0.0);
    for (int r = 0; r < 32; ++r) {
      double sum = 0, abs_sum = 0, mx = -INFINITY;
      for (int t = 0; t < (op == Op::kReduceRow ? 2 : 1); ++t) {
        for (int c = 0; c < 32; ++c) {
          sum += A(t, r, c) * s;
          abs_sum += std::fabs(A(t, r, c) * s);
          mx = std::max(mx, A(t, r, c) * s);
        }
      }
      const int i = tile_index(r, 0);
      // MAX combines with the zeroed dst: max(0, row max).
      e.value[i] = op == Op::kReduceRow ? sum : fin(m, std::max(0.0, mx));
      e.tol_each[i] = op == Op::kReduceRow ? 2 * sum_tol(abs_sum, sum) : 0;
    }
  }
  if (op == Op::kReduceCol) {
    e.tol_each.assign(kTileElems, 0.0);
    for (int c = 0; c < 32; ++c) {
      double sum = 0, abs_sum = 0;
      for (int r = 0; r < 32; ++r) {
        sum += A(0, r, c) * s;
        abs_sum += std::fabs(A(0, r, c) * s);
      }
      e.value[tile_index(0, c)] = sum;
      e.tol_each[tile_index(0, c)] = sum_tol(abs_sum, sum);
    }
  }
  if (op == Op::kReduceScalar) {
    e.tol_each.assign(kTileElems, 0.0);
    double sum = 0, abs_sum = 0;
    for (int r = 0; r < 32; ++r) {
      for (int c = 0; c < 32; ++c) {
        sum += A(0, r, c) * s;
        abs_sum += std::fabs(A(0, r, c) * s);
      }
    }
    e.value[0] = sum;
    e.tol_each[0] = sum_tol(abs_sum, sum);
  }
  if (op == Op::kMatmul || op == Op::kMatmulTransposed) {
    e.tol_each.assign(kTileElems, 0.0);
    for (int r = 0; r < 32; ++r) {
      for (int c = 0; c < 32; ++c) {
        double sum = 0, abs_sum = 0;
        for (int k = 0; k < 32; ++k) {
          const double t = op == Op::kMatmul ? A(0, r, k) * B(1, k, c) + A(1, r, k) * B(0, k, c)
                                             : A(0, r, k) * B(1, c, k);
          sum += t;
          abs_sum += std::fabs(A(0, r, k) * B(1, k, c)) +
                     (op == Op::kMatmul ? std::fabs(A(1, r, k) * B(0, k, c)) : 0.0);
        }
        e.value[tile_index(r, c)] = sum;
        e.tol_each[tile_index(r, c)] = 2 * sum_tol(abs_sum, sum);
      }
    }
  }
  return e;
}

class OpArithmetic : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(OpArithmetic, MatchesFloat64TileReference) {
  const Op op = static_cast<Op>(std::get<0>(GetParam()));
  const Mode& mode = kModes[std::get<1>(GetParam())];
  DeviceConfig cfg = small_grid(1, 1);
  cfg.numerics = mode.numerics;
  cfg.sanitizer = SanitizerMode::kError;  // every op kernel here is also a clean kernel
  Device d(cfg);
  const Inputs in = make_inputs(op);
  const Buffer a = make_buffer(d, in.a, DataFormat::Float16_b);
  const Buffer b = make_buffer(d, in.b, DataFormat::Float16_b);
  const Buffer out = make_buffer(d, std::vector<float>(kTileElems, NAN), DataFormat::Float32);
  ComputeConfig cc;
  cc.fp32_dest_acc_en = mode.fp32_dest;
  const Status s = run_single(d, &op_compute, OpArgs{op}, a, b, out, 2, cc);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_TRUE(d.last_run().ok());
  const std::vector<float> got = read_all(d, out);
  const Expected e = reference(op, mode, in);
  int bad = 0;
  for (int i = 0; i < kTileElems && bad < 5; ++i) {
    const double tol = e.tol_each.empty() ? e.tol : e.tol_each[i];
    const bool ok = tol == 0 ? (got[i] == static_cast<float>(e.value[i]) ||
                                (std::isnan(got[i]) && std::isnan(e.value[i])))
                             : std::fabs(got[i] - e.value[i]) <= tol;
    if (!ok) {
      ++bad;
      ADD_FAILURE() << op_name(op) << " " << mode.name << " element " << i << ": got " << got[i]
                    << " expected " << e.value[i] << " tol " << tol;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpArithmetic,
                         ::testing::Combine(::testing::Range(0, static_cast<int>(Op::kCount)),
                                            ::testing::Range(0, 3)),
                         [](const ::testing::TestParamInfo<std::tuple<int, int>>& info) {
                           return std::string(op_name(static_cast<Op>(std::get<0>(info.param)))) +
                                  "_" + kModes[std::get<1>(info.param)].name;
                         });

// ---------------------------------------------------------------------------------------------
// Numerics rules, pinned with hand-computed values.

// in (fp32 tile) -> copy into dst -> pack to `out_format`.
std::vector<uint8_t> copy_through(NumericsMode numerics, const std::vector<float>& tile,
                                  DataFormat out_format, ComputeConfig cc) {
  DeviceConfig cfg = small_grid(1, 1);
  cfg.numerics = numerics;
  Device d(cfg);
  const Buffer in = make_buffer(d, tile, DataFormat::Float32);
  Buffer out;
  EXPECT_TRUE(d.create_buffer(1, out_format, &out).ok());
  Program p(d);
  const CoreCoord core{0, 0};
  EXPECT_TRUE(p.create_circular_buffer(core, kIn0, DataFormat::Float32, 2).ok());
  EXPECT_TRUE(p.create_circular_buffer(core, kOut, out_format, 2).ok());
  auto r = p.create_kernel(KernelKind::kReader, core, &read_tiles);
  auto c = p.create_kernel(KernelKind::kCompute, core, &copy_compute, "copy", cc);
  auto w = p.create_kernel(KernelKind::kWriter, core, &write_tiles);
  p.set_runtime_args(r, core, IoArgs{in.address, 0, 1, kIn0});
  p.set_runtime_args(c, core, CountArgs{1});
  p.set_runtime_args(w, core, IoArgs{out.address, 0, 1, kOut});
  const Status s = d.run(p);
  EXPECT_TRUE(s.ok()) << s.to_string();
  std::vector<uint8_t> bytes(tile_size(out_format));
  EXPECT_TRUE(d.read_buffer(out, bytes.data(), bytes.size()).ok());
  return bytes;
}

uint16_t bf16_at(const std::vector<uint8_t>& bytes, int i) {
  uint16_t h;
  std::memcpy(&h, bytes.data() + 2 * i, 2);
  return h;
}

float f32_at(const std::vector<uint8_t>& bytes, int i) {
  float f;
  std::memcpy(&f, bytes.data() + 4 * i, 4);
  return f;
}

// Wormhole ISA documentation, Packers/FormatConversion.md: fp32 -> bf16 rounds to nearest with
// ties away from zero, flushes denormals and -0 to +0 and turns NaN into Inf (the 8-bit exponent
// is kept, the mantissa dropped); fp32 -> fp32 is the identity (denormals and -0 kept).
TEST(Numerics, PackerRoundsTiesAwayFlushesDenormalsAndNegativeZero) {
  std::vector<float> t(kTileElems, 1.0f);
  t[0] = 1.0f + 0x1p-8f;      // halfway between bf16 1.0 (0x3f80) and 0x3f81
  t[1] = -(1.0f + 0x1p-8f);   // halfway, negative
  t[2] = 1.0f + 3 * 0x1p-8f;  // halfway between 0x3f81 (odd) and 0x3f82 (even)
  t[3] = 1e-40f;              // fp32 denormal
  t[4] = -0.0f;
  t[5] = 1.0f + 0x1p-9f;    // below half: rounds down either way
  t[6] = 1.5f * 0x1p-126f;  // smallest normals survive
  t[7] = std::numeric_limits<float>::quiet_NaN();
  t[8] = -std::numeric_limits<float>::quiet_NaN();
  ComputeConfig cc;
  cc.fp32_dest_acc_en = true;
  cc.unpack_to_dest_fp32 = true;  // dst holds the fp32 values exactly
  const auto faithful = copy_through(NumericsMode::kFaithful, t, DataFormat::Float16_b, cc);
  EXPECT_EQ(bf16_at(faithful, 0), 0x3f81);
  EXPECT_EQ(bf16_at(faithful, 1), 0xbf81);
  EXPECT_EQ(bf16_at(faithful, 2), 0x3f82);
  EXPECT_EQ(bf16_at(faithful, 3), 0x0000);
  EXPECT_EQ(bf16_at(faithful, 4), 0x0000);
  EXPECT_EQ(bf16_at(faithful, 5), 0x3f80);
  EXPECT_EQ(bf16_at(faithful, 6), 0x00c0);
  EXPECT_EQ(bf16_at(faithful, 7), 0x7f80);  // +Inf
  EXPECT_EQ(bf16_at(faithful, 8), 0xff80);  // -Inf
  // Exact mode packs with the host's round-to-nearest-even and keeps denormals and -0.
  const auto exact = copy_through(NumericsMode::kExact, t, DataFormat::Float16_b, cc);
  EXPECT_EQ(bf16_at(exact, 0), 0x3f80);
  EXPECT_EQ(bf16_at(exact, 1), 0xbf80);
  EXPECT_EQ(bf16_at(exact, 2), 0x3f82);
  EXPECT_EQ(bf16_at(exact, 3), float_to_bf16(1e-40f).bits);
  EXPECT_NE(bf16_at(exact, 3), 0x0000);
  EXPECT_EQ(bf16_at(exact, 4), 0x8000);
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16{bf16_at(exact, 7)})));
  // The fp32 packer path is the identity in both modes.
  const auto f32 = copy_through(NumericsMode::kFaithful, t, DataFormat::Float32, cc);
  EXPECT_EQ(f32_at(f32, 3), 1e-40f);
  EXPECT_EQ(float_bits(f32_at(f32, 4)), 0x80000000u);
  EXPECT_EQ(f32_at(f32, 0), 1.0f + 0x1p-8f);
  EXPECT_TRUE(std::isnan(f32_at(f32, 7)));
  const auto f32_exact = copy_through(NumericsMode::kExact, t, DataFormat::Float32, cc);
  EXPECT_EQ(f32_at(f32_exact, 3), 1e-40f);
  EXPECT_EQ(float_bits(f32_at(f32_exact, 4)), 0x80000000u);
}

TEST(Numerics, Fp32DataLosesMantissaInSourceRegistersUnlessUnpackedToDest) {
  std::vector<float> t(kTileElems, 1.0f + 0x1p-20f);  // needs 20 mantissa bits; TF32 keeps 10
  t[1] = 1.0f + 0x1p-10f;                             // representable in TF32
  ComputeConfig cc;
  cc.fp32_dest_acc_en = true;
  const auto via_srca = copy_through(NumericsMode::kFaithful, t, DataFormat::Float32, cc);
  EXPECT_EQ(f32_at(via_srca, 0), 1.0f);
  EXPECT_EQ(f32_at(via_srca, 1), 1.0f + 0x1p-10f);
  cc.unpack_to_dest_fp32 = true;
  const auto to_dest = copy_through(NumericsMode::kFaithful, t, DataFormat::Float32, cc);
  EXPECT_EQ(f32_at(to_dest, 0), 1.0f + 0x1p-20f);
  cc.unpack_to_dest_fp32 = false;
  const auto exact = copy_through(NumericsMode::kExact, t, DataFormat::Float32, cc);
  EXPECT_EQ(f32_at(exact, 0), 1.0f + 0x1p-20f);
  // A 16-bit dst keeps only bf16 even with the fp32 path.
  cc.fp32_dest_acc_en = false;
  cc.unpack_to_dest_fp32 = true;
  const auto bf16_dst = copy_through(NumericsMode::kFaithful, t, DataFormat::Float32, cc);
  EXPECT_EQ(f32_at(bf16_dst, 1), 1.0f);  // 1 + 2^-10 rounds to 1.0 in bf16
}

// One FPU op result in each mode: 1 + 2^-9 needs 10 bits, so a 16-bit dst rounds it to 1.
TEST(Numerics, DstRoundsToBf16AfterEachFpuOpUnlessFp32DestAcc) {
  std::vector<float> a(2 * kTileElems, 1.0f), b(2 * kTileElems, 0x1p-9f);
  for (int i = 0; i < kTileElems; ++i) b[kTileElems + i] = 0x1p-9f;
  auto run = [&](NumericsMode numerics, bool fp32_dest, Op op) {
    DeviceConfig cfg = small_grid(1, 1);
    cfg.numerics = numerics;
    Device d(cfg);
    const Buffer ba = make_buffer(d, a, DataFormat::Float16_b);
    const Buffer bb = make_buffer(d, b, DataFormat::Float16_b);
    const Buffer out = make_buffer(d, std::vector<float>(kTileElems, 0), DataFormat::Float32);
    ComputeConfig cc;
    cc.fp32_dest_acc_en = fp32_dest;
    EXPECT_TRUE(run_single(d, &op_compute, OpArgs{op}, ba, bb, out, 2, cc).ok());
    return read_all(d, out)[5];
  };
  EXPECT_EQ(run(NumericsMode::kExact, false, Op::kAdd), 1.0f + 0x1p-9f);
  EXPECT_EQ(run(NumericsMode::kFaithful, false, Op::kAdd), 1.0f);
  EXPECT_EQ(run(NumericsMode::kFaithful, true, Op::kAdd), 1.0f + 0x1p-9f);
  // Two products accumulated: 2^-9 + 2^-9 = 2^-8 is exact in every mode...
  EXPECT_EQ(run(NumericsMode::kFaithful, false, Op::kMulTwice), 0x1p-8f);
  // ...but the SFPU result is rounded into a 16-bit dst too: 1 + 2^-9 -> 1.
  EXPECT_EQ(run(NumericsMode::kFaithful, false, Op::kSfpuAdd), 1.0f);
  EXPECT_EQ(run(NumericsMode::kExact, false, Op::kSfpuAdd), 1.0f + 0x1p-9f);
}

// mul_tiles accumulates within an acquire; every release zeroes its section, so each of many
// acquire cycles starts from zero (half-sync alternates sections, full-sync reuses one).
struct CycleArgs {
  uint32_t cycles;
};
void mul_cycles(const CycleArgs& a) {
  mul_tiles_init(kIn0, kIn1);
  cb_wait_front(kIn0, 2);
  cb_wait_front(kIn1, 2);
  for (uint32_t i = 0; i < a.cycles; ++i) {
    tile_regs_acquire();
    mul_tiles(kIn0, kIn1, 0, 0, 0);
    mul_tiles(kIn0, kIn1, 0, 0, 3);
    mul_tiles(kIn0, kIn1, 0, 0, 3);  // slot 3: 2ab
    tile_regs_commit();
    tile_regs_wait();
    cb_reserve_back(kOut, 2);
    pack_tile(0, kOut, 0);
    pack_tile(3, kOut, 1);
    cb_push_back(kOut, 2);
    tile_regs_release();
  }
  cb_pop_front(kIn0, 2);
  cb_pop_front(kIn1, 2);
}

TEST(Numerics, ReleaseZeroesSoEveryAcquireStartsFromZero) {
  for (bool full_sync : {false, true}) {
    Device d(small_grid(1, 1));
    std::vector<float> a(2 * kTileElems, 3.0f), b(2 * kTileElems, 0.5f);
    const Buffer ba = make_buffer(d, a, DataFormat::Float16_b);
    const Buffer bb = make_buffer(d, b, DataFormat::Float16_b);
    const uint32_t cycles = 5;
    const Buffer out =
        make_buffer(d, std::vector<float>(2 * cycles * kTileElems, 0), DataFormat::Float32);
    ComputeConfig cc;
    cc.dst_full_sync_en = full_sync;
    ASSERT_TRUE(run_single(d, &mul_cycles, CycleArgs{cycles}, ba, bb, out, 2, cc).ok());
    const std::vector<float> got = read_all(d, out);
    for (uint32_t t = 0; t < 2 * cycles; ++t) {
      EXPECT_EQ(got[t * kTileElems + 17], t % 2 == 0 ? 1.5f : 3.0f) << t << " " << full_sync;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Version- and config-dependent semantics. One kernel, one case per test; element 5 (row 0) and
// element tile_index(20, 5) (row 20) of the packed fp32 result are read back.

enum class Sem : uint32_t {
  kBcastColsOntoCopy,  // copy in0 to slot 0, then mul_tiles_bcast_cols(in0, in1) onto it
  kReuseMulA,          // copy in0, binary_dest_reuse_tiles<ELWMUL, DEST_TO_SRCA>(in1)
  kReuseSubA,          // dst - in1
  kReuseSubB,          // in1 - dst
  kMul,                // mul_tiles(in0, in1) on a fresh slot
  kMatmul,             // matmul_tiles(in0, in1) on a fresh slot
  kCopyBoth,           // copy in0 to slot 0 and in1 to slot 1; pack both
  kCarryReduceRow,     // copy in0 tile 0, then row-reduce in0 tile 1 (scaler: in1 tile 0) onto it
};
struct SemArgs {
  Sem sem;
  uint32_t tiles = 1;  // of each input
};
void sem_compute(const SemArgs& a) {
  cb_wait_front(kIn0, a.tiles);
  cb_wait_front(kIn1, a.tiles);
  tile_regs_acquire();
  switch (a.sem) {
    case Sem::kBcastColsOntoCopy:
      copy_tile(kIn0, 0, 0);
      sanitizer_allow_accumulate(0);
      mul_bcast_cols_init_short(kIn0, kIn1);
      mul_tiles_bcast_cols(kIn0, kIn1, 0, 0, 0);
      break;
    case Sem::kReuseMulA:
      copy_tile(kIn0, 0, 0);
      binary_dest_reuse_tiles_init<EltwiseBinaryType::ELWMUL,
                                   EltwiseBinaryReuseDestType::DEST_TO_SRCA>(kIn1);
      binary_dest_reuse_tiles<EltwiseBinaryType::ELWMUL, EltwiseBinaryReuseDestType::DEST_TO_SRCA>(
          kIn1, 0, 0);
      break;
    case Sem::kReuseSubA:
      copy_tile(kIn0, 0, 0);
      binary_dest_reuse_tiles<EltwiseBinaryType::ELWSUB, EltwiseBinaryReuseDestType::DEST_TO_SRCA>(
          kIn1, 0, 0);
      break;
    case Sem::kReuseSubB:
      copy_tile(kIn0, 0, 0);
      binary_dest_reuse_tiles<EltwiseBinaryType::ELWSUB, EltwiseBinaryReuseDestType::DEST_TO_SRCB>(
          kIn1, 0, 0);
      break;
    case Sem::kMul:
      mul_tiles_init(kIn0, kIn1);
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case Sem::kMatmul:
      mm_init(kIn0, kIn1, kOut);
      matmul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case Sem::kCopyBoth:
      copy_tile(kIn0, 0, 0);
      copy_tile(kIn1, 0, 1);
      break;
    case Sem::kCarryReduceRow:
      copy_tile(kIn0, 0, 0);
      sanitizer_allow_accumulate(0);
      reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(kIn0, kIn1, kOut);
      reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(kIn0, kIn1, 1, 0, 0);
      reduce_uninit();
      break;
  }
  tile_regs_commit();
  tile_regs_wait();
  const uint32_t n = a.sem == Sem::kCopyBoth ? 2 : 1;
  cb_reserve_back(kOut, n);
  for (uint32_t i = 0; i < n; ++i) pack_tile(i, kOut, i);
  cb_push_back(kOut, n);
  tile_regs_release();
  cb_pop_front(kIn0, a.tiles);
  cb_pop_front(kIn1, a.tiles);
}

// Runs `sem` on constant tiles in0 = x, in1 = y (format `in`); returns the fp32 output tiles.
std::vector<float> run_sem(Sem sem, float x, float y, ComputeConfig cc, DeviceConfig cfg = {},
                           DataFormat in = DataFormat::Float16_b) {
  cfg.grid_x = cfg.grid_y = 1;
  cfg.host_threads = 1;
  Device d(cfg);
  const Buffer b0 = make_buffer(d, std::vector<float>(kTileElems, x), in);
  const Buffer b1 = make_buffer(d, std::vector<float>(kTileElems, y), in);
  const uint32_t n = sem == Sem::kCopyBoth ? 2 : 1;
  const Buffer out = make_buffer(d, std::vector<float>(n * kTileElems, 0.0f), DataFormat::Float32);
  cc.fp32_dest_acc_en = true;
  const Status st = run_single(d, &sem_compute, SemArgs{sem}, b0, b1, out, 1, cc);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return read_all(d, out);
}

const int kRow0 = tile_index(0, 5);
const int kRow20 = tile_index(20, 5);

// tt-llk tt_llk_wormhole_b0/llk_lib/llk_math_eltwise_binary.h: at commit 001c23a4 the
// broadcast-column multiply with fidelity phases (HiFi2..4) ZEROACCs faces 0-1 before the op and
// faces 2-3 only with dest reuse, so rows 0-15 are assigned and rows 16-31 accumulated; at
// 796bc38b both are gated on dest reuse (the whole tile accumulates). LoFi accumulates in both.
TEST(Llk, BcastColsAtHiFiAssignsFacesZeroAndOneIn001c23a4) {
  DeviceConfig cfg;
  EXPECT_EQ(cfg.llk, LlkVersion::k796bc38b);  // the default: accumulate
  ComputeConfig cc;
  std::vector<float> got = run_sem(Sem::kBcastColsOntoCopy, 2.0f, 3.0f, cc, cfg);
  EXPECT_EQ(got[kRow0], 8.0f);  // 2 + 2·3
  EXPECT_EQ(got[kRow20], 8.0f);
  cfg.llk = LlkVersion::k001c23a4;
  got = run_sem(Sem::kBcastColsOntoCopy, 2.0f, 3.0f, cc, cfg);
  EXPECT_EQ(got[kRow0], 6.0f);   // faces 0-1 zeroed first
  EXPECT_EQ(got[kRow20], 8.0f);  // faces 2-3 accumulate
  cc.math_fidelity = MathFidelity::LoFi;
  got = run_sem(Sem::kBcastColsOntoCopy, 2.0f, 3.0f, cc, cfg);
  EXPECT_EQ(got[kRow0], 8.0f);
  EXPECT_EQ(got[kRow20], 8.0f);
}

// tt-llk llk_math_eltwise_binary.h (dest reuse): dst moves into SrcA (DEST_TO_SRCA) or SrcB
// (DEST_TO_SRCB) and the slot is zeroed, so the op assigns, a multiply included; tt-metal
// compute_kernel_api/eltwise_binary.h binary_dest_reuse_tiles.
TEST(Llk, DestReuseMovesDstIntoASourceAndAssigns) {
  const ComputeConfig cc;
  EXPECT_EQ(run_sem(Sem::kReuseMulA, 2.0f, 3.0f, cc)[kRow20], 6.0f);   // not 2 + 6
  EXPECT_EQ(run_sem(Sem::kReuseSubA, 2.0f, 3.0f, cc)[kRow20], -1.0f);  // dst - cb
  EXPECT_EQ(run_sem(Sem::kReuseSubB, 2.0f, 3.0f, cc)[kRow20], 1.0f);   // cb - dst
}

// Wormhole ISA documentation, ELWMUL.md and MVMUL.md: per fidelity phase the multiplier takes 5
// bits of SrcA's significand and 7 of SrcB's; SrcA drops its TF32 LSB. x = 1 + 2^-7 has its low
// bit in SrcA's second 5-bit group and in SrcB's 4-bit low group, so each phase adds a term:
// LoFi 1, HiFi2 1 + 2^-7 (A_lo·B_hi), HiFi3 1 + 2^-6 (A_hi·B_lo), HiFi4 the exact x².
TEST(Numerics, MathFidelityPhasesConsumeTheirOperandBits) {
  const float x = 1.0f + 0x1p-7f;
  const float expect[] = {1.0f, 1.0f + 0x1p-7f, 1.0f + 0x1p-6f, x * x};
  for (MathFidelity f :
       {MathFidelity::LoFi, MathFidelity::HiFi2, MathFidelity::HiFi3, MathFidelity::HiFi4}) {
    ComputeConfig cc;
    cc.math_fidelity = f;
    EXPECT_EQ(run_sem(Sem::kMul, x, x, cc)[kRow20], expect[int(f)]) << int(f);
    EXPECT_EQ(run_sem(Sem::kMatmul, x, x, cc)[kRow20], 32 * expect[int(f)]) << int(f);
  }
  // Matmul feeds in0 to SrcB and in1 to SrcA (MVMUL: Dst += SrcB @ SrcA): at HiFi2 the low bit
  // survives only in SrcA.
  ComputeConfig hifi2;
  hifi2.math_fidelity = MathFidelity::HiFi2;
  EXPECT_EQ(run_sem(Sem::kMatmul, x, 1.0f, hifi2)[kRow20], 32.0f);
  EXPECT_EQ(run_sem(Sem::kMatmul, 1.0f, x, hifi2)[kRow20], 32.0f * x);
  // SrcA's TF32 LSB (2^-10) is dropped even at HiFi4; SrcB keeps it.
  const float t = 1.0f + 0x1p-10f;
  EXPECT_EQ(run_sem(Sem::kMul, t, 1.0f, {}, {}, DataFormat::Float32)[kRow20], 1.0f);
  EXPECT_EQ(run_sem(Sem::kMul, 1.0f, t, {}, {}, DataFormat::Float32)[kRow20], t);
  // Off, or in exact mode, products are exact at any fidelity.
  ComputeConfig lofi;
  lofi.math_fidelity = MathFidelity::LoFi;
  DeviceConfig off;
  off.math_fidelity_phases = false;
  EXPECT_EQ(run_sem(Sem::kMul, x, x, lofi, off)[kRow20], x * x);
  DeviceConfig exact;
  exact.numerics = NumericsMode::kExact;
  EXPECT_EQ(run_sem(Sem::kMul, x, x, lofi, exact)[kRow20], x * x);
}

// tt-metal ComputeConfig::unpack_to_dest_mode (tt_metal/api/tt-metalium/kernel_types.hpp) is
// set per CB: only a CB marked UnpackToDestFp32 skips the TF32 source register on copy_tile.
TEST(Numerics, UnpackToDestFp32IsPerCb) {
  const float v = 1.0f + 0x1p-20f;  // TF32 keeps 10 mantissa bits: rounds to 1
  ComputeConfig cc;
  cc.unpack_to_dest_mode[kIn0] = UnpackToDestMode::UnpackToDestFp32;
  const std::vector<float> got = run_sem(Sem::kCopyBoth, v, v, cc, {}, DataFormat::Float32);
  EXPECT_EQ(got[kRow20], v);
  EXPECT_EQ(got[kTileElems + kRow20], 1.0f);
}

// The carried-in partial P (tile 0 of in0), the reduced tile A (tile 1 of in0) and the scaler
// (tile 0 of in1): each element distinct where the models differ, all small integers (exact).
float carry_p(int r, int c) {
  if (r % 16 == 0) return 256.0f + 4.0f * c;  // row 0 of faces 0-3 and of faces 2-3
  return c == 0 ? 2.0f * r + 1.0f : 100.0f + float((r + c) % 50);
}
float carry_a(int r, int c) { return c <= r ? 1.0f : 0.0f; }  // row r sums to r + 1
constexpr float kCarryScale = 1.0f;

// copy_tile(P) into a slot, then a row reduce of A onto it (fp32 dst); the fp32 output tile.
std::vector<float> run_carry_reduce(ReduceRowDst model, NumericsMode numerics) {
  DeviceConfig cfg = small_grid(1, 1);
  cfg.reduce_row = model;
  cfg.numerics = numerics;
  Device d(cfg);
  std::vector<float> in0(2 * kTileElems), in1(2 * kTileElems, 0.0f);
  for (int r = 0; r < kTileDim; ++r) {
    for (int c = 0; c < kTileDim; ++c) {
      in0[tile_index(r, c)] = carry_p(r, c);
      in0[kTileElems + tile_index(r, c)] = carry_a(r, c);
      if (r % 16 == 0) in1[tile_index(r, c)] = kCarryScale;  // row 0 of every face
    }
  }
  const Buffer b0 = make_buffer(d, in0, DataFormat::Float16_b);
  const Buffer b1 = make_buffer(d, in1, DataFormat::Float16_b);
  const Buffer out = make_buffer(d, std::vector<float>(kTileElems, 0.0f), DataFormat::Float32);
  ComputeConfig cc;
  cc.fp32_dest_acc_en = true;
  const Status st =
      run_single(d, &sem_compute, SemArgs{Sem::kCarryReduceRow, 2}, b0, b1, out, 2, cc);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return read_all(d, out);
}

float truncate_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u &= 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}

// tt-llk tt_llk_wormhole_b0/llk_lib/llk_math_reduce.h, _llk_math_reduce_ for REDUCE_ROW (the
// same at 001c23a4 and later, without enforce_fp32_accumulation), with the Wormhole ISA pages
// GAPOOL.md (= MVMUL's Dst += SrcB @ SrcA on 4 rows), MOVD2B.md, TRNSPSRCB.md and ELWADD.md. The
// unpacker transposes each face of A, so GAPOOL adds row R+j's pool (face row R, R = 0 or 16)
// onto dst element (R, j) — the carried-in partial's row R, not its column 0. MOVD2B moves that
// row to SrcB row 16, reading fp32 dst as bf16 (the SrcA format of a bf16 CB) by truncation;
// TRNSPSRCB makes it SrcB column 0; MOVD2B restores row 16; two ELWADDs onto a zeroed SrcA
// assign SrcB rows 16-31 to the face: column 0 and row 0 hold the truncated sums, the rest of
// faces 0 and 2 is whatever SrcB rows 17-31 held (NaN here), faces 1 and 3 keep the partial.
TEST(Llk, ReduceRowCarriedPartialAddsItsRowZeroThroughSrcB) {
  EXPECT_EQ(DeviceConfig{}.reduce_row, ReduceRowDst::kColumn);
  auto sum = [](int r) { return kCarryScale * float(r + 1); };
  const std::vector<float> llk =
      run_carry_reduce(ReduceRowDst::kSrcBTranspose, NumericsMode::kFaithful);
  const std::vector<float> fp32 =
      run_carry_reduce(ReduceRowDst::kSrcBTransposeFp32, NumericsMode::kFaithful);
  const std::vector<float> exact =
      run_carry_reduce(ReduceRowDst::kSrcBTranspose, NumericsMode::kExact);
  const std::vector<float> column =
      run_carry_reduce(ReduceRowDst::kColumn, NumericsMode::kFaithful);
  int checked = 0;
  for (int r = 0; r < kTileDim; ++r) {
    for (int c = 0; c < kTileDim; ++c) {
      const int i = tile_index(r, c);
      const int base = r < 16 ? 0 : 16, fr = r - base;  // face row
      // Default: only column 0 changes, by the partial's own column 0.
      EXPECT_EQ(column[i], c == 0 ? carry_p(r, 0) + sum(r) : carry_p(r, c)) << r << "," << c;
      if (c >= 16) {  // faces 1 and 3: untouched
        EXPECT_EQ(llk[i], carry_p(r, c)) << r << "," << c;
        EXPECT_EQ(fp32[i], carry_p(r, c)) << r << "," << c;
        continue;
      }
      if (fr != 0 && c != 0) {  // stale SrcB
        EXPECT_TRUE(std::isnan(llk[i])) << r << "," << c << ": " << llk[i];
        EXPECT_TRUE(std::isnan(fp32[i])) << r << "," << c;
        EXPECT_TRUE(std::isnan(exact[i])) << r << "," << c;
        continue;
      }
      // Column 0 (face row k) and row 0 (column k) both hold row base+k's pool plus the
      // partial's element (base, k).
      const int k = fr != 0 ? fr : c;
      const float v = carry_p(base, k) + sum(base + k);
      EXPECT_EQ(llk[i], truncate_to_bf16(v)) << r << "," << c;
      EXPECT_EQ(fp32[i], v) << r << "," << c;
      EXPECT_EQ(exact[i], v) << r << "," << c;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2 * 31);
  // The values that tell the models apart: row 3's sum carries P(0, 3) = 268, not P(3, 0) = 7,
  // and 268 + 4 = 272 is a bf16; row 4's 272 + 5 = 277 truncates to 276; row 17 carries P(16, 1).
  EXPECT_EQ(llk[tile_index(3, 0)], 272.0f);
  EXPECT_EQ(column[tile_index(3, 0)], 11.0f);
  EXPECT_EQ(llk[tile_index(4, 0)], 276.0f);
  EXPECT_EQ(fp32[tile_index(4, 0)], 277.0f);
  EXPECT_EQ(llk[tile_index(17, 0)], 260.0f + 18.0f);
}

}  // namespace
}  // namespace tilenorm::tile
