// SFPU binary ops on dst slots (compute kernels; tt-metal's
// compute_kernel_api/eltwise_binary_sfpu.h): fp32 arithmetic, the result stored in dst's format.
// dst[out] = dst[a] op dst[b]; the two-operand form writes dst[a].
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

void add_binary_tile_init();
void sub_binary_tile_init();
void mul_binary_tile_init();
void add_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc = SrcLoc::current());
void sub_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc = SrcLoc::current());
void mul_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc = SrcLoc::current());
void add_binary_tile(uint32_t a, uint32_t b, SrcLoc loc = SrcLoc::current());
void sub_binary_tile(uint32_t a, uint32_t b, SrcLoc loc = SrcLoc::current());
void mul_binary_tile(uint32_t a, uint32_t b, SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
