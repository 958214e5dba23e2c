// SFPU mask (compute kernels; tt-metal's compute_kernel_api/mask.h).
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

// dst[data] = 0 where dst[data + 1] == 0. The mask argument is ignored by the hardware, which
// always reads data + 1; the sanitizer reports a mask argument != data + 1.
void mask_tile_init();
void mask_tile(uint32_t idst_data, uint32_t idst_mask, SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
