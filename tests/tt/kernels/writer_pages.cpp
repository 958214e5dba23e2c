// Test kernel in tt-metal's dialect: writes num_tiles pages of c_16 to one buffer
// (noc_async_write_tile when TILE_NAMED is defined, else noc_async_write_page).
#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    constexpr uint32_t num_tiles = get_compile_time_arg_val(0);
    const uint32_t dst = get_arg_val<uint32_t>(0);
    constexpr auto dst_args = TensorAccessorArgs<1>();
    const auto s = TensorAccessor(dst_args, dst, get_tile_size(tt::CBIndex::c_16));
    for (uint32_t i = 0; i < num_tiles; ++i) {
        cb_wait_front(tt::CBIndex::c_16, 1);
#ifdef TILE_NAMED
        noc_async_write_tile(i, s, get_read_ptr(tt::CBIndex::c_16));
#else
        noc_async_write_page(i, s, get_read_ptr(tt::CBIndex::c_16));
#endif
        noc_async_write_barrier();
        cb_pop_front(tt::CBIndex::c_16, 1);
    }
}
