// tt-metal path compute_kernel_api/tile_move_copy.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
