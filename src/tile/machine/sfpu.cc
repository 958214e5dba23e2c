// Kernel API of the tile machine: the SFPU (compute/eltwise_binary_sfpu.h,
// compute/eltwise_unary.h, compute/mask.h), fp32 math on dst slots, with the sanitizer checks
// that go with each call.

#include <fmt/format.h>

#include <cmath>

#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/mask.h"
#include "tile/machine/kernel_runtime.h"

namespace tilenorm::tile {

using namespace detail;  // the kernel API runtime (kernel_runtime.h)

namespace {

// SFPU: reads operand slots, computes in fp32, stores into `out`.
template <typename F>
void sfpu(uint32_t a, uint32_t b, uint32_t out, bool two_operands, TileOpKind kind,
          const char* name, const SrcLoc& loc, F&& f) {
  KernelRuntime& k = current();
  Dst& d = dst_of(k);
  const uint32_t pa = dst_slot(k, a, true, name, loc);
  const uint32_t pb = two_operands ? dst_slot(k, b, true, name, loc) : pa;
  const uint32_t po = dst_slot(k, out, true, name, loc);
  if (k.core->sanitize) {
    note_read(k, pa, a, name, loc);
    if (two_operands) note_read(k, pb, b, name, loc);
    note_assign(k, po, out, Origin::kSfpu, name, loc);
  }
  const float* x = d.data[pa];
  const float* y = d.data[pb];
  if (po == pa || po == pb) {
    alignas(64) float t[kTileElems];
    for (int i = 0; i < kTileElems; ++i) t[i] = f(x[i], y[i]);
    store_tile(k, po, [&](int i, float) { return t[i]; });
  } else {
    store_tile(k, po, [&](int i, float) { return f(x[i], y[i]); });
  }
  count(k, kind);
}

}  // namespace

void init_sfpu(uint32_t, uint32_t) { current().acc_to_dest = false; }

void add_binary_tile_init() {}
void sub_binary_tile_init() {}
void mul_binary_tile_init() {}

void add_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc) {
  sfpu(a, b, out, true, TileOpKind::kSfpuBinary, "add_binary_tile", loc,
       [](float x, float y) { return x + y; });
}
void sub_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc) {
  sfpu(a, b, out, true, TileOpKind::kSfpuBinary, "sub_binary_tile", loc,
       [](float x, float y) { return x - y; });
}
void mul_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc) {
  sfpu(a, b, out, true, TileOpKind::kSfpuBinary, "mul_binary_tile", loc,
       [](float x, float y) { return x * y; });
}
void add_binary_tile(uint32_t a, uint32_t b, SrcLoc loc) { add_binary_tile(a, b, a, loc); }
void sub_binary_tile(uint32_t a, uint32_t b, SrcLoc loc) { sub_binary_tile(a, b, a, loc); }
void mul_binary_tile(uint32_t a, uint32_t b, SrcLoc loc) { mul_binary_tile(a, b, a, loc); }

void fill_tile_init() {}
void fill_tile(uint32_t idst, float value, SrcLoc loc) {
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, "fill_tile", loc);
  if (k.core->sanitize) {
    note_assign(k, phys, idst, Origin::kFill, "fill_tile", loc);
    dst_of(k).meta[phys].fill = value;
  }
  store_tile(k, phys, [&](int, float) { return value; });
  count(k, TileOpKind::kFill);
}

void mask_tile_init() {}
void mask_tile(uint32_t idst_data, uint32_t idst_mask, SrcLoc loc) {
  KernelRuntime& k = current();
  if (k.core->sanitize && idst_mask != idst_data + 1) {
    raise(ReportKind::kMaskSlot, "mask_tile", -1, int(idst_mask), loc,
          fmt::format("mask_tile({}, {}): the hardware reads the mask from slot {} (data + 1), "
                      "not {}",
                      idst_data, idst_mask, idst_data + 1, idst_mask));
  }
  sfpu(idst_data, idst_data + 1, idst_data, true, TileOpKind::kMask, "mask_tile", loc,
       [](float x, float m) { return m == 0.0f ? 0.0f : x; });
}

void rsqrt_tile_init() {}
void rsqrt_tile(uint32_t idst, SrcLoc loc) {
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "rsqrt_tile", loc,
       [](float x, float) { return 1.0f / std::sqrt(x); });
}
void recip_tile_init() {}
void recip_tile(uint32_t idst, SrcLoc loc) {
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "recip_tile", loc,
       [](float x, float) { return 1.0f / x; });
}
void sqrt_tile_init() {}
void sqrt_tile(uint32_t idst, SrcLoc loc) {
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "sqrt_tile", loc,
       [](float x, float) { return std::sqrt(x); });
}
void square_tile_init() {}
void square_tile(uint32_t idst, SrcLoc loc) {
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "square_tile", loc,
       [](float x, float) { return x * x; });
}
void binop_with_scalar_tile_init() {}
void add_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc) {
  const float s = float_from_bits(param);
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "add_unary_tile", loc,
       [s](float x, float) { return x + s; });
}
void sub_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc) {
  const float s = float_from_bits(param);
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "sub_unary_tile", loc,
       [s](float x, float) { return x - s; });
}
void mul_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc) {
  const float s = float_from_bits(param);
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "mul_unary_tile", loc,
       [s](float x, float) { return x * s; });
}
}  // namespace tilenorm::tile
