// Kernel API of the tile machine: the FPU (compute/eltwise_binary.h, the binary broadcasts of
// compute/bcast.h, compute/reduce.h, compute/matmul.h) with the multiplier's fidelity phases,
// and the sanitizer checks that go with each call.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "tile/machine/api/compute/bcast.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/matmul.h"
#include "tile/machine/api/compute/reduce.h"
#include "tile/machine/kernel_runtime.h"

namespace tilenorm::tile {

using namespace detail;  // the kernel API runtime (kernel_runtime.h)

namespace {

enum class Bin { kAdd, kSub, kMul };

// Math fidelity (Wormhole ISA documentation, ELWMUL.md and MVMUL.md): per phase the multiplier
// takes 5 significand bits of SrcA and 7 of SrcB. SrcA offers the top 10 of its TF32 significand
// (hidden bit + 9; the TF32 LSB is dropped) as hi = top 5, lo = next 5; SrcB its 11 as hi = top 7,
// lo = next 4. LoFi: A_hi·B_hi; HiFi2 adds A_lo·B_hi; HiFi3 adds A_hi·B_lo; HiFi4 adds A_lo·B_lo.
// Every partial product is exact in fp32 (at most 10 x 11 bits), so the phases sum as below.
// Returns 0 (exact products) in exact mode or with DeviceConfig::math_fidelity_phases off.
int fidelity_phases(const KernelRuntime& k) {
  if (!k.core->faithful || !k.core->config->math_fidelity_phases) return 0;
  return static_cast<int>(k.spec->config.math_fidelity) + 1;  // LoFi 1 ... HiFi4 4
}
constexpr uint32_t kSrcAHi = 0xfff80000u;  // sign, exponent, hidden + 4 bits
constexpr uint32_t kSrcA = 0xffffc000u;    // hidden + 9 bits
constexpr uint32_t kSrcBHi = 0xfffe0000u;  // hidden + 6 bits
constexpr uint32_t kSrcB = 0xffffe000u;    // hidden + 10 bits (TF32)
inline float keep(float x, uint32_t mask) { return float_from_bits(float_bits(x) & mask); }
// srca * srcb as the multiplier computes it with `phases` phases (0: exact).
inline float fidelity_product(float srca, float srcb, int phases) {
  switch (phases) {
    case 1:
      return keep(srca, kSrcAHi) * keep(srcb, kSrcBHi);
    case 2:
      return keep(srca, kSrcA) * keep(srcb, kSrcBHi);
    case 3: {
      const float b_hi = keep(srcb, kSrcBHi);
      return keep(srca, kSrcA) * b_hi + keep(srca, kSrcAHi) * (keep(srcb, kSrcB) - b_hi);
    }
    case 4:
      return keep(srca, kSrcA) * keep(srcb, kSrcB);
    default:
      return srca * srcb;
  }
}

// Tile `index` of CB `cb`.
struct TileRef {
  uint32_t cb, index;
};

// The start of an accumulating op (dst[idst] += f(a, b)): its dst slot, both operand tiles
// through the source registers, and the sanitizer's note of the accumulation.
uint32_t accumulating_operands(KernelRuntime& k, Origin chain, const char* name, TileRef in0,
                               TileRef in1, uint32_t idst, const SrcLoc& loc, float* a, float* b) {
  const uint32_t phys = dst_slot(k, idst, true, name, loc);
  unpack(k, in0.cb, in0.index, true, name, loc, a);
  unpack(k, in1.cb, in1.index, true, name, loc, b);
  if (k.core->sanitize) note_accumulate(k, phys, idst, chain, name, in0.cb, in1.cb, loc);
  return phys;
}

void fpu_binary(Bin op, BroadcastType bcast, uint32_t icb0, uint32_t icb1, uint32_t itile0,
                uint32_t itile1, uint32_t idst, const char* name, SrcLoc loc) {
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, name, loc);
  alignas(64) float a[kTileElems];
  alignas(64) float b[kTileElems];
  unpack(k, icb0, itile0, true, name, loc, a);
  unpack(k, icb1, itile1, true, name, loc, b);
  if (bcast != BroadcastType::NONE) {
    alignas(64) float t[kTileElems];
    for (int i = 0; i < kTileElems; ++i) {
      const int src = bcast == BroadcastType::ROW   ? kLayout.index[0][kLayout.col[i]]
                      : bcast == BroadcastType::COL ? kLayout.index[kLayout.row[i]][0]
                                                    : 0;
      t[i] = b[src];
    }
    std::memcpy(b, t, sizeof t);
  }
  const bool accumulate = op == Bin::kMul || k.acc_to_dest;
  if (k.core->sanitize) {
    const uint32_t p = phys;
    if (op == Bin::kMul) {
      note_accumulate(k, p, idst, Origin::kMul, name, icb0, icb1, loc);
    } else {
      if (accumulate) dst_of(k).meta[p].read = true;  // acc_to_dest reads the old value
      note_assign(k, p, idst, Origin::kAssignFpu, name, loc);
    }
  }
  switch (op) {
    case Bin::kAdd:
      if (accumulate) {
        store_tile(k, phys, [&](int i, float old) { return old + (a[i] + b[i]); });
      } else {
        store_tile(k, phys, [&](int i, float) { return a[i] + b[i]; });
      }
      break;
    case Bin::kSub:
      if (accumulate) {
        store_tile(k, phys, [&](int i, float old) { return old + (a[i] - b[i]); });
      } else {
        store_tile(k, phys, [&](int i, float) { return a[i] - b[i]; });
      }
      break;
    case Bin::kMul: {
      // in0 is SrcA, in1 SrcB.
      const int phases = fidelity_phases(k);
      if (phases > 0) {
        for (int i = 0; i < kTileElems; ++i) a[i] = fidelity_product(a[i], b[i], phases);
      } else {
        for (int i = 0; i < kTileElems; ++i) a[i] *= b[i];
      }
      // tt-llk 001c23a4 (llk_math_eltwise_binary.h): with fidelity phases, a column broadcast
      // multiply ZEROACCs faces 0-1 first, so rows 0-15 are assigned and rows 16-31 accumulate.
      if (bcast == BroadcastType::COL && k.core->config->llk == LlkVersion::k001c23a4 &&
          k.spec->config.math_fidelity != MathFidelity::LoFi) {
        store_tile(k, phys, [&](int i, float old) {
          return (kLayout.row[i] < kFaceDim ? 0.0f : old) + a[i];
        });
      } else {
        store_tile(k, phys, [&](int i, float old) { return old + a[i]; });
      }
      break;
    }
  }
  static constexpr TileOpKind kPlain[] = {TileOpKind::kAdd, TileOpKind::kSub, TileOpKind::kMul};
  static constexpr TileOpKind kBcast[] = {TileOpKind::kAddBcast, TileOpKind::kSubBcast,
                                          TileOpKind::kMulBcast};
  count(k, bcast == BroadcastType::NONE ? kPlain[int(op)] : kBcast[int(op)]);
}

}  // namespace

void binary_op_init_common(uint32_t, uint32_t, uint32_t) { current().acc_to_dest = false; }

void detail::binary_init(EltwiseBinaryType op, bool acc_to_dest) {
  current().acc_to_dest = op != EltwiseBinaryType::ELWMUL && acc_to_dest;
}

void add_tiles_init(uint32_t, uint32_t, bool acc) {
  detail::binary_init(EltwiseBinaryType::ELWADD, acc);
}
void sub_tiles_init(uint32_t, uint32_t, bool acc) {
  detail::binary_init(EltwiseBinaryType::ELWSUB, acc);
}
void mul_tiles_init(uint32_t, uint32_t) { detail::binary_init(EltwiseBinaryType::ELWMUL, false); }

void add_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t idst, SrcLoc loc) {
  fpu_binary(Bin::kAdd, BroadcastType::NONE, a, b, ia, ib, idst, "add_tiles", loc);
}
void sub_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t idst, SrcLoc loc) {
  fpu_binary(Bin::kSub, BroadcastType::NONE, a, b, ia, ib, idst, "sub_tiles", loc);
}
void mul_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t idst, SrcLoc loc) {
  fpu_binary(Bin::kMul, BroadcastType::NONE, a, b, ia, ib, idst, "mul_tiles", loc);
}

// tt-llk (llk_math_eltwise_binary.h, both commits the machine names): with dest reuse the math
// thread moves dst into SrcA / SrcB (MOVD2A / MOVD2B) and ZEROACCs the slot before the op.
void detail::binary_dest_reuse(EltwiseBinaryType op, EltwiseBinaryReuseDestType reuse, uint32_t icb,
                               uint32_t itile, uint32_t idst, SrcLoc loc) {
  static constexpr const char* kName = "binary_dest_reuse_tiles";
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, kName, loc);
  alignas(64) float c[kTileElems];
  unpack(k, icb, itile, true, kName, loc, c);
  if (k.core->sanitize) {
    note_read(k, phys, idst, kName, loc);
    note_assign(k, phys, idst, Origin::kAssignFpu, kName, loc);
  }
  Dst& d = dst_of(k);
  alignas(64) float m[kTileElems];  // the dst tile in its source register
  for (int i = 0; i < kTileElems; ++i) {
    m[i] = k.core->faithful ? round_tf32(d.data[phys][i]) : d.data[phys][i];
  }
  const bool dst_is_a = reuse == EltwiseBinaryReuseDestType::DEST_TO_SRCA;
  const float* a = dst_is_a ? m : c;
  const float* b = dst_is_a ? c : m;
  const int phases = fidelity_phases(k);
  switch (op) {
    case EltwiseBinaryType::ELWADD:
      store_tile(k, phys, [&](int i, float) { return a[i] + b[i]; });
      break;
    case EltwiseBinaryType::ELWSUB:
      store_tile(k, phys, [&](int i, float) { return a[i] - b[i]; });
      break;
    case EltwiseBinaryType::ELWMUL:
      store_tile(k, phys, [&](int i, float) { return fidelity_product(a[i], b[i], phases); });
      break;
  }
  static constexpr TileOpKind kKind[] = {TileOpKind::kAdd, TileOpKind::kSub, TileOpKind::kMul};
  count(k, kKind[int(op)]);
}

#define TN_BCAST_INIT(name, op) \
  void name(uint32_t, uint32_t) { detail::binary_init(EltwiseBinaryType::op, false); }
TN_BCAST_INIT(add_bcast_rows_init_short, ELWADD)
TN_BCAST_INIT(add_bcast_cols_init_short, ELWADD)
TN_BCAST_INIT(add_bcast_scalar_init_short, ELWADD)
TN_BCAST_INIT(sub_bcast_rows_init_short, ELWSUB)
TN_BCAST_INIT(sub_bcast_cols_init_short, ELWSUB)
TN_BCAST_INIT(sub_tiles_bcast_scalar_init_short, ELWSUB)
TN_BCAST_INIT(mul_bcast_rows_init_short, ELWMUL)
TN_BCAST_INIT(mul_bcast_cols_init_short, ELWMUL)
TN_BCAST_INIT(mul_tiles_bcast_scalar_init_short, ELWMUL)
#undef TN_BCAST_INIT

#define TN_BCAST_OP(name, op, bcast)                                                       \
  void name(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t idst, SrcLoc loc) { \
    fpu_binary(Bin::op, BroadcastType::bcast, a, b, ia, ib, idst, #name, loc);             \
  }
TN_BCAST_OP(add_tiles_bcast_rows, kAdd, ROW)
TN_BCAST_OP(add_tiles_bcast_cols, kAdd, COL)
TN_BCAST_OP(add_tiles_bcast_scalar, kAdd, SCALAR)
TN_BCAST_OP(sub_tiles_bcast_rows, kSub, ROW)
TN_BCAST_OP(sub_tiles_bcast_cols, kSub, COL)
TN_BCAST_OP(sub_tiles_bcast_scalar, kSub, SCALAR)
TN_BCAST_OP(mul_tiles_bcast_rows, kMul, ROW)
TN_BCAST_OP(mul_tiles_bcast_cols, kMul, COL)
TN_BCAST_OP(mul_tiles_bcast_scalar, kMul, SCALAR)
#undef TN_BCAST_OP

void detail::reduce_tile(PoolType pool, ReduceDim dim, uint32_t icb, uint32_t icb_scaler,
                         uint32_t itile, uint32_t itile_scaler, uint32_t idst, SrcLoc loc) {
  KernelRuntime& k = current();
  alignas(64) float a[kTileElems];
  alignas(64) float s[kTileElems];
  const uint32_t phys = accumulating_operands(k, Origin::kReduce, "reduce_tile", {icb, itile},
                                              {icb_scaler, itile_scaler}, idst, loc, a, s);
  const float scale = s[0];
  const bool is_max = pool == PoolType::MAX;
  Dst& d = dst_of(k);
  float* out = d.data[phys];
  d.dirty |= 1u << phys;
  auto combine = [&](float acc, float v) { return is_max ? std::max(acc, v) : acc + v; };
  auto finish = [&](int at, float r) {
    const float v = is_max ? std::max(out[at], r) : out[at] + r;
    out[at] = dst_round(k.core->dst_bf16, v);
  };
  const float init = is_max ? -INFINITY : 0.0f;
  auto row_pool = [&](int r) {
    float acc = init;
    for (int c = 0; c < kTileDim; ++c) acc = combine(acc, a[kLayout.index[r][c]] * scale);
    return acc;
  };
  const ReduceRowDst row_dst = k.core->config->reduce_row;
  if (dim == ReduceDim::REDUCE_ROW && row_dst != ReduceRowDst::kColumn) {
    // tt-llk llk_math_reduce.h (Wormhole), per half of the tile: the pool of rows R..R+15 lands
    // in row R (element (R, j) holds row R+j's), MOVD2B copies that row into SrcB row 16,
    // TRNSPSRCB turns it into column 0 of SrcB rows 16-31, a second MOVD2B restores row 16, and
    // two ELWADDs (SrcA zeroed) assign SrcB rows 16-31 to the face. MOVD2B reads fp32 dst as the
    // SrcA format's style: bf16 (a bf16 CB) or TF32 (fp32 data), by truncation.
    uint32_t keep = 0xffffffffu;
    if (row_dst == ReduceRowDst::kSrcBTranspose && k.core->faithful && !k.core->dst_bf16) {
      keep = detail::cb_of(k, icb, "reduce_tile", loc).format == DataFormat::Float16_b
                 ? 0xffff0000u
                 : 0xffffe000u;
    }
    for (int half = 0; half < 2; ++half) {
      const int r0 = 16 * half;
      float moved[16];
      for (int j = 0; j < 16; ++j) {
        const int at = kLayout.index[r0][j];
        finish(at, row_pool(r0 + j));
        moved[j] = float_from_bits(float_bits(out[at]) & keep);
      }
      for (int i = 0; i < 16; ++i) {
        for (int j = 0; j < 16; ++j) {
          // Off row 0 and column 0 the face receives SrcB rows 17-31 as an earlier op left them.
          const float v = i == 0   ? moved[j]
                          : j == 0 ? moved[i]
                                   : std::numeric_limits<float>::quiet_NaN();
          out[kLayout.index[r0 + i][j]] = dst_round(k.core->dst_bf16, v);
        }
      }
    }
  } else if (dim == ReduceDim::REDUCE_ROW) {
    for (int r = 0; r < kTileDim; ++r) finish(kLayout.index[r][0], row_pool(r));
  } else if (dim == ReduceDim::REDUCE_COL) {
    for (int c = 0; c < kTileDim; ++c) {
      float acc = init;
      for (int r = 0; r < kTileDim; ++r) acc = combine(acc, a[kLayout.index[r][c]] * scale);
      finish(kLayout.index[0][c], acc);
    }
  } else {
    float acc = init;
    for (int r = 0; r < kTileDim; ++r) {
      for (int c = 0; c < kTileDim; ++c) acc = combine(acc, a[kLayout.index[r][c]] * scale);
    }
    finish(0, acc);
  }
  count(k, TileOpKind::kReduce);
}

void mm_init(uint32_t, uint32_t, uint32_t, uint32_t transpose) {
  current().mm_transpose = transpose != 0;
}
void mm_init_short(uint32_t, uint32_t, uint32_t transpose) {
  current().mm_transpose = transpose != 0;
}

void matmul_tiles(uint32_t in0, uint32_t in1, uint32_t i0, uint32_t i1, uint32_t idst, SrcLoc loc) {
  KernelRuntime& k = current();
  alignas(64) float a[kTileElems];
  alignas(64) float b[kTileElems];
  const uint32_t phys = accumulating_operands(k, Origin::kMatmul, "matmul_tiles", {in0, i0},
                                              {in1, i1}, idst, loc, a, b);
  // Row-major copies so the inner loop is contiguous.
  alignas(64) float am[kTileDim][kTileDim];
  alignas(64) float bm[kTileDim][kTileDim];
  for (int r = 0; r < kTileDim; ++r) {
    for (int c = 0; c < kTileDim; ++c) {
      am[r][c] = a[kLayout.index[r][c]];
      bm[r][c] = k.mm_transpose ? b[kLayout.index[c][r]] : b[kLayout.index[r][c]];
    }
  }
  // MVMUL: in0 is SrcB, in1 SrcA (Dst += SrcB @ SrcA; ISA MVMUL.md). With fidelity phases the
  // operands are cut to the bits the phases take (HiFi3: two products, fidelity_product).
  const int phases = fidelity_phases(k);
  alignas(64) float am2[kTileDim][kTileDim];
  alignas(64) float bm2[kTileDim][kTileDim];
  if (phases > 0) {
    const uint32_t a_mask = phases == 4 || phases == 3 ? kSrcB : kSrcBHi;
    const uint32_t b_mask = phases == 1 ? kSrcAHi : kSrcA;
    for (int r = 0; r < kTileDim; ++r) {
      for (int c = 0; c < kTileDim; ++c) {
        const float x = am[r][c], y = bm[r][c];
        am[r][c] = keep(x, phases == 3 ? kSrcBHi : a_mask);
        bm[r][c] = keep(y, b_mask);
        am2[r][c] = keep(x, kSrcB) - keep(x, kSrcBHi);  // SrcB lo, for HiFi3
        bm2[r][c] = keep(y, kSrcAHi);
      }
    }
  }
  Dst& d = dst_of(k);
  float* out = d.data[phys];
  d.dirty |= 1u << phys;
  for (int r = 0; r < kTileDim; ++r) {
    float acc[kTileDim] = {};
    if (phases == 3) {
      for (int kk = 0; kk < kTileDim; ++kk) {
        for (int c = 0; c < kTileDim; ++c) acc[c] += am2[r][kk] * bm2[kk][c];
      }
    }
    for (int kk = 0; kk < kTileDim; ++kk) {
      for (int c = 0; c < kTileDim; ++c) acc[c] += am[r][kk] * bm[kk][c];
    }
    for (int c = 0; c < kTileDim; ++c) {
      float& o = out[kLayout.index[r][c]];
      o = dst_round(k.core->dst_bf16, o + acc[c]);
    }
  }
  count(k, TileOpKind::kMatmul);
}

}  // namespace tilenorm::tile
