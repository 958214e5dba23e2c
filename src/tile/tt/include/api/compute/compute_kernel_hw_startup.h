// tt-metal path api/compute/compute_kernel_hw_startup.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
