// tt-metal path api/compute/cb_api.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
