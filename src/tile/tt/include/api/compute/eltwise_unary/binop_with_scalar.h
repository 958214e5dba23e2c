// tt-metal path api/compute/eltwise_unary/binop_with_scalar.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
