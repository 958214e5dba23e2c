// Copy a CB tile into dst (compute kernels; tt-metal's compute_kernel_api/tile_move_copy.h).
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

// Assign: dst[idst] = tile itile of icb's waited window.
void copy_tile_init(uint32_t icb);
void copy_tile_to_dst_init_short(uint32_t icb);
void copy_tile(uint32_t icb, uint32_t itile, uint32_t idst, SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
