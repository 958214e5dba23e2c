// Dataflow API (reader and writer kernels; tt-metal's dataflow_api.h): CB pointers, L1 access
// and the NoC. Includes the CB calls, as tt-metal's dataflow_api.h does.
#pragma once

#if defined(TILENORM_TILE_COMPUTE_API) && !defined(TILENORM_TILE_KERNELS_OF_BOTH_KINDS)
#error \
    "dataflow_api.h included in a file that includes the compute kernel API: a kernel file includes only the API of its own kind (docs/tile-machine.md, Writing kernels)"
#endif
#define TILENORM_TILE_DATAFLOW_API 1

#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/common.h"

namespace tilenorm::tile {

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

// A DRAM buffer as tt-metal's InterleavedAddrGenFast<true>:
//   const InterleavedAddrGenFast<true> s = {.bank_base_address = args.x_addr,
//                                           .page_size = get_tile_size(cb::kX),
//                                           .data_format = get_dataformat(cb::kX)};
// or, the same, tile_addr_gen(args.x_addr, cb::kX).
template <bool kDram>
struct InterleavedAddrGenFast {
  static_assert(kDram, "the tile machine models interleaved DRAM buffers only");
  uint32_t bank_base_address = 0;
  uint32_t page_size = 0;
  DataFormat data_format = DataFormat::Float16_b;
};
// The address generator of a DRAM buffer at `addr` whose pages are tiles of CB `cb` (its page
// size and format).
inline InterleavedAddrGenFast<true> tile_addr_gen(uint32_t addr, uint32_t cb,
                                                  SrcLoc loc = SrcLoc::current()) {
  return {.bank_base_address = addr,
          .page_size = get_tile_size(cb, loc),
          .data_format = get_dataformat(cb, loc)};
}

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

}  // namespace tilenorm::tile
