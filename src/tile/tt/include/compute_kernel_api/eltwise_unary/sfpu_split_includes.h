// tt-metal path compute_kernel_api/eltwise_unary/sfpu_split_includes.h: the tile machine's compute
// API.
#pragma once
#include "tilenorm_tt/compute.h"
