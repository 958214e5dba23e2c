// tt-metal path api/compute/reg_api.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
