// What every kernel API header of the tile machine shares. The kernel API is split by domain as
// tt-metal splits its kernel headers: cb_api.h (circular buffers, every kernel), dataflow_api.h
// (reader and writer kernels: NoC, L1 pointers; tt-metal's dataflow_api.h) and compute/*.h
// (compute kernels; tt-metal's compute_kernel_api/*.h). A kernel file includes only the headers
// of its own kind. Kernels are plain functions; every call acts on the kernel the calling fiber
// runs, and a call of another kind's API is a `kernel-api-kind` report (on hardware it does not
// compile). The trailing std::source_location is filled in by the compiler so reports name the
// line. Semantics per op: docs/tile-machine.md.
#pragma once

#include <cstdint>
#include <source_location>

#include "tile/machine/tile.h"

namespace tilenorm::tile {

using SrcLoc = std::source_location;

}  // namespace tilenorm::tile
