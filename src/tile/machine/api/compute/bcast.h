// FPU broadcast ops (compute kernels; tt-metal's compute_kernel_api/bcast.h): b's row 0 (rows),
// column 0 (cols) or [0,0] (scalar) is broadcast. add/sub assign; mul accumulates.
#pragma once

#include "tile/machine/api/compute/common.h"
#include "tile/machine/api/compute/eltwise_binary.h"

namespace tilenorm::tile {

enum class BroadcastType : uint8_t { NONE, ROW, COL, SCALAR };

template <EltwiseBinaryType kOp, BroadcastType kBcast>
void init_bcast(uint32_t /*icb0*/, uint32_t /*icb1*/, uint32_t /*ocb*/) {
  detail::binary_init(kOp, false);
}
void add_bcast_rows_init_short(uint32_t icb0, uint32_t icb1);
void add_bcast_cols_init_short(uint32_t icb0, uint32_t icb1);
void add_bcast_scalar_init_short(uint32_t icb0, uint32_t icb1);
void sub_bcast_rows_init_short(uint32_t icb0, uint32_t icb1);
void sub_bcast_cols_init_short(uint32_t icb0, uint32_t icb1);
void sub_tiles_bcast_scalar_init_short(uint32_t icb0, uint32_t icb1);
void mul_bcast_rows_init_short(uint32_t icb0, uint32_t icb1);
void mul_bcast_cols_init_short(uint32_t icb0, uint32_t icb1);
void mul_tiles_bcast_scalar_init_short(uint32_t icb0, uint32_t icb1);
#define TN_DECLARE_BCAST_OP(name)                                                          \
  void name(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst, \
            SrcLoc loc = SrcLoc::current());
TN_DECLARE_BCAST_OP(add_tiles_bcast_rows)
TN_DECLARE_BCAST_OP(add_tiles_bcast_cols)
TN_DECLARE_BCAST_OP(add_tiles_bcast_scalar)
TN_DECLARE_BCAST_OP(sub_tiles_bcast_rows)
TN_DECLARE_BCAST_OP(sub_tiles_bcast_cols)
TN_DECLARE_BCAST_OP(sub_tiles_bcast_scalar)
TN_DECLARE_BCAST_OP(mul_tiles_bcast_rows)
TN_DECLARE_BCAST_OP(mul_tiles_bcast_cols)
TN_DECLARE_BCAST_OP(mul_tiles_bcast_scalar)
#undef TN_DECLARE_BCAST_OP

// Unary broadcast (assign): dst = tile itile with its row 0 / column 0 / [0,0] replicated.
namespace detail {
void unary_bcast(BroadcastType bcast, uint32_t icb, uint32_t itile, uint32_t idst, SrcLoc loc);
}
template <BroadcastType kBcast>
void unary_bcast_init(uint32_t /*icb*/, uint32_t /*ocb*/) {}
template <BroadcastType kBcast>
void unary_bcast(uint32_t icb, uint32_t itile, uint32_t idst, SrcLoc loc = SrcLoc::current()) {
  detail::unary_bcast(kBcast, icb, itile, idst, loc);
}

}  // namespace tilenorm::tile
