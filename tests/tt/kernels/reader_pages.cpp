// Test kernel in tt-metal's dialect: reads num_tiles pages of one buffer into c_0.
#include "api/dataflow/dataflow_api.h"

constexpr uint32_t num_tiles = get_compile_time_arg_val(0);

void kernel_main() {
    const uint32_t src = get_arg_val<uint32_t>(0);
    constexpr auto src_args = TensorAccessorArgs<1>();
    const auto s = TensorAccessor(src_args, src, get_tile_size(tt::CBIndex::c_0));
    for (uint32_t i = 0; i < num_tiles; ++i) {
        cb_reserve_back(tt::CBIndex::c_0, 1);
        noc_async_read_page(i, s, get_write_ptr(tt::CBIndex::c_0));
        noc_async_read_barrier();
        cb_push_back(tt::CBIndex::c_0, 1);
    }
}
