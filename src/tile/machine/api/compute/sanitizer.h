// Tile-machine extension for compute kernels (no hardware counterpart, no effect on values).
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

// The next accumulating FPU op on idst adds onto the slot's current value on purpose (e.g. a
// partial copied in from a CB), so the sanitizer does not report it as an implicit accumulation.
void sanitizer_allow_accumulate(uint32_t idst, SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
