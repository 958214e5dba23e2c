// Kernel API of the tile machine, named as tt-metal's dataflow and compute APIs. Kernels are
// plain functions; every call acts on the kernel the calling fiber runs (core, kind, CBs, dst).
// The trailing std::source_location is filled in by the compiler so reports name the line.
//
// Semantics per op (Wormhole, docs/tile-machine.md): mul_tiles*, matmul_tiles, reduce_tile
// ACCUMULATE onto dst (dst += result); add/sub (and bcast) assign unless their init asked for
// acc_to_dest; copy_tile and unary_bcast assign; SFPU ops compute in fp32 and write dst.
// Broadcast operands read row 0 (ROW), column 0 (COL) or element [0,0] (SCALAR).
#pragma once

#include <cstdint>
#include <source_location>

#include "tile/machine/tile.h"

namespace tilenorm::tile {

using SrcLoc = std::source_location;

// ---------------------------------------------------------------------------------------------
// Circular buffers (all kernels). Page = tile. Counts are cumulative within a window: wait 2
// then wait 4 without a pop waits for 4 pages in total. One producer kernel (reserve/push) and
// one consumer kernel (wait/pop) per CB; in a compute kernel pack_tile writes the reserved
// window and copy_tile & co. read the waited window.

// Blocks until n pages are free at the back. The window is pages [0, n) after the write pointer.
void cb_reserve_back(uint32_t cb, uint32_t n, SrcLoc loc = SrcLoc::current());
// Publishes the first n reserved pages to the consumer; n <= pages reserved.
void cb_push_back(uint32_t cb, uint32_t n, SrcLoc loc = SrcLoc::current());
// Blocks until n pages are available at the front.
void cb_wait_front(uint32_t cb, uint32_t n, SrcLoc loc = SrcLoc::current());
// Frees the first n waited pages; n <= pages waited for.
void cb_pop_front(uint32_t cb, uint32_t n, SrcLoc loc = SrcLoc::current());
// L1 address of the first reserved page (valid between reserve and push) / first waited page
// (valid between wait and pop). Page j of the window is at ptr + j * get_tile_size(cb).
uint32_t get_write_ptr(uint32_t cb, SrcLoc loc = SrcLoc::current());
uint32_t get_read_ptr(uint32_t cb, SrcLoc loc = SrcLoc::current());
uint32_t get_tile_size(uint32_t cb, SrcLoc loc = SrcLoc::current());
DataFormat get_dataformat(uint32_t cb, SrcLoc loc = SrcLoc::current());

// Host pointer to `bytes` bytes of this core's L1 at `l1_addr` (hardware code casts the address
// instead). The range must lie in a window this kernel holds (checked by the sanitizer); writes
// through it are what a reader does to build mask or scaler tiles.
void* l1_ptr(uint32_t l1_addr, uint32_t bytes, SrcLoc loc = SrcLoc::current());
template <typename T>
T* l1_ptr(uint32_t l1_addr, uint32_t count, SrcLoc loc = SrcLoc::current()) {
  return static_cast<T*>(l1_ptr(l1_addr, count * static_cast<uint32_t>(sizeof(T)), loc));
}

// ---------------------------------------------------------------------------------------------
// NoC (reader and writer kernels). A DRAM buffer as tt-metal's InterleavedAddrGenFast<true>:
//   const InterleavedAddrGenFast<true> s = {.bank_base_address = args.x_addr,
//                                           .page_size = get_tile_size(cb::kX),
//                                           .data_format = get_dataformat(cb::kX)};
template <bool kDram>
struct InterleavedAddrGenFast {
  static_assert(kDram, "the tile machine models interleaved DRAM buffers only");
  uint32_t bank_base_address = 0;
  uint32_t page_size = 0;
  DataFormat data_format = DataFormat::Float16_b;
};

namespace detail {
void noc_read_tile(uint32_t tile_id, uint32_t buffer_address, uint32_t page_size, uint32_t l1_addr,
                   SrcLoc loc);
void noc_write_tile(uint32_t tile_id, uint32_t buffer_address, uint32_t page_size, uint32_t l1_addr,
                    SrcLoc loc);
}  // namespace detail

// Queues a copy of page `tile_id` of the buffer into L1 at l1_addr; the data lands in L1 only at
// the next noc_async_read_barrier (as on hardware, where it is in flight until then).
template <bool kDram>
void noc_async_read_tile(uint32_t tile_id, const InterleavedAddrGenFast<kDram>& s, uint32_t l1_addr,
                         SrcLoc loc = SrcLoc::current()) {
  detail::noc_read_tile(tile_id, s.bank_base_address, s.page_size, l1_addr, loc);
}
// Queues a copy of one page from L1 at l1_addr to page `tile_id`; L1 is read at the barrier.
template <bool kDram>
void noc_async_write_tile(uint32_t tile_id, const InterleavedAddrGenFast<kDram>& s,
                          uint32_t l1_addr, SrcLoc loc = SrcLoc::current()) {
  detail::noc_write_tile(tile_id, s.bank_base_address, s.page_size, l1_addr, loc);
}
void noc_async_read_barrier(SrcLoc loc = SrcLoc::current());
void noc_async_write_barrier(SrcLoc loc = SrcLoc::current());

// ---------------------------------------------------------------------------------------------
// Dst register protocol (compute kernel). Half-sync (default): two sections of 8 bf16 / 4 fp32
// tiles; full-sync: one of 16 / 8. acquire -> math ops -> commit -> wait -> pack_tile -> release.
// Release zeroes the section it frees, so a freshly acquired section reads as zero.
void tile_regs_acquire(SrcLoc loc = SrcLoc::current());
void tile_regs_commit(SrcLoc loc = SrcLoc::current());
void tile_regs_wait(SrcLoc loc = SrcLoc::current());
void tile_regs_release(SrcLoc loc = SrcLoc::current());

// Packs dst slot idst into page out_tile_index of ocb's reserved window (format conversion by
// the packer: faithful bf16 = round to nearest, ties away from zero; denormals flushed).
void pack_tile(uint32_t idst, uint32_t ocb, uint32_t out_tile_index = 0,
               SrcLoc loc = SrcLoc::current());
void pack_reconfig_data_format(uint32_t ocb);
void reconfig_data_format(uint32_t icb0, uint32_t icb1);
void reconfig_data_format_srca(uint32_t icb);
void reconfig_data_format_srcb(uint32_t icb);

// Hardware start-up for a compute kernel; kept for source compatibility (no effect).
void init_sfpu(uint32_t icb, uint32_t ocb);
void binary_op_init_common(uint32_t icb0, uint32_t icb1, uint32_t ocb);

// ---- copy (assign): dst[idst] = tile itile of icb's waited window.
void copy_tile_init(uint32_t icb);
void copy_tile_to_dst_init_short(uint32_t icb);
void copy_tile(uint32_t icb, uint32_t itile, uint32_t idst, SrcLoc loc = SrcLoc::current());

// ---- FPU element-wise binary. add/sub: dst = a op b (dst += a op b if acc_to_dest).
// mul: dst += a * b ALWAYS (Wormhole ELWMUL; there is no assigning multiply).
void add_tiles_init(uint32_t icb0, uint32_t icb1, bool acc_to_dest = false);
void sub_tiles_init(uint32_t icb0, uint32_t icb1, bool acc_to_dest = false);
void mul_tiles_init(uint32_t icb0, uint32_t icb1);
void add_tiles(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst,
               SrcLoc loc = SrcLoc::current());
void sub_tiles(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst,
               SrcLoc loc = SrcLoc::current());
void mul_tiles(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst,
               SrcLoc loc = SrcLoc::current());

// ---- FPU broadcast binary: b's row 0 (rows), column 0 (cols) or [0,0] (scalar) is broadcast.
// add/sub assign; mul accumulates.
enum class BroadcastType : uint8_t { NONE, ROW, COL, SCALAR };
enum class EltwiseBinaryType : uint8_t { ELWADD, ELWSUB, ELWMUL };
namespace detail {
void binary_init(EltwiseBinaryType op, bool acc_to_dest);
}
template <EltwiseBinaryType kOp, BroadcastType kBcast>
void init_bcast(uint32_t /*icb0*/, uint32_t /*icb1*/, uint32_t /*ocb*/) {
  detail::binary_init(kOp, false);
}
void add_bcast_rows_init_short(uint32_t icb0, uint32_t icb1);
void add_bcast_cols_init_short(uint32_t icb0, uint32_t icb1);
void add_bcast_scalar_init_short(uint32_t icb0, uint32_t icb1);
void sub_bcast_rows_init_short(uint32_t icb0, uint32_t icb1);
void sub_bcast_cols_init_short(uint32_t icb0, uint32_t icb1);
void sub_tiles_bcast_scalar_init_short(uint32_t icb0, uint32_t icb1);
void mul_bcast_rows_init_short(uint32_t icb0, uint32_t icb1);
void mul_bcast_cols_init_short(uint32_t icb0, uint32_t icb1);
void mul_tiles_bcast_scalar_init_short(uint32_t icb0, uint32_t icb1);
#define TN_DECLARE_BCAST_OP(name)                                                          \
  void name(uint32_t icb0, uint32_t icb1, uint32_t itile0, uint32_t itile1, uint32_t idst, \
            SrcLoc loc = SrcLoc::current());
TN_DECLARE_BCAST_OP(add_tiles_bcast_rows)
TN_DECLARE_BCAST_OP(add_tiles_bcast_cols)
TN_DECLARE_BCAST_OP(add_tiles_bcast_scalar)
TN_DECLARE_BCAST_OP(sub_tiles_bcast_rows)
TN_DECLARE_BCAST_OP(sub_tiles_bcast_cols)
TN_DECLARE_BCAST_OP(sub_tiles_bcast_scalar)
TN_DECLARE_BCAST_OP(mul_tiles_bcast_rows)
TN_DECLARE_BCAST_OP(mul_tiles_bcast_cols)
TN_DECLARE_BCAST_OP(mul_tiles_bcast_scalar)
#undef TN_DECLARE_BCAST_OP

// ---- unary broadcast (assign): dst = tile itile with its row 0 / column 0 / [0,0] replicated.
namespace detail {
void unary_bcast(BroadcastType bcast, uint32_t icb, uint32_t itile, uint32_t idst, SrcLoc loc);
}
template <BroadcastType kBcast>
void unary_bcast_init(uint32_t /*icb*/, uint32_t /*ocb*/) {}
template <BroadcastType kBcast>
void unary_bcast(uint32_t icb, uint32_t itile, uint32_t idst, SrcLoc loc = SrcLoc::current()) {
  detail::unary_bcast(kBcast, icb, itile, idst, loc);
}

// ---- reduce (accumulate). With a = tile itile of icb and s = scaler[0,0] (tile itile_scaler of
// icb_scaler; fill the first row of each face with the scaler as tt-metal's generators do):
//   REDUCE_ROW:    dst[r][0]  += s * sum_c a[r][c]   (other elements unchanged)
//   REDUCE_COL:    dst[0][c]  += s * sum_r a[r][c]
//   REDUCE_SCALAR: dst[0][0]  += s * sum a
// SUM and AVG are the same op (the scaler carries 1/N); MAX takes max(dst, s * max a).
enum class PoolType : uint8_t { SUM, AVG, MAX };
enum class ReduceDim : uint8_t { REDUCE_ROW, REDUCE_COL, REDUCE_SCALAR };
namespace detail {
void reduce_tile(PoolType pool, ReduceDim dim, uint32_t icb, uint32_t icb_scaler, uint32_t itile,
                 uint32_t itile_scaler, uint32_t idst, SrcLoc loc);
}
template <PoolType kPool, ReduceDim kDim>
void reduce_init(uint32_t /*icb*/, uint32_t /*icb_scaler*/, uint32_t /*ocb*/) {}
inline void reduce_uninit() {}
template <PoolType kPool, ReduceDim kDim>
void reduce_tile(uint32_t icb, uint32_t icb_scaler, uint32_t itile, uint32_t itile_scaler,
                 uint32_t idst, SrcLoc loc = SrcLoc::current()) {
  detail::reduce_tile(kPool, kDim, icb, icb_scaler, itile, itile_scaler, idst, loc);
}

// ---- matmul (accumulate): dst[idst] += A @ B (B transposed if the init said so), A = tile i0
// of in0, B = tile i1 of in1.
void mm_init(uint32_t in0_cb, uint32_t in1_cb, uint32_t out_cb, uint32_t transpose = 0);
void mm_init_short(uint32_t in0_cb, uint32_t in1_cb, uint32_t transpose = 0);
void matmul_tiles(uint32_t in0_cb, uint32_t in1_cb, uint32_t i0, uint32_t i1, uint32_t idst,
                  SrcLoc loc = SrcLoc::current());

// ---- SFPU (fp32 arithmetic on dst slots; the result is stored in dst's format).
// Binary: dst[out] = dst[a] op dst[b]; the two-operand form writes dst[a].
void add_binary_tile_init();
void sub_binary_tile_init();
void mul_binary_tile_init();
void add_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc = SrcLoc::current());
void sub_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc = SrcLoc::current());
void mul_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc = SrcLoc::current());
void add_binary_tile(uint32_t a, uint32_t b, SrcLoc loc = SrcLoc::current());
void sub_binary_tile(uint32_t a, uint32_t b, SrcLoc loc = SrcLoc::current());
void mul_binary_tile(uint32_t a, uint32_t b, SrcLoc loc = SrcLoc::current());
// dst[idst] = value (every element). fill_tile(i, 0.0f) is the explicit zeroing of a slot.
void fill_tile_init();
void fill_tile(uint32_t idst, float value, SrcLoc loc = SrcLoc::current());
// dst[data] = 0 where dst[data + 1] == 0. The mask argument is ignored by the hardware, which
// always reads data + 1; the sanitizer reports a mask argument != data + 1.
void mask_tile_init();
void mask_tile(uint32_t idst_data, uint32_t idst_mask, SrcLoc loc = SrcLoc::current());
// In place: 1/sqrt(x), 1/x, sqrt(x), x*x.
void rsqrt_tile_init();
void rsqrt_tile(uint32_t idst, SrcLoc loc = SrcLoc::current());
void recip_tile_init();
void recip_tile(uint32_t idst, SrcLoc loc = SrcLoc::current());
void sqrt_tile_init();
void sqrt_tile(uint32_t idst, SrcLoc loc = SrcLoc::current());
void square_tile_init();
void square_tile(uint32_t idst, SrcLoc loc = SrcLoc::current());
// In place with a scalar given as fp32 bits (as tt-metal): dst = dst op bit_cast<float>(param).
void binop_with_scalar_tile_init();
void add_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc = SrcLoc::current());
void sub_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc = SrcLoc::current());
void mul_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc = SrcLoc::current());

// ---- Tile-machine extension (no hardware counterpart, no effect on values): the next
// accumulating FPU op on idst adds onto the slot's current value on purpose (e.g. a partial
// copied in from a CB), so the sanitizer does not report it as an implicit accumulation.
void sanitizer_allow_accumulate(uint32_t idst, SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
