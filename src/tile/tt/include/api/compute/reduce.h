// tt-metal path api/compute/reduce.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
