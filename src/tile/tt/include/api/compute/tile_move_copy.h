// tt-metal path api/compute/tile_move_copy.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
