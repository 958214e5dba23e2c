// tt-metal path compute_kernel_api/reg_api.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
