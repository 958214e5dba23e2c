// FPU element-wise binary ops (compute kernels; tt-metal's compute_kernel_api/eltwise_binary.h).
// add/sub: dst = a op b (dst += a op b if acc_to_dest). mul: dst += a * b ALWAYS (Wormhole
// ELWMUL; there is no assigning multiply).
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

enum class EltwiseBinaryType : uint8_t { ELWADD, ELWSUB, ELWMUL };

// Hardware start-up for a compute kernel; kept for source compatibility (no effect on values).
void binary_op_init_common(uint32_t icb0, uint32_t icb1, uint32_t ocb);

void add_tiles_init(uint32_t icb0, uint32_t icb1, bool acc_to_dest = false);
void sub_tiles_init(uint32_t icb0, uint32_t icb1, bool acc_to_dest = false);
void mul_tiles_init(uint32_t icb0, uint32_t icb1);
void add_tiles(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst,
               SrcLoc loc = SrcLoc::current());
void sub_tiles(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst,
               SrcLoc loc = SrcLoc::current());
void mul_tiles(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst,
               SrcLoc loc = SrcLoc::current());

namespace detail {
void binary_init(EltwiseBinaryType op, bool acc_to_dest);
}  // namespace detail

// Dst reuse: one operand is dst[idst] itself, moved into a source register (SrcA with
// DEST_TO_SRCA, SrcB with DEST_TO_SRCB; TF32 in faithful mode), the other tile in_tile_index of
// in_cb. The LLK zeroes the slot first, so every op, multiply included, ASSIGNS:
//   DEST_TO_SRCA: dst = dst op cb;   DEST_TO_SRCB: dst = cb op dst.
enum class EltwiseBinaryReuseDestType : uint8_t { NONE, DEST_TO_SRCA, DEST_TO_SRCB };
namespace detail {
void binary_dest_reuse(EltwiseBinaryType op, EltwiseBinaryReuseDestType reuse, uint32_t in_cb,
                       uint32_t in_tile_index, uint32_t dst_tile_index, SrcLoc loc);
}  // namespace detail
template <EltwiseBinaryType kOp, EltwiseBinaryReuseDestType kReuse>
void binary_dest_reuse_tiles_init(uint32_t /*icb0*/) {
  static_assert(kReuse != EltwiseBinaryReuseDestType::NONE, "DEST_TO_SRCA or DEST_TO_SRCB");
}
template <EltwiseBinaryType kOp, EltwiseBinaryReuseDestType kReuse>
void binary_dest_reuse_tiles(uint32_t in_cb, uint32_t in_tile_index, uint32_t dst_tile_index,
                             SrcLoc loc = SrcLoc::current()) {
  static_assert(kReuse != EltwiseBinaryReuseDestType::NONE, "DEST_TO_SRCA or DEST_TO_SRCB");
  detail::binary_dest_reuse(kOp, kReuse, in_cb, in_tile_index, dst_tile_index, loc);
}

}  // namespace tilenorm::tile
