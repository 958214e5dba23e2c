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

// ---------------------------------------------------------------------------------------------
// The oldest compute dialect (compute_kernel_api.h, compute_kernel_api/*.h). Signatures are
// tt-metal's; each forwards to the machine's API.
// ---------------------------------------------------------------------------------------------

namespace tt {
// tt-metal's DstMode (kernels/hostdevcommon/kernel_structs.h). The machine takes the dst sync
// mode from ComputeConfig::dst_full_sync_en, as later tt-metal does; the argument is ignored.
enum class DstMode : uint8_t { Full = 0, Half = 1, Tile = 2, NUM_DST_MODES = 3 };
}  // namespace tt

// acquire_dst / release_dst: compute_kernel_api/reg_api.h at 049e2880 takes a tt::DstMode;
// api/compute/reg_api.h at 0112bb1e, where both are deprecated, takes none. acquire_dst is the
// math engine's wait for a free section and the packer's wait for the math engine's release;
// release_dst the math engine's section done and the packer's (the machine's acquire_dst /
// release_dst: packs may come before release_dst).
inline void acquire_dst(tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  tilenorm::tile::acquire_dst(loc);
}
inline void acquire_dst(tt::DstMode /*mode*/,
                        tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  tilenorm::tile::acquire_dst(loc);
}
inline void release_dst(tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  tilenorm::tile::release_dst(loc);
}
inline void release_dst(tt::DstMode /*mode*/,
                        tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  tilenorm::tile::release_dst(loc);
}

// The argument-less inits of the single-header compute_kernel_api.h: the CBs were fixed (0 and
// 1 in, 16 out); the machine's inits keep only the op's accumulate flag and the matmul
// transpose, which these reset as upstream's did.
inline void mul_tiles_init() { mul_tiles_init(0, 1); }
inline void add_tiles_init() { add_tiles_init(0, 1, false); }
inline void sub_tiles_init() { sub_tiles_init(0, 1, false); }
inline void copy_tile_init() { copy_tile_init(0); }
inline void copy_tile_to_dst_init_short() { copy_tile_to_dst_init_short(0); }
inline void mm_init() { mm_init(0, 1, 16, 0); }
inline void mm_init_short() { mm_init_short(0, 1, 0); }
inline void binary_op_init_common(uint32_t icb0, uint32_t icb1) {
  binary_op_init_common(icb0, icb1, 16);
}
inline void unary_op_init_common(uint32_t icb, uint32_t ocb = 16) { init_sfpu(icb, ocb); }

// The reconfigs that name the old and new CB of each source (compute_kernel_api/
// reconfig_data_format.h at 011d68fa): the machine unpacks each CB in its own format, so they
// forward to the two-CB form.
template <bool kToFromInt8 = false>
inline void reconfig_data_format(uint32_t /*srca_old*/, uint32_t srca_new, uint32_t /*srcb_old*/,
                                 uint32_t srcb_new) {
  static_assert(!kToFromInt8, "reconfig_data_format: the tile machine has no int8 formats");
  reconfig_data_format(srca_new, srcb_new);
}
inline void reconfig_data_format_srca(uint32_t /*srca_old*/, uint32_t srca_new) {
  reconfig_data_format_srca(srca_new);
}
inline void reconfig_data_format_srcb(uint32_t /*srcb_old*/, uint32_t srcb_new) {
  reconfig_data_format_srcb(srcb_new);
}
inline void pack_reconfig_data_format(uint32_t /*old_ocb*/, uint32_t new_ocb) {
  pack_reconfig_data_format(new_ocb);
}

// The reduce inits of compute_kernel_api/reduce.h with `at_start` first (its pool and dim
// defaulting to the REDUCE_OP / REDUCE_DIM defines), and reduce_init_short.
#if defined(REDUCE_OP) && defined(REDUCE_DIM)
template <bool kAtStart, PoolType kPool = REDUCE_OP, ReduceDim kDim = REDUCE_DIM>
#else
template <bool kAtStart, PoolType kPool, ReduceDim kDim>
#endif
inline void reduce_init(uint32_t icb, uint32_t icb_scaler, uint32_t ocb = 16) {
  reduce_init<kPool, kDim>(icb, icb_scaler, ocb);
}
#if defined(REDUCE_OP) && defined(REDUCE_DIM)
template <PoolType kPool = REDUCE_OP, ReduceDim kDim = REDUCE_DIM>
#else
template <PoolType kPool, ReduceDim kDim>
#endif
inline void reduce_init_short(uint32_t icb, uint32_t icb_scaler, uint32_t ocb = 16) {
  reduce_init<kPool, kDim>(icb, icb_scaler, ocb);
}

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

// The older matmul_tiles with the transpose of B per call (compute_kernel_api.h's
// matmul_tiles(c_in0, c_in1, itile0, itile1, idst, transpose); the newer API sets it at init).
inline void matmul_tiles(uint32_t in0_cb, uint32_t in1_cb, uint32_t i0, uint32_t i1, uint32_t idst,
                         uint32_t transpose,
                         tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  tilenorm::tile::mm_init_short(in0_cb, in1_cb, transpose);
  tilenorm::tile::matmul_tiles(in0_cb, in1_cb, i0, i1, idst, loc);
}

// ---------------------------------------------------------------------------------------------
// The newest compute dialect (api/compute/*.h), where the one-time configuration is
// compute_kernel_hw_startup and the short inits lost their "_short".
// ---------------------------------------------------------------------------------------------

// api/compute/compute_kernel_hw_startup.h at 0112bb1e: (icb0, icb1, ocb), and (icb0, ocb) with
// icb0 for both sources. The machine's binary_op_init_common is its whole configuration.
inline void compute_kernel_hw_startup(uint32_t icb0, uint32_t icb1, uint32_t ocb) {
  binary_op_init_common(icb0, icb1, ocb);
}
inline void compute_kernel_hw_startup(uint32_t icb0, uint32_t ocb) {
  compute_kernel_hw_startup(icb0, icb0, ocb);
}

// api/compute/tile_move_copy.h's copy_init(cbid, transpose = 0, transpose_within_16x16_face = 0,
// call_line), copy_tile_to_dst_init_short's successor. The unpacker's transposes are not
// modelled: a kernel that passes them does not compile here.
inline void copy_init(uint32_t cbid) { copy_tile_to_dst_init_short(cbid); }
template <typename T = void>
void copy_init(uint32_t /*cbid*/, uint32_t /*transpose*/, uint32_t /*within_face*/ = 0) {
  static_assert(sizeof(T) == 0,
                "copy_init with a transpose argument: the tile machine does not model the "
                "unpacker's transposes");
}
// copy_block(in_cb, start_in_tile, start_dst_tile, ntiles), copy_block_matmul_partials'
// successor: ntiles consecutive tiles into consecutive dst slots.
inline void copy_block(uint32_t in_cb, uint32_t start_in_tile, uint32_t start_dst_tile,
                       uint32_t ntiles,
                       tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  for (uint32_t i = 0; i < ntiles; ++i) {
    tilenorm::tile::copy_tile(in_cb, start_in_tile + i, start_dst_tile + i, loc);
  }
}

// api/compute/matmul.h at 01c8afed: matmul_init(in0, in1, transpose = 0, call_line), mm_init
// without the output CB (now compute_kernel_hw_startup's).
inline void matmul_init(uint32_t in0_cb, uint32_t in1_cb, uint32_t transpose = 0) {
  mm_init_short(in0_cb, in1_cb, transpose);
}

// api/compute/bcast.h (the version that deprecates the *_init_short names):
// {add,sub,mul}_bcast_{rows,cols,scalar}_init(icb0, icb1, call_line) and the generic
// bcast_init<op, dim>(icb0, icb1).
#define TILENORM_TT_RENAMED_INIT(name, machine_name) \
  inline void name(uint32_t icb0, uint32_t icb1) { machine_name(icb0, icb1); }
TILENORM_TT_RENAMED_INIT(add_bcast_rows_init, add_bcast_rows_init_short)
TILENORM_TT_RENAMED_INIT(add_bcast_cols_init, add_bcast_cols_init_short)
TILENORM_TT_RENAMED_INIT(add_bcast_scalar_init, add_bcast_scalar_init_short)
TILENORM_TT_RENAMED_INIT(sub_bcast_rows_init, sub_bcast_rows_init_short)
TILENORM_TT_RENAMED_INIT(sub_bcast_cols_init, sub_bcast_cols_init_short)
TILENORM_TT_RENAMED_INIT(sub_bcast_scalar_init, sub_tiles_bcast_scalar_init_short)
TILENORM_TT_RENAMED_INIT(mul_bcast_rows_init, mul_bcast_rows_init_short)
TILENORM_TT_RENAMED_INIT(mul_bcast_cols_init, mul_bcast_cols_init_short)
TILENORM_TT_RENAMED_INIT(mul_bcast_scalar_init, mul_tiles_bcast_scalar_init_short)
#undef TILENORM_TT_RENAMED_INIT
template <EltwiseBinaryType kOp, BroadcastType kBcast>
void bcast_init(uint32_t icb0, uint32_t icb1) {
  init_bcast<kOp, kBcast>(icb0, icb1, 16);
}
