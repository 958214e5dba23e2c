// Kernel API of the tile machine: the NoC of dataflow_api.h (interleaved DRAM reads and writes,
// completed at the barriers), with the sanitizer checks that go with each call.

#include <fmt/format.h>

#include <cstring>

#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/kernel_runtime.h"

namespace tilenorm::tile {
namespace detail {
namespace {

DramBuffer* buffer_page(KernelRuntime& k, uint32_t address, uint32_t tile_id, uint32_t page_size,
                        const char* op, const SrcLoc& loc) {
  const DramBuffer* b = k.last_buffer;
  if (b == nullptr || b->address != address) {
    b = k.core->dram->find(address);
    if (b == nullptr) {
      raise(ReportKind::kNocBadAccess, op, -1, -1, loc,
            fmt::format("no DRAM buffer at address {:#x}", address), true);
    }
    k.last_buffer = b;
  }
  if (tile_id >= b->num_pages || page_size != b->page_size) {
    raise(ReportKind::kNocBadAccess, op, -1, -1, loc,
          fmt::format("tile {} of size {} B: the buffer at {:#x} has {} pages of {} B", tile_id,
                      page_size, address, b->num_pages, b->page_size),
          true);
  }
  return const_cast<DramBuffer*>(b);
}

}  // namespace

void noc_read_tile(uint32_t tile_id, uint32_t buffer_address, uint32_t page_size, uint32_t l1_addr,
                   SrcLoc loc) {
  KernelRuntime& k = current();
  check_domain(k, Domain::kDataflow, "noc_async_read_tile", loc);
  DramBuffer* b = buffer_page(k, buffer_address, tile_id, page_size, "noc_async_read_tile", loc);
  uint8_t* dst = l1_host(k, l1_addr, page_size, "noc_async_read_tile", loc);
  k.pending_reads.push_back({dst, b->data.data() + size_t{tile_id} * page_size, page_size, l1_addr,
                             -1, loc.file_name(), loc.line()});
  k.counters.dram_bytes_read += page_size;
  k.core->bank_bytes[tile_id % k.core->bank_bytes.size()] += page_size;
}

void noc_write_tile(uint32_t tile_id, uint32_t buffer_address, uint32_t page_size, uint32_t l1_addr,
                    SrcLoc loc) {
  KernelRuntime& k = current();
  check_domain(k, Domain::kDataflow, "noc_async_write_tile", loc);
  DramBuffer* b = buffer_page(k, buffer_address, tile_id, page_size, "noc_async_write_tile", loc);
  const uint8_t* src = l1_host(k, l1_addr, page_size, "noc_async_write_tile", loc);
  const int cb = k.core->sanitize ? window_of(k, l1_addr, page_size) : -1;
  k.pending_writes.push_back({b->data.data() + size_t{tile_id} * page_size, src, page_size, l1_addr,
                              cb, loc.file_name(), loc.line()});
  k.counters.dram_bytes_written += page_size;
  k.core->bank_bytes[tile_id % k.core->bank_bytes.size()] += page_size;
}

void complete_reads(KernelRuntime& k) {
  for (const PendingCopy& r : k.pending_reads) std::memcpy(r.dst, r.src, r.bytes);
  k.pending_reads.clear();
}

void complete_writes(KernelRuntime& k, const SrcLoc& loc) {
  if (k.core->sanitize) {
    for (const PendingCopy& w : k.pending_writes) {
      const int cb = window_of(k, w.l1_addr, w.bytes);
      const DataFormat format =
          cb >= 0 ? k.core->cbs[cb].format
                  : (w.bytes == tile_size(DataFormat::Float32) ? DataFormat::Float32
                                                               : DataFormat::Float16_b);
      if (has_poison(w.src, w.bytes, format)) {
        raise(ReportKind::kPoisonL1Read, "noc_async_write_barrier", w.cb, -1, loc,
              fmt::format("noc_async_write_tile (issued at {}:{}) writes L1 {:#x} to DRAM but "
                          "nothing wrote those bytes during this run",
                          w.file, w.line, w.l1_addr));
        break;
      }
    }
  }
  for (const PendingCopy& w : k.pending_writes) std::memcpy(w.dst, w.src, w.bytes);
  k.pending_writes.clear();
}

}  // namespace detail

using detail::current;
using detail::KernelRuntime;

void noc_async_read_barrier(SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kDataflow, "noc_async_read_barrier", loc);
  detail::complete_reads(k);
}
void noc_async_write_barrier(SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kDataflow, "noc_async_write_barrier", loc);
  detail::complete_writes(k, loc);
}
}  // namespace tilenorm::tile
