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

// The older protocol: acquire_dst takes the section for the math engine and the packer at once
// (tile_regs_acquire, and the packer's wait for the math engine's release), so packs may follow
// the math ops before release_dst, which commits and releases. A math op after a pack of the
// same section is reported: on hardware that pack runs after release_dst and sees the op.
void acquire_dst(SrcLoc loc = SrcLoc::current());
void release_dst(SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
