// Interleaved DRAM buffers as tt-metal's TensorAccessor sees them (reader and writer kernels):
// noc_async_read_page / noc_async_write_page by page id, and NoC addresses from get_noc_addr
// for whole-page noc_async_read / noc_async_write.
#pragma once

#include "tile/machine/api/dataflow_api.h"

namespace tilenorm::tile {

// The compile-time arg a host appends for an interleaved DRAM buffer (tt-metal's
// TensorAccessorArgs(buffer).append_to); the kernel-side TensorAccessorArgs<i> checks it.
inline constexpr uint32_t kInterleavedDramAccessorArg = 0x1d7a0001u;

// An interleaved DRAM buffer: its address (as the host passes it in runtime args) and page size.
// tt-metal builds one from compile-time TensorAccessorArgs; the tile machine models interleaved
// DRAM only, so the args carry no layout and `args` is accepted for the call's shape.
struct TensorAccessor {
  uint32_t address = 0;
  uint32_t page_size = 0;
  TensorAccessor() = default;
  template <typename Args>
  constexpr TensorAccessor(const Args& /*args*/, uint32_t bank_base_address, uint32_t page_bytes)
      : address(bank_base_address), page_size(page_bytes) {}
  // NoC address of byte `offset` of page `page_id` (what get_noc_addr(page_id, accessor) gives).
  uint64_t get_noc_addr(uint32_t page_id, uint32_t offset = 0) const {
    return (uint64_t{address} << 32) | (uint64_t{page_id} * page_size + offset);
  }
};

namespace detail {
// Whole-page NoC transfers by NoC address (encoded as TensorAccessor::get_noc_addr does).
void noc_read_bytes(uint64_t noc_addr, uint32_t l1_addr, uint32_t bytes, SrcLoc loc);
void noc_write_bytes(uint32_t l1_addr, uint64_t noc_addr, uint32_t bytes, SrcLoc loc);
}  // namespace detail

inline uint64_t get_noc_addr(uint32_t page_id, const TensorAccessor& s, uint32_t offset = 0) {
  return s.get_noc_addr(page_id, offset);
}

// Queues a read of page `page_id` into L1 at l1_addr (lands at noc_async_read_barrier).
inline void noc_async_read_page(uint32_t page_id, const TensorAccessor& s, uint32_t l1_addr,
                                uint32_t offset = 0, SrcLoc loc = SrcLoc::current()) {
  detail::noc_read_bytes(s.get_noc_addr(page_id, offset), l1_addr, s.page_size, loc);
}
// Queues a write of one page from L1 at l1_addr to page `page_id` (L1 read at the barrier).
inline void noc_async_write_page(uint32_t page_id, const TensorAccessor& s, uint32_t l1_addr,
                                 uint32_t offset = 0, SrcLoc loc = SrcLoc::current()) {
  detail::noc_write_bytes(l1_addr, s.get_noc_addr(page_id, offset), s.page_size, loc);
}
// tt-metal's tile-named forms over an accessor (interleaved tile pages): the same transfers.
inline void noc_async_read_tile(uint32_t tile_id, const TensorAccessor& s, uint32_t l1_addr,
                                uint32_t offset = 0, SrcLoc loc = SrcLoc::current()) {
  noc_async_read_page(tile_id, s, l1_addr, offset, loc);
}
inline void noc_async_write_tile(uint32_t tile_id, const TensorAccessor& s, uint32_t l1_addr,
                                 SrcLoc loc = SrcLoc::current()) {
  noc_async_write_page(tile_id, s, l1_addr, 0, loc);
}
// NoC transfers by address; the tile machine models whole pages (offset 0, size = page size).
inline void noc_async_read(uint64_t src_noc_addr, uint32_t dst_l1_addr, uint32_t size,
                           SrcLoc loc = SrcLoc::current()) {
  detail::noc_read_bytes(src_noc_addr, dst_l1_addr, size, loc);
}
inline void noc_async_write(uint32_t src_l1_addr, uint64_t dst_noc_addr, uint32_t size,
                            SrcLoc loc = SrcLoc::current()) {
  detail::noc_write_bytes(src_l1_addr, dst_noc_addr, size, loc);
}

}  // namespace tilenorm::tile
