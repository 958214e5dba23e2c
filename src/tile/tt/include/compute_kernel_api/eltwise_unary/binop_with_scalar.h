// tt-metal path compute_kernel_api/eltwise_unary/binop_with_scalar.h: the tile machine's compute
// API.
#pragma once
#include "tilenorm_tt/compute.h"
