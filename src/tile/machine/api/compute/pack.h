// Packer (compute kernels; tt-metal's compute_kernel_api/pack.h).
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

// Packs dst slot idst into page out_tile_index of ocb's reserved window (format conversion by
// the packer, docs/tile-machine.md "Numerics modes").
void pack_tile(uint32_t idst, uint32_t ocb, uint32_t out_tile_index = 0,
               SrcLoc loc = SrcLoc::current());
void pack_reconfig_data_format(uint32_t ocb);

}  // namespace tilenorm::tile
