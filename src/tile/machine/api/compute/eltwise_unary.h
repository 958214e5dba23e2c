// SFPU unary ops on one dst slot (compute kernels; tt-metal's compute_kernel_api/eltwise_unary/
// headers: eltwise_unary.h, fill.h, rsqrt.h, recip.h, sqrt.h, binop_with_scalar.h, and
// compute_kernel_api.h for square_tile). fp32 arithmetic, the result stored in dst's format.
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

// Hardware start-up for an SFPU kernel; kept for source compatibility (no effect on values).
void init_sfpu(uint32_t icb, uint32_t ocb);

// dst[idst] = value (every element). fill_tile(i, 0.0f) is the explicit zeroing of a slot.
void fill_tile_init();
void fill_tile(uint32_t idst, float value, SrcLoc loc = SrcLoc::current());
// In place: 1/sqrt(x), 1/x, sqrt(x), x*x.
void rsqrt_tile_init();
void rsqrt_tile(uint32_t idst, SrcLoc loc = SrcLoc::current());
void recip_tile_init();
void recip_tile(uint32_t idst, SrcLoc loc = SrcLoc::current());
void sqrt_tile_init();
void sqrt_tile(uint32_t idst, SrcLoc loc = SrcLoc::current());
void square_tile_init();
void square_tile(uint32_t idst, SrcLoc loc = SrcLoc::current());
// In place with a scalar given as fp32 bits (as tt-metal): dst = dst op bit_cast<float>(param).
void binop_with_scalar_tile_init();
void add_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc = SrcLoc::current());
void sub_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc = SrcLoc::current());
void mul_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
