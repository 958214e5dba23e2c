// The compute kernel API of the tile machine under tt-metal's names (compute_kernel_api/*.h,
// api/compute/*.h).
#pragma once

#include "tile/machine/api/compute/bcast.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/mask.h"
#include "tile/machine/api/compute/matmul.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reconfig_data_format.h"
#include "tile/machine/api/compute/reduce.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tilenorm_tt/prelude.h"

using tilenorm::tile::add_bcast_cols_init_short;
using tilenorm::tile::add_bcast_rows_init_short;
using tilenorm::tile::add_bcast_scalar_init_short;
using tilenorm::tile::add_binary_tile;
using tilenorm::tile::add_binary_tile_init;
using tilenorm::tile::add_tiles;
using tilenorm::tile::add_tiles_bcast_cols;
using tilenorm::tile::add_tiles_bcast_rows;
using tilenorm::tile::add_tiles_bcast_scalar;
using tilenorm::tile::add_tiles_init;
using tilenorm::tile::add_unary_tile;
using tilenorm::tile::binary_dest_reuse_tiles;
using tilenorm::tile::binary_dest_reuse_tiles_init;
using tilenorm::tile::binary_op_init_common;
using tilenorm::tile::binop_with_scalar_tile_init;
using tilenorm::tile::BroadcastType;
using tilenorm::tile::copy_tile;
using tilenorm::tile::copy_tile_init;
using tilenorm::tile::copy_tile_to_dst_init_short;
using tilenorm::tile::EltwiseBinaryReuseDestType;
using tilenorm::tile::EltwiseBinaryType;
using tilenorm::tile::fill_tile;
using tilenorm::tile::fill_tile_init;
using tilenorm::tile::init_bcast;
using tilenorm::tile::init_sfpu;
using tilenorm::tile::mask_tile;
using tilenorm::tile::mask_tile_init;
using tilenorm::tile::matmul_tiles;
using tilenorm::tile::mm_init;
using tilenorm::tile::mm_init_short;
using tilenorm::tile::mul_bcast_cols_init_short;
using tilenorm::tile::mul_bcast_rows_init_short;
using tilenorm::tile::mul_binary_tile;
using tilenorm::tile::mul_binary_tile_init;
using tilenorm::tile::mul_tiles;
using tilenorm::tile::mul_tiles_bcast_cols;
using tilenorm::tile::mul_tiles_bcast_rows;
using tilenorm::tile::mul_tiles_bcast_scalar;
using tilenorm::tile::mul_tiles_bcast_scalar_init_short;
using tilenorm::tile::mul_tiles_init;
using tilenorm::tile::mul_unary_tile;
using tilenorm::tile::pack_reconfig_data_format;
using tilenorm::tile::pack_tile;
using tilenorm::tile::PoolType;
using tilenorm::tile::recip_tile;
using tilenorm::tile::recip_tile_init;
using tilenorm::tile::reconfig_data_format;
using tilenorm::tile::reconfig_data_format_srca;
using tilenorm::tile::reconfig_data_format_srcb;
using tilenorm::tile::reduce_init;
using tilenorm::tile::reduce_tile;
using tilenorm::tile::reduce_uninit;
using tilenorm::tile::ReduceDim;
using tilenorm::tile::rsqrt_tile;
using tilenorm::tile::rsqrt_tile_init;
using tilenorm::tile::sqrt_tile;
using tilenorm::tile::sqrt_tile_init;
using tilenorm::tile::square_tile;
using tilenorm::tile::square_tile_init;
using tilenorm::tile::sub_bcast_cols_init_short;
using tilenorm::tile::sub_bcast_rows_init_short;
using tilenorm::tile::sub_binary_tile;
using tilenorm::tile::sub_binary_tile_init;
using tilenorm::tile::sub_tiles;
using tilenorm::tile::sub_tiles_bcast_cols;
using tilenorm::tile::sub_tiles_bcast_rows;
using tilenorm::tile::sub_tiles_bcast_scalar;
using tilenorm::tile::sub_tiles_bcast_scalar_init_short;
using tilenorm::tile::sub_tiles_init;
using tilenorm::tile::sub_unary_tile;
using tilenorm::tile::tile_regs_acquire;
using tilenorm::tile::tile_regs_commit;
using tilenorm::tile::tile_regs_release;
using tilenorm::tile::tile_regs_wait;
using tilenorm::tile::unary_bcast;
using tilenorm::tile::unary_bcast_init;

// The oldest compute dialect's reduce forwarders: reduce_init_delta is the reduce's init (the
// machine has no unpacker state to keep), reduce_revert_delta its uninit. As in tt-metal, the
// pool and dimension default to the REDUCE_OP / REDUCE_DIM defines when the host sets them.
#if defined(REDUCE_OP) && defined(REDUCE_DIM)
template <bool kAtStart, PoolType kPool = REDUCE_OP, ReduceDim kDim = REDUCE_DIM>
#else
template <bool kAtStart, PoolType kPool, ReduceDim kDim>
#endif
inline void reduce_init_delta(uint32_t icb, uint32_t icb_scaler, uint32_t ocb) {
  reduce_init<kPool, kDim>(icb, icb_scaler, ocb);
}
#if defined(REDUCE_DIM)
template <ReduceDim kDim = REDUCE_DIM>
#else
template <ReduceDim kDim>
#endif
inline void reduce_revert_delta(uint32_t /*ocb*/) {
  reduce_uninit();
}

// The older matmul_tiles with the transpose of B per call (the newer API sets it at init).
inline void matmul_tiles(uint32_t in0_cb, uint32_t in1_cb, uint32_t i0, uint32_t i1, uint32_t idst,
                         uint32_t transpose,
                         tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  tilenorm::tile::mm_init_short(in0_cb, in1_cb, transpose);
  tilenorm::tile::matmul_tiles(in0_cb, in1_cb, i0, i1, idst, loc);
}
