// Test kernel in the oldest compute dialect (compute_kernel_api/*.h, NAMESPACE / MAIN): for
// tile i of a (c_0) and b (c_1), four tiles to c_16, each in its own acquire_dst section:
// a * b (argument-less mul_tiles_init), a + b (argument-less add_tiles_init), a * b^T (the
// matmul_tiles that takes the transpose per call) and the row sums of a (reduce_init_delta /
// reduce_revert_delta, the pool and dim from the REDUCE_OP / REDUCE_DIM defines, the scaler
// in c_2). MATH_AFTER_PACK adds a math op after the pack of the first section.
#include "compute_kernel_api/eltwise_binary.h"
#include "compute_kernel_api/matmul.h"
#include "compute_kernel_api/reduce.h"
#include "compute_kernel_api/tile_move_copy.h"

namespace NAMESPACE {
constexpr uint32_t num_tiles = get_compile_time_arg_val(0);

void MAIN {
    constexpr uint32_t cb_a = tt::CBIndex::c_0;
    constexpr uint32_t cb_b = tt::CBIndex::c_1;
    constexpr uint32_t cb_scaler = tt::CBIndex::c_2;
    constexpr uint32_t cb_out = tt::CBIndex::c_16;
    binary_op_init_common(cb_a, cb_b);
    cb_wait_front(cb_scaler, 1);
    for (uint32_t i = 0; i < num_tiles; ++i) {
        cb_wait_front(cb_a, 1);
        cb_wait_front(cb_b, 1);

        cb_reserve_back(cb_out, 1);
        acquire_dst(tt::DstMode::Half);
        mul_tiles_init();
        mul_tiles(cb_a, cb_b, 0, 0, 0);
        pack_tile(0, cb_out);
#ifdef MATH_AFTER_PACK
        mul_tiles(cb_a, cb_b, 0, 0, 1);  // line: math-after-pack
#endif
        release_dst(tt::DstMode::Half);
        cb_push_back(cb_out, 1);

        cb_reserve_back(cb_out, 1);
        acquire_dst(tt::DstMode::Half);
        add_tiles_init(cb_a, cb_b, true);
        add_tiles_init();
        add_tiles(cb_a, cb_b, 0, 0, 0);
        pack_tile(0, cb_out);
        release_dst(tt::DstMode::Half);
        cb_push_back(cb_out, 1);

        cb_reserve_back(cb_out, 1);
        acquire_dst(tt::DstMode::Half);
        mm_init();
        matmul_tiles(cb_a, cb_b, 0, 0, 0, true);
        pack_tile(0, cb_out);
        release_dst(tt::DstMode::Half);
        cb_push_back(cb_out, 1);

        cb_reserve_back(cb_out, 1);
        acquire_dst(tt::DstMode::Half);
        reconfig_data_format(cb_b, cb_a, cb_b, cb_scaler);
        reduce_init<true>(cb_a, cb_scaler);
        reduce_init_delta<false>(cb_a, cb_scaler, cb_out);
        reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_a, cb_scaler, 0, 0, 0);
        reduce_revert_delta(cb_out);
        pack_tile(0, cb_out);
        release_dst(tt::DstMode::Half);
        cb_push_back(cb_out, 1);

        cb_pop_front(cb_a, 1);
        cb_pop_front(cb_b, 1);
    }
    cb_pop_front(cb_scaler, 1);
}
}  // namespace NAMESPACE
