// FPU element-wise binary ops (compute kernels; tt-metal's compute_kernel_api/eltwise_binary.h).
// add/sub: dst = a op b (dst += a op b if acc_to_dest). mul: dst += a * b ALWAYS (Wormhole
// ELWMUL; there is no assigning multiply).
#pragma once

#include "tile/machine/api/common.h"

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

}  // namespace tilenorm::tile
