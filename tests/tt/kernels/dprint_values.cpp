// Test kernel in tt-metal's dialect: debug prints of the values a kernel streams, the line's end
// left to the run's end.
#include "api/dataflow/dataflow_api.h"
#include "api/debug/dprint.h"

void kernel_main() {
    const uint32_t n = get_arg_val<uint32_t>(0);
    DPRINT << "n=" << n << " half=" << 0.5f << ' ' << int32_t(-3) << ENDL();
    DPRINT << TileSlice(tt::CBIndex::c_0, 1, SliceRange{0, 1, 1, 0, 1, 1}) << ENDL();
    DPRINT_DATA0(DPRINT << "unended");
}
