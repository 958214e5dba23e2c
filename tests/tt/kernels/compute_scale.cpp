// Test kernel in tt-metal's dialect (NAMESPACE / MAIN): out = in * SCALE in blocks of two,
// packed in order.
#include "compute_kernel_api/eltwise_unary/fill.h"
#include "compute_kernel_api/eltwise_binary_sfpu.h"
#include "compute_kernel_api/pack.h"
#include "compute_kernel_api/tile_move_copy.h"
#include "helper.h"

namespace NAMESPACE {
constexpr uint32_t num_tiles = get_compile_time_arg_val(0);

void MAIN {
    copy_tile_init(tt::CBIndex::c_0);
    for (uint32_t i = 0; i < num_tiles; i += 2) {
        cb_wait_front(tt::CBIndex::c_0, 2);
        tile_regs_acquire();
        for (uint32_t j = 0; j < 2; ++j) {
            copy_tile(tt::CBIndex::c_0, j, 2 * j);
            fill_tile(2 * j + 1, kScale);
            mul_binary_tile(2 * j, 2 * j + 1, 2 * j);
        }
        tile_regs_commit();
        tile_regs_wait();
        cb_reserve_back(tt::CBIndex::c_16, 2);
        pack_tile(0, tt::CBIndex::c_16);
        pack_tile(2, tt::CBIndex::c_16);
        cb_push_back(tt::CBIndex::c_16, 2);
        tile_regs_release();
        cb_pop_front(tt::CBIndex::c_0, 2);
    }
}
}  // namespace NAMESPACE
