// Unpacker format reconfiguration (compute kernels; tt-metal's
// compute_kernel_api/reconfig_data_format.h). No effect here: every unpack reads the CB's format.
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

void reconfig_data_format(uint32_t icb0, uint32_t icb1);
void reconfig_data_format_srca(uint32_t icb);
void reconfig_data_format_srcb(uint32_t icb);

}  // namespace tilenorm::tile
