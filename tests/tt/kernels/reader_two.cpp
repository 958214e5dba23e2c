// Test kernel in tt-metal's dialect: the scaler tile (1.0 in the first row of each face, stored
// through the CB's L1 pointer) into c_2, then tile i of a into c_0 through an
// InterleavedAddrGenFast and tile i of b into c_1 through a TensorAccessor, tile-named reads.
#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    constexpr uint32_t num_tiles = get_compile_time_arg_val(0);
    constexpr auto b_args = TensorAccessorArgs<1>();
    const uint32_t a_addr = get_arg_val<uint32_t>(0);
    const uint32_t b_addr = get_arg_val<uint32_t>(1);

    cb_reserve_back(tt::CBIndex::c_2, 1);
    volatile tt_l1_ptr uint16_t* scaler =
        reinterpret_cast<volatile tt_l1_ptr uint16_t*>(get_write_ptr(tt::CBIndex::c_2));
    for (uint32_t e = 0; e < 1024; ++e) {
        scaler[e] = (e % 256) < 16 ? 0x3F80 : 0;
    }
    cb_push_back(tt::CBIndex::c_2, 1);

    const InterleavedAddrGenFast<true> a = {
        .bank_base_address = a_addr,
        .page_size = get_tile_size(tt::CBIndex::c_0),
        .data_format = get_dataformat(tt::CBIndex::c_0)};
    const auto b = TensorAccessor(b_args, b_addr, get_tile_size(tt::CBIndex::c_1));
    for (uint32_t i = 0; i < num_tiles; ++i) {
        cb_reserve_back(tt::CBIndex::c_0, 1);
        cb_reserve_back(tt::CBIndex::c_1, 1);
        noc_async_read_tile(i, a, get_write_ptr(tt::CBIndex::c_0));
        noc_async_read_tile(i, b, get_write_ptr(tt::CBIndex::c_1));
        noc_async_read_barrier();
        cb_push_back(tt::CBIndex::c_0, 1);
        cb_push_back(tt::CBIndex::c_1, 1);
    }
}
