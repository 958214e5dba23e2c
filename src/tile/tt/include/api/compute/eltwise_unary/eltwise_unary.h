// tt-metal path api/compute/eltwise_unary/eltwise_unary.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
