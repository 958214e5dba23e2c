// tt-metal path api/compute/eltwise_unary/sqrt.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
