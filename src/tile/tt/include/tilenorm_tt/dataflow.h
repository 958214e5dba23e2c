// The dataflow kernel API of the tile machine under tt-metal's names (dataflow_api.h,
// api/dataflow/dataflow_api.h), with TensorAccessorArgs over the compile-time args.
#pragma once

#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/api/tensor_accessor.h"
#include "tilenorm_tt/prelude.h"

using tilenorm::tile::get_noc_addr;
using tilenorm::tile::get_read_ptr;
using tilenorm::tile::get_tile_size;
using tilenorm::tile::get_write_ptr;
using tilenorm::tile::noc_async_read;
using tilenorm::tile::noc_async_read_barrier;
using tilenorm::tile::noc_async_read_page;
using tilenorm::tile::noc_async_read_tile;
using tilenorm::tile::noc_async_write;
using tilenorm::tile::noc_async_write_barrier;
using tilenorm::tile::noc_async_write_page;
using tilenorm::tile::noc_async_write_tile;
using tilenorm::tile::TensorAccessor;

// The CB's format under tt-metal's enumerators.
inline DataFormat get_dataformat(uint32_t cb,
                                 tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  return tilenorm::tile::get_dataformat(cb, loc) == tilenorm::tile::DataFormat::Float32
             ? DataFormat::Float32
             : DataFormat::Float16_b;
}

// tt-metal's address generator of an interleaved DRAM buffer, its format under tt-metal's
// enumerators (kernels fill it from get_dataformat), for noc_async_read_tile / _write_tile.
template <bool kDram>
struct InterleavedAddrGenFast {
  static_assert(kDram, "the tile machine models interleaved DRAM buffers only");
  uint32_t bank_base_address = 0;
  uint32_t page_size = 0;
  DataFormat data_format = DataFormat::Float16_b;
  tilenorm::tile::InterleavedAddrGenFast<true> machine() const {
    return {bank_base_address, page_size,
            data_format == DataFormat::Float32 ? tilenorm::tile::DataFormat::Float32
                                               : tilenorm::tile::DataFormat::Float16_b};
  }
};
template <bool kDram>
void noc_async_read_tile(uint32_t tile_id, const InterleavedAddrGenFast<kDram>& s, uint32_t l1_addr,
                         tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  tilenorm::tile::noc_async_read_tile(tile_id, s.machine(), l1_addr, loc);
}
template <bool kDram>
void noc_async_write_tile(uint32_t tile_id, const InterleavedAddrGenFast<kDram>& s,
                          uint32_t l1_addr,
                          tilenorm::tile::SrcLoc loc = tilenorm::tile::SrcLoc::current()) {
  tilenorm::tile::noc_async_write_tile(tile_id, s.machine(), l1_addr, loc);
}

// The compile-time args of one interleaved DRAM buffer, from index kBase (written by the host's
// TensorAccessorArgs(buffer).append_to).
template <uint32_t kBase>
struct TensorAccessorArgs {
  static_assert(tilenorm_tt::get_ct_arg<kBase>() == tilenorm::tile::kInterleavedDramAccessorArg,
                "TensorAccessorArgs<i>: compile-time arg i is not an accessor's (the host appends "
                "one word per interleaved DRAM buffer)");
  static constexpr uint32_t next_compile_time_args_offset() { return kBase + 1; }
};
