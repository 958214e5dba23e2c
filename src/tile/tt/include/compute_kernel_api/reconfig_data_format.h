// tt-metal path compute_kernel_api/reconfig_data_format.h: the tile machine's compute API.
#pragma once
#include "tilenorm_tt/compute.h"
