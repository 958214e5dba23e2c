// tt-metal path api/compute/eltwise_binary_sfpu.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
