// tt-metal path api/compute/reconfig_data_format.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
