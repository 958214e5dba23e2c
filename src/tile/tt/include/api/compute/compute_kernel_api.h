// tt-metal path api/compute/compute_kernel_api.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
