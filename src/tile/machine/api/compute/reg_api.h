// Dst register protocol (compute kernels; tt-metal's compute_kernel_api/reg_api.h). Half-sync
// (default): two sections of 8 bf16 / 4 fp32 tiles; full-sync: one of 16 / 8.
// acquire -> math ops -> commit -> wait -> pack_tile -> release. Release zeroes the section it
// frees, so a freshly acquired section reads as zero.
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

void tile_regs_acquire(SrcLoc loc = SrcLoc::current());
void tile_regs_commit(SrcLoc loc = SrcLoc::current());
void tile_regs_wait(SrcLoc loc = SrcLoc::current());
void tile_regs_release(SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
