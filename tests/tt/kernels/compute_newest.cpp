// Test kernel in the newest compute dialect (api/compute/*.h, kernel_main): for tile i of a
// (c_0) and b (c_1), four tiles to c_16: a times b's first row (mul_bcast_rows_init), a
// (copy_init, copy_block), a * b^T (matmul_init with the transpose) and a minus b's first
// column (sub_bcast_cols_init), after compute_kernel_hw_startup.
#include "api/compute/bcast.h"
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/matmul.h"
#include "api/compute/pack.h"
#include "api/compute/reg_api.h"
#include "api/compute/tile_move_copy.h"

void kernel_main() {
    constexpr uint32_t num_tiles = get_compile_time_arg_val(0);
    constexpr uint32_t cb_a = tt::CBIndex::c_0;
    constexpr uint32_t cb_b = tt::CBIndex::c_1;
    constexpr uint32_t cb_out = tt::CBIndex::c_16;
    compute_kernel_hw_startup(cb_a, cb_b, cb_out);
    cb_wait_front(tt::CBIndex::c_2, 1);
    for (uint32_t i = 0; i < num_tiles; ++i) {
        cb_wait_front(cb_a, 1);
        cb_wait_front(cb_b, 1);
        cb_reserve_back(cb_out, 4);
        tile_regs_acquire();
        mul_bcast_rows_init(cb_a, cb_b);
        mul_tiles_bcast_rows(cb_a, cb_b, 0, 0, 0);
        copy_init(cb_a);
        copy_block(cb_a, 0, 1, 1);
        matmul_init(cb_a, cb_b, 1);
        matmul_tiles(cb_a, cb_b, 0, 0, 2);
        sub_bcast_cols_init(cb_a, cb_b);
        sub_tiles_bcast_cols(cb_a, cb_b, 0, 0, 3);
        tile_regs_commit();
        tile_regs_wait();
        for (uint32_t r = 0; r < 4; ++r) {
            pack_tile(r, cb_out);
        }
        tile_regs_release();
        cb_push_back(cb_out, 4);
        cb_pop_front(cb_a, 1);
        cb_pop_front(cb_b, 1);
    }
    cb_pop_front(tt::CBIndex::c_2, 1);
}
