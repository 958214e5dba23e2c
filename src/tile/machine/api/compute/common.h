// What every compute API header includes (tt-metal's compute_kernel_api/common.h): the shared
// kernel API header, and the wall between the domains. A file that includes dataflow_api.h and a
// compute header does not compile, unless it defines kernels of both kinds on purpose (the
// machine's own tests, built with TILENORM_TILE_KERNELS_OF_BOTH_KINDS).
#pragma once

#if defined(TILENORM_TILE_DATAFLOW_API) && !defined(TILENORM_TILE_KERNELS_OF_BOTH_KINDS)
#error \
    "compute kernel API included in a file that includes dataflow_api.h: a kernel file includes only the API of its own kind (docs/tile-machine.md, Writing kernels)"
#endif
#define TILENORM_TILE_COMPUTE_API 1

#include "tile/machine/api/common.h"
