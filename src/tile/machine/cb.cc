// Kernel API of the tile machine: circular buffers (cb_api.h) and the CB pointers and L1 access
// of dataflow_api.h, with the sanitizer checks that go with each call.

#include <fmt/format.h>

#include <algorithm>

#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/kernel_runtime.h"

namespace tilenorm::tile {
namespace detail {
namespace {

constexpr uint16_t kPoisonHalf = 0xffb5;
constexpr uint32_t kPoisonWord = 0xffb5ffb5u;

void block(KernelRuntime& k, bool reserve, uint32_t cb, uint32_t pages, const SrcLoc& loc) {
  k.blocked = true;
  k.blocked_on_reserve = reserve;
  k.blocked_cb = cb;
  k.blocked_pages = pages;
  k.blocked_file = loc.file_name();
  k.blocked_line = loc.line();
  Fiber::yield();
  k.blocked = false;
  if (k.core->stopping) throw KernelAbort{};
}

}  // namespace

CbState& cb_of(KernelRuntime& k, uint32_t cb, const char* op, const SrcLoc& loc) {
  if (cb >= kMaxCbs || !k.core->cbs[cb].exists) {
    raise(ReportKind::kCbUnknown, op, static_cast<int>(cb), -1, loc,
          fmt::format("CB {} does not exist on this core", cb), true);
  }
  return k.core->cbs[cb];
}

void claim(KernelRuntime& k, CbState& c, uint32_t cb, bool producer, const char* op,
           const SrcLoc& loc) {
  int& owner = producer ? c.producer : c.consumer;
  const int me = static_cast<int>(k.kind);
  if (owner == me) return;
  if (owner < 0) {
    owner = me;
    return;
  }
  raise(producer ? ReportKind::kCbTwoProducers : ReportKind::kCbTwoConsumers, op,
        static_cast<int>(cb), -1, loc,
        fmt::format("CB {} already has {} {} kernel; one {} per CB", cb,
                    producer ? "the producer" : "the consumer",
                    kernel_kind_name(static_cast<KernelKind>(owner)),
                    producer ? "producer" : "consumer"));
}

// The CB holding [addr, addr + bytes) when it lies inside a window this kernel holds; -1 if not.
int window_of(const KernelRuntime& k, uint32_t addr, uint32_t bytes) {
  const CoreRuntime& core = *k.core;
  for (uint32_t i = 0; i < kMaxCbs; ++i) {
    const CbState& c = core.cbs[i];
    if (!c.exists || addr < c.base) continue;
    const uint64_t end = uint64_t{c.base} + uint64_t{c.num_pages} * c.page_size;
    if (uint64_t{addr} + bytes > end) continue;
    const uint32_t first = (addr - c.base) / c.page_size;
    const uint32_t last = (addr + bytes - 1 - c.base) / c.page_size;
    auto inside = [&](uint32_t start, uint32_t size) {
      const uint32_t n = c.num_pages;
      return (first + n - start) % n < size && (last + n - start) % n < size && last - first < size;
    };
    const int me = static_cast<int>(k.kind);
    if (c.producer == me && c.reserved > 0 && inside(c.write_page(), c.reserved)) return int(i);
    if (c.consumer == me && c.waited > 0 && inside(c.read_page(), c.waited)) return int(i);
  }
  return -1;
}

uint8_t* l1_host(KernelRuntime& k, uint32_t addr, uint32_t bytes, const char* op,
                 const SrcLoc& loc) {
  CoreRuntime& core = *k.core;
  if (addr < core.l1_base || uint64_t{addr} + bytes > uint64_t{core.l1_base} + core.l1_size) {
    raise(ReportKind::kCbAccessOutsideWindow, op, -1, -1, loc,
          fmt::format("L1 [{:#x}, {:#x}) is outside every CB of this core", addr,
                      uint64_t{addr} + bytes),
          true);
  }
  if (core.sanitize && window_of(k, addr, bytes) < 0) {
    raise(ReportKind::kCbAccessOutsideWindow, op, -1, -1, loc,
          fmt::format("L1 [{:#x}, {:#x}) is not inside a window this kernel holds (reserved "
                      "and not pushed, or waited and not popped)",
                      addr, uint64_t{addr} + bytes));
  }
  return core.l1 + (addr - core.l1_base);
}

// Counting scans so they vectorize: the sanitizer runs them on every tile it unpacks. CB pages
// are 32-byte aligned, so the typed loads are aligned.
bool has_poison(const uint8_t* p, uint32_t bytes, DataFormat format) {
  uint32_t hits = 0;
  if (format == DataFormat::Float32) {
    const auto* w = reinterpret_cast<const uint32_t*>(p);
    for (uint32_t i = 0; i < bytes / 4; ++i) hits += w[i] == kPoisonWord ? 1u : 0u;
  } else {
    const auto* h = reinterpret_cast<const uint16_t*>(p);
    for (uint32_t i = 0; i < bytes / 2; ++i) hits += h[i] == kPoisonHalf ? 1u : 0u;
  }
  return hits != 0;
}

}  // namespace detail

using detail::CbState;
using detail::current;
using detail::KernelRuntime;
using detail::raise;

void cb_reserve_back(uint32_t cb, uint32_t n, SrcLoc loc) {
  KernelRuntime& k = current();
  CbState& c = detail::cb_of(k, cb, "cb_reserve_back", loc);
  if (k.core->sanitize) {
    detail::claim(k, c, cb, true, "cb_reserve_back", loc);
    c.reserve_file = loc.file_name();
    c.reserve_line = loc.line();
  }
  if (n > c.num_pages) {
    raise(ReportKind::kCbOverCapacity, "cb_reserve_back", int(cb), -1, loc,
          fmt::format("reserves {} pages of a {}-page CB: would block forever", n, c.num_pages),
          true);
  }
  while (c.free_pages() < n) detail::block(k, true, cb, n, loc);
  c.reserved = std::max(c.reserved, n);
}

void cb_push_back(uint32_t cb, uint32_t n, SrcLoc loc) {
  KernelRuntime& k = current();
  CbState& c = detail::cb_of(k, cb, "cb_push_back", loc);
  if (k.core->sanitize) {
    detail::claim(k, c, cb, true, "cb_push_back", loc);
    if (n > c.reserved) {
      raise(ReportKind::kCbPushWithoutReserve, "cb_push_back", int(cb), -1, loc,
            c.reserved == 0
                ? fmt::format("pushes {} pages with none reserved", n)
                : fmt::format("pushes {} pages but only {} are reserved", n, c.reserved));
    }
    if (!k.pending_reads.empty()) {
      raise(ReportKind::kNocReadNotBarriered, "cb_push_back", int(cb), -1, loc,
            fmt::format("{} noc_async_read_tile not yet completed by noc_async_read_barrier: "
                        "the consumer may see the old page contents",
                        k.pending_reads.size()));
    }
  }
  if (!c.packs.empty()) {
    for (uint32_t i = 0; i < n; ++i) c.packs[(c.write_page() + i) % c.num_pages] = {};
  }
  c.pack_pos = 0;
  c.pushed += n;
  c.reserved = c.reserved > n ? c.reserved - n : 0;
  c.high_water = std::max(c.high_water, c.available());
}

void cb_wait_front(uint32_t cb, uint32_t n, SrcLoc loc) {
  KernelRuntime& k = current();
  CbState& c = detail::cb_of(k, cb, "cb_wait_front", loc);
  if (k.core->sanitize) {
    detail::claim(k, c, cb, false, "cb_wait_front", loc);
    c.wait_file = loc.file_name();
    c.wait_line = loc.line();
  }
  if (n > c.num_pages) {
    raise(ReportKind::kCbOverCapacity, "cb_wait_front", int(cb), -1, loc,
          fmt::format("waits for {} pages of a {}-page CB: would block forever", n, c.num_pages),
          true);
  }
  while (c.available() < n) detail::block(k, false, cb, n, loc);
  c.waited = std::max(c.waited, n);
}

void cb_pop_front(uint32_t cb, uint32_t n, SrcLoc loc) {
  KernelRuntime& k = current();
  CbState& c = detail::cb_of(k, cb, "cb_pop_front", loc);
  if (k.core->sanitize) {
    detail::claim(k, c, cb, false, "cb_pop_front", loc);
    if (n > c.waited) {
      raise(ReportKind::kCbPopMoreThanWaited, "cb_pop_front", int(cb), -1, loc,
            fmt::format("pops {} pages but only {} are waited for", n, c.waited));
    }
    for (const detail::PendingCopy& w : k.pending_writes) {
      if (w.cb == int(cb)) {
        raise(ReportKind::kNocWriteNotBarriered, "cb_pop_front", int(cb), -1, loc,
              fmt::format("a noc_async_write_tile from this CB (issued at {}:{}) is not yet "
                          "completed by noc_async_write_barrier: the producer may overwrite it",
                          w.file, w.line));
        break;
      }
    }
  }
  c.popped += std::min<uint64_t>(n, c.pushed - c.popped);
  c.waited = c.waited > n ? c.waited - n : 0;
}

uint32_t get_write_ptr(uint32_t cb, SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kDataflow, "get_write_ptr", loc);
  CbState& c = detail::cb_of(k, cb, "get_write_ptr", loc);
  if (k.core->sanitize && (c.reserved == 0 || c.producer != int(k.kind))) {
    raise(ReportKind::kCbAccessOutsideWindow, "get_write_ptr", int(cb), -1, loc,
          "get_write_ptr outside a cb_reserve_back ... cb_push_back window");
  }
  return c.base + c.write_page() * c.page_size;
}

uint32_t get_read_ptr(uint32_t cb, SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kDataflow, "get_read_ptr", loc);
  CbState& c = detail::cb_of(k, cb, "get_read_ptr", loc);
  if (k.core->sanitize && (c.waited == 0 || c.consumer != int(k.kind))) {
    raise(ReportKind::kCbAccessOutsideWindow, "get_read_ptr", int(cb), -1, loc,
          "get_read_ptr outside a cb_wait_front ... cb_pop_front window");
  }
  return c.base + c.read_page() * c.page_size;
}

uint32_t get_tile_size(uint32_t cb, SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kDataflow, "get_tile_size", loc);
  return detail::cb_of(k, cb, "get_tile_size", loc).page_size;
}

DataFormat get_dataformat(uint32_t cb, SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kDataflow, "get_dataformat", loc);
  return detail::cb_of(k, cb, "get_dataformat", loc).format;
}

void* l1_ptr(uint32_t l1_addr, uint32_t bytes, SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kDataflow, "l1_ptr", loc);
  return detail::l1_host(k, l1_addr, bytes, "l1_ptr", loc);
}

}  // namespace tilenorm::tile
