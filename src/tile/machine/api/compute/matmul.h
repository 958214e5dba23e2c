// Matmul (compute kernels; tt-metal's compute_kernel_api/matmul.h). Accumulates:
// dst[idst] += A @ B (B transposed if the init said so), A = tile i0 of in0, B = tile i1 of in1.
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

void mm_init(uint32_t in0_cb, uint32_t in1_cb, uint32_t out_cb, uint32_t transpose = 0);
void mm_init_short(uint32_t in0_cb, uint32_t in1_cb, uint32_t transpose = 0);
void matmul_tiles(uint32_t in0_cb, uint32_t in1_cb, uint32_t i0, uint32_t i1, uint32_t idst,
                  SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
