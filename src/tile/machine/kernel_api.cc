// Kernel API of the tile machine: CBs, NoC, dst protocol, FPU/SFPU/pack numerics and the
// sanitizer checks that go with each call.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "tile/machine/api/cb_api.h"
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
#include "tile/machine/api/compute/sanitizer.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/machine.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile {
namespace detail {

thread_local KernelRuntime* t_kernel = nullptr;

namespace {

constexpr uint16_t kPoisonHalf = 0xffb5;
constexpr uint32_t kPoisonWord = 0xffb5ffb5u;

// Element (row, col) positions of the face layout, for broadcasts, reduce and matmul.
struct Layout {
  uint16_t row[kTileElems];
  uint16_t col[kTileElems];
  uint16_t index[kTileDim][kTileDim];
  constexpr Layout() : row(), col(), index() {
    for (int r = 0; r < kTileDim; ++r) {
      for (int c = 0; c < kTileDim; ++c) {
        const int i = tile_index(r, c);
        row[i] = static_cast<uint16_t>(r);
        col[i] = static_cast<uint16_t>(c);
        index[r][c] = static_cast<uint16_t>(i);
      }
    }
  }
};
constexpr Layout kLayout;

const char* origin_name(Origin o) {
  switch (o) {
    case Origin::kZero:
      return "zero (released section)";
    case Origin::kFill:
      return "fill";
    case Origin::kCopy:
      return "copy";
    case Origin::kAssignFpu:
      return "add/sub";
    case Origin::kSfpu:
      return "SFPU";
    case Origin::kMul:
      return "mul";
    case Origin::kMatmul:
      return "matmul";
    case Origin::kReduce:
      return "reduce";
  }
  return "?";
}

inline KernelRuntime& current() {
  TN_CHECK(t_kernel != nullptr, "a kernel API function was called outside a running kernel");
  return *t_kernel;
}

// The kernel API domains; a kernel may call only its own kind's (tt-metal compiles a reader or
// writer against dataflow_api.h and a compute kernel against compute_kernel_api/, so a call of
// the other domain does not compile there).
enum class Domain : uint8_t { kDataflow, kCompute };

void check_domain(KernelRuntime& k, Domain domain, const char* op, const SrcLoc& loc);

inline float round_tf32(float x) {
  uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return x;
  u += 0x0fffu + ((u >> 13) & 1u);
  return float_from_bits(u & ~0x1fffu);
}

// fp32 -> bf16 (nearest even) -> fp32, NaN kept quiet; branch-free for the whole-tile loops.
inline float round_bf16(float x) {
  const uint32_t u = float_bits(x);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  return float_from_bits(nan ? ((u & 0xffff0000u) | 0x00400000u) : r);
}

inline float dst_round(bool bf16_dst, float x) { return bf16_dst ? round_bf16(x) : x; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reports.

void raise_at(KernelRuntime& k, ReportKind kind, const char* op, int cb, int slot, const char* file,
              uint32_t line, std::string message) {
  CoreRuntime& core = *k.core;
  const bool fatal = kind == ReportKind::kDeadlock;
  if (!fatal && !core.config->repeat_reports) {
    for (const SanitizerReport& seen : core.reports)
      if (seen.kind == kind && seen.line == line && seen.op == op &&
          std::string_view(seen.file) == file)
        return;
  }
  if (core.reports.size() >= kMaxReportsPerCore && !fatal) {
    ++core.dropped_reports;
    return;
  }
  SanitizerReport r;
  r.kind = kind;
  r.core = core.core;
  r.kernel = k.kind;
  r.kernel_name = k.spec != nullptr ? k.spec->name : "";
  r.op = op;
  r.cb = cb;
  r.slot = slot;
  r.file = file;
  r.line = line;
  r.message = std::move(message);
  if (core.config->sanitizer == SanitizerMode::kWarn && core.config->print_warnings && !fatal) {
    fmt::print(stderr, "tile machine warning: {}\n", r.to_string());
  }
  core.reports.push_back(std::move(r));
  if (fatal) core.fatal_report = static_cast<int>(core.reports.size()) - 1;
}

void raise(ReportKind kind, const char* op, int cb, int slot, const std::source_location& loc,
           std::string message, bool fatal) {
  KernelRuntime& k = current();
  CoreRuntime& core = *k.core;
  fatal = fatal || core.error_mode;
  if (fatal && core.reports.size() >= kMaxReportsPerCore) {
    core.reports.pop_back();  // room for the report that stops the core
    ++core.dropped_reports;
  }
  raise_at(k, kind, op, cb, slot, loc.file_name(), loc.line(), std::move(message));
  if (fatal) {
    core.fatal_report = static_cast<int>(core.reports.size()) - 1;
    core.stopping = true;
    throw KernelAbort{};
  }
}

namespace {

void check_domain(KernelRuntime& k, Domain domain, const char* op, const SrcLoc& loc) {
  const bool compute = k.kind == KernelKind::kCompute;
  if (!k.core->sanitize || compute == (domain == Domain::kCompute)) return;
  raise(ReportKind::kKernelApiKind, op, -1, -1, loc,
        fmt::format("{} is {} API, called from a {} kernel: on hardware this does not compile "
                    "({} kernels are built against {})",
                    op, domain == Domain::kCompute ? "compute" : "dataflow (NoC / L1 pointer)",
                    kernel_kind_name(k.kind), kernel_kind_name(k.kind),
                    compute ? "compute_kernel_api/*.h" : "dataflow_api.h"));
}

}  // namespace

std::string dump_core(const CoreRuntime& core) {
  std::string out = fmt::format(
      "  CBs of core {} (pages: pushed-not-popped / total; "
      "reserved by producer; waited by consumer):\n",
      core.core.to_string());
  for (uint32_t i = 0; i < kMaxCbs; ++i) {
    const CbState& c = core.cbs[i];
    if (!c.exists) continue;
    auto who = [](int kind) {
      return kind < 0 ? "-" : kernel_kind_name(static_cast<KernelKind>(kind));
    };
    out += fmt::format(
        "    CB {:2} '{}' {}: {}/{} filled, reserved {}, waited {}, producer {}, "
        "consumer {}, pushed {} popped {}\n",
        i, c.name ? *c.name : "", data_format_name(c.format), c.available(), c.num_pages,
        c.reserved, c.waited, who(c.producer), who(c.consumer), c.pushed, c.popped);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// CBs.

namespace {

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

}  // namespace
}  // namespace detail

using detail::CbState;
using detail::CoreRuntime;
using detail::current;
using detail::dst_round;
using detail::KernelRuntime;
using detail::kLayout;
using detail::origin_name;
using detail::raise;
using detail::round_tf32;

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

// ---------------------------------------------------------------------------------------------
// NoC.

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

namespace {

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

}  // namespace
}  // namespace detail

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

// ---------------------------------------------------------------------------------------------
// Dst protocol.

namespace detail {

void reset_dst(Dst& d, const ComputeConfig& config) {
  d.capacity = (config.fp32_dest_acc_en ? 4u : 8u) * (config.dst_full_sync_en ? 2u : 1u);
  d.sections = config.dst_full_sync_en ? 1u : 2u;
  d.acquired = d.waited = false;
  d.committed = d.math_section = d.pack_section = 0;
  d.cycle = d.section_cycle[0] = d.section_cycle[1] = 0;
  // Firmware clears dst before a kernel starts, so the first acquire also reads zeros. Dst starts
  // zeroed and `dirty` tracks every slot written since, so only those need clearing.
  for (int p = 0; p < kDstTiles; ++p) {
    if (d.dirty & (1u << p)) std::memset(d.data[p], 0, sizeof d.data[p]);
  }
  d.dirty = 0;
  for (SlotMeta& m : d.meta) m = SlotMeta{};
}

void check_kernel_end(KernelRuntime& k) {
  CoreRuntime& core = *k.core;
  const SrcLoc loc = SrcLoc::current();
  if (core.sanitize) {
    const int me = static_cast<int>(k.kind);
    for (uint32_t i = 0; i < kMaxCbs; ++i) {
      const CbState& c = core.cbs[i];
      if (!c.exists) continue;
      if (c.producer == me && c.reserved > 0) {
        raise_at(k, ReportKind::kCbDanglingReserve, "kernel end", int(i), -1, c.reserve_file,
                 c.reserve_line,
                 fmt::format("the kernel ends with {} pages of CB {} reserved (last "
                             "cb_reserve_back at the line given) and not pushed",
                             c.reserved, i));
      }
      if (c.consumer == me && c.waited > 0) {
        raise_at(k, ReportKind::kCbDanglingWait, "kernel end", int(i), -1, c.wait_file, c.wait_line,
                 fmt::format("the kernel ends with {} pages of CB {} waited for (last "
                             "cb_wait_front at the line given) and not popped",
                             c.waited, i));
      }
    }
    if (!k.pending_reads.empty()) {
      const PendingCopy& r = k.pending_reads.front();
      raise_at(k, ReportKind::kNocReadNotBarriered, "kernel end", -1, -1, r.file, r.line,
               "the kernel ends with noc_async_read_tile not followed by a barrier");
    }
    if (!k.pending_writes.empty()) {
      const PendingCopy& w = k.pending_writes.front();
      raise_at(k, ReportKind::kNocWriteNotBarriered, "kernel end", -1, -1, w.file, w.line,
               "the kernel ends with noc_async_write_tile not followed by a barrier");
    }
    const Dst& d = *core.dst;
    if (k.kind == KernelKind::kCompute && (d.acquired || d.committed > 0 || d.waited)) {
      raise_at(k, ReportKind::kDstProtocol, "kernel end", -1, -1, d.acquire_file, d.acquire_line,
               "the kernel ends holding dst: the section of the last tile_regs_acquire (at the "
               "line given) is not committed, waited and released");
    }
  }
  complete_reads(k);
  complete_writes(k, loc);
  if (core.error_mode && !core.reports.empty()) {
    core.fatal_report = 0;
    core.stopping = true;
  }
}

}  // namespace detail

namespace {

using detail::Dst;
using detail::Origin;
using detail::SlotMeta;

inline Dst& dst_of(KernelRuntime& k) { return *k.core->dst; }

// Physical dst tile of index idst in the math (or pack) section.
uint32_t dst_slot(KernelRuntime& k, uint32_t idst, bool math, const char* op, const SrcLoc& loc) {
  Dst& d = dst_of(k);
  if (k.core->sanitize) {
    detail::check_domain(k, detail::Domain::kCompute, op, loc);
    if (math && !d.acquired) {
      raise(ReportKind::kDstOpOutsideAcquire, op, -1, int(idst), loc,
            "dst op outside tile_regs_acquire ... tile_regs_commit");
    }
    if (idst >= d.capacity) {
      raise(ReportKind::kDstSlotOverCapacity, op, -1, int(idst), loc,
            fmt::format("dst index {} but a section holds {} tiles (fp32_dest_acc_en halves it, "
                        "dst_full_sync_en doubles it)",
                        idst, d.capacity));
    }
  }
  const uint32_t total = d.capacity * d.sections;
  return ((math ? d.math_section : d.pack_section) * d.capacity + idst) % total;
}

void note_read(KernelRuntime& k, uint32_t phys, uint32_t idst, const char* op, const SrcLoc& loc) {
  SlotMeta& m = dst_of(k).meta[phys];
  if (m.origin == Origin::kZero) {
    raise(
        ReportKind::kPoisonDstRead, op, -1, int(idst), loc,
        fmt::format("{} reads dst slot {}, which nothing wrote since tile_regs_acquire", op, idst));
  }
  m.read = true;
  m.chain_open = false;
}

void note_assign(KernelRuntime& k, uint32_t phys, uint32_t idst, Origin origin, const char* op,
                 const SrcLoc& loc) {
  SlotMeta& m = dst_of(k).meta[phys];
  if (m.origin != Origin::kZero && !m.read) {
    raise(ReportKind::kDeadStore, op, -1, int(idst), loc,
          fmt::format("{} overwrites dst slot {}, whose value ({} by {} at {}:{}) was never read",
                      op, idst, origin_name(m.origin), m.op, m.file, m.line));
  }
  m = SlotMeta{origin, false, false, false, op, loc.file_name(), loc.line()};
}

// An accumulating op (dst += result) on a slot is quiet when the slot is zero (a fresh section
// or fill_tile(0)), declared (sanitizer_allow_accumulate), or the open chain of the same op:
// matmul_tiles and reduce_tile chains are their ops' purpose (a K loop may change operands); an
// element-wise multiply chain must also keep its operand CBs (a sum of products over tiles).
void note_accumulate(KernelRuntime& k, uint32_t phys, uint32_t idst, Origin chain, const char* op,
                     uint32_t cb0, uint32_t cb1, const SrcLoc& loc) {
  SlotMeta& m = dst_of(k).meta[phys];
  const bool zero = m.origin == Origin::kZero || (m.origin == Origin::kFill && m.fill == 0.0f);
  const bool same_operands = chain != Origin::kMul ||
                             (std::strcmp(m.op, op) == 0 && m.cb0 == int(cb0) && m.cb1 == int(cb1));
  const bool continues = m.origin == chain && m.chain_open;
  if (!zero && !m.allow_acc && !(continues && same_operands)) {
    std::string what;
    if (m.origin == Origin::kFill) {
      what = fmt::format(
          "the non-zero constant {} from fill_tile at {}:{}, so the result is {} + "
          "the product; fill with 0, or declare the carry-in with "
          "sanitizer_allow_accumulate",
          m.fill, m.file, m.line, m.fill);
    } else if (continues) {
      what = fmt::format(
          "the product of {} (CBs {}, {}) at {}:{}, never read: the two products "
          "add up; use another slot or a fresh section for the second product",
          m.op, m.cb0, m.cb1, m.file, m.line);
    } else {
      what = fmt::format(
          "a {} value from {} at {}:{}{}; zero the slot first (fill_tile) or use a "
          "slot of a freshly acquired section",
          origin_name(m.origin), m.op, m.file, m.line,
          m.origin == chain ? " (an earlier accumulation, read since)" : "");
    }
    raise(
        ReportKind::kImplicitAccumulation, op, -1, int(idst), loc,
        fmt::format("{} (CBs {}, {}) accumulates (dst += result) onto dst slot {}, which holds {}",
                    op, cb0, cb1, idst, what));
  }
  const bool from_zero = continues && same_operands ? m.from_zero : zero;
  m = SlotMeta{chain, false, true, false, op, loc.file_name(), loc.line()};
  m.from_zero = from_zero;
  m.cb0 = int(cb0);
  m.cb1 = int(cb1);
}

// A tile of a CB window as fp32 values. `fpu`: the value passes the FPU source registers
// (TF32 for fp32 data in faithful mode).
const uint8_t* cb_page(KernelRuntime& k, uint32_t cb, uint32_t itile, bool producer, const char* op,
                       const SrcLoc& loc, CbState** out) {
  CbState& c = detail::cb_of(k, cb, op, loc);
  *out = &c;
  const uint32_t start = producer ? c.write_page() : c.read_page();
  if (k.core->sanitize) {
    const uint32_t window = producer ? c.reserved : c.waited;
    const int owner = producer ? c.producer : c.consumer;
    if (producer) detail::claim(k, c, cb, true, op, loc);
    if (itile >= window || (owner >= 0 && owner != int(k.kind))) {
      raise(ReportKind::kCbAccessOutsideWindow, op, int(cb), -1, loc,
            fmt::format("tile {} of CB {} but the kernel {} {} pages", itile, cb,
                        producer ? "reserved" : "waited for", window));
    }
  }
  // Unpack and pack address pages linearly from the window's start: they do not wrap at the
  // CB's end, so a wrapping access would read or write past the CB on hardware.
  if (uint64_t{start} + itile >= c.num_pages) {
    raise(ReportKind::kCbAccessOutsideWindow, op, int(cb), -1, loc,
          fmt::format("tile {} of CB {} is page {} of a {}-page CB: the window starts at page {} "
                      "and runs past the CB's end, which unpack and pack do not wrap; use page "
                      "counts that divide the CB size",
                      itile, cb, start + itile, c.num_pages, start),
          true);
  }
  return c.mem + size_t{start + itile} * c.page_size;
}

void unpack(KernelRuntime& k, uint32_t cb, uint32_t itile, bool tf32, const char* op,
            const SrcLoc& loc, float* out) {
  CbState* c = nullptr;
  const uint8_t* p = cb_page(k, cb, itile, false, op, loc, &c);
  if (k.core->sanitize && detail::has_poison(p, c->page_size, c->format)) {
    raise(ReportKind::kPoisonL1Read, op, int(cb), -1, loc,
          fmt::format("tile {} of CB {} holds bytes nothing wrote during this run", itile, cb));
  }
  if (c->format == DataFormat::Float16_b) {
    const auto* h = reinterpret_cast<const uint16_t*>(p);
    for (int i = 0; i < kTileElems; ++i) out[i] = float_from_bits(uint32_t{h[i]} << 16);
    return;
  }
  std::memcpy(out, p, kTileElems * sizeof(float));
  if (tf32 && k.core->faithful) {
    for (int i = 0; i < kTileElems; ++i) out[i] = round_tf32(out[i]);
  }
}

inline void count(KernelRuntime& k, TileOpKind kind) {
  ++k.core->counters.tile_ops[static_cast<int>(kind)];
}

// Stores v into dst (rounded to bf16 when dst is 16-bit in faithful mode).
template <typename F>
void store_tile(KernelRuntime& k, uint32_t phys, F&& value_of) {
  Dst& d = dst_of(k);
  float* out = d.data[phys];
  d.dirty |= 1u << phys;
  if (k.core->dst_bf16) {
    for (int i = 0; i < kTileElems; ++i) out[i] = detail::round_bf16(value_of(i, out[i]));
  } else {
    for (int i = 0; i < kTileElems; ++i) out[i] = value_of(i, out[i]);
  }
}

enum class Bin { kAdd, kSub, kMul };

// Math fidelity (Wormhole ISA documentation, ELWMUL.md and MVMUL.md): per phase the multiplier
// takes 5 significand bits of SrcA and 7 of SrcB. SrcA offers the top 10 of its TF32 significand
// (hidden bit + 9; the TF32 LSB is dropped) as hi = top 5, lo = next 5; SrcB its 11 as hi = top 7,
// lo = next 4. LoFi: A_hi·B_hi; HiFi2 adds A_lo·B_hi; HiFi3 adds A_hi·B_lo; HiFi4 adds A_lo·B_lo.
// Every partial product is exact in fp32 (at most 10 x 11 bits), so the phases sum as below.
// Returns 0 (exact products) in exact mode or with DeviceConfig::math_fidelity_phases off.
int fidelity_phases(const KernelRuntime& k) {
  if (!k.core->faithful || !k.core->config->math_fidelity_phases) return 0;
  return static_cast<int>(k.spec->config.math_fidelity) + 1;  // LoFi 1 ... HiFi4 4
}
constexpr uint32_t kSrcAHi = 0xfff80000u;  // sign, exponent, hidden + 4 bits
constexpr uint32_t kSrcA = 0xffffc000u;    // hidden + 9 bits
constexpr uint32_t kSrcBHi = 0xfffe0000u;  // hidden + 6 bits
constexpr uint32_t kSrcB = 0xffffe000u;    // hidden + 10 bits (TF32)
inline float keep(float x, uint32_t mask) { return float_from_bits(float_bits(x) & mask); }
// srca * srcb as the multiplier computes it with `phases` phases (0: exact).
inline float fidelity_product(float srca, float srcb, int phases) {
  switch (phases) {
    case 1:
      return keep(srca, kSrcAHi) * keep(srcb, kSrcBHi);
    case 2:
      return keep(srca, kSrcA) * keep(srcb, kSrcBHi);
    case 3: {
      const float b_hi = keep(srcb, kSrcBHi);
      return keep(srca, kSrcA) * b_hi + keep(srca, kSrcAHi) * (keep(srcb, kSrcB) - b_hi);
    }
    case 4:
      return keep(srca, kSrcA) * keep(srcb, kSrcB);
    default:
      return srca * srcb;
  }
}

void fpu_binary(Bin op, BroadcastType bcast, uint32_t icb0, uint32_t icb1, uint32_t itile0,
                uint32_t itile1, uint32_t idst, const char* name, SrcLoc loc) {
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, name, loc);
  alignas(64) float a[kTileElems];
  alignas(64) float b[kTileElems];
  unpack(k, icb0, itile0, true, name, loc, a);
  unpack(k, icb1, itile1, true, name, loc, b);
  if (bcast != BroadcastType::NONE) {
    alignas(64) float t[kTileElems];
    for (int i = 0; i < kTileElems; ++i) {
      const int src = bcast == BroadcastType::ROW   ? kLayout.index[0][kLayout.col[i]]
                      : bcast == BroadcastType::COL ? kLayout.index[kLayout.row[i]][0]
                                                    : 0;
      t[i] = b[src];
    }
    std::memcpy(b, t, sizeof t);
  }
  const bool accumulate = op == Bin::kMul || k.acc_to_dest;
  if (k.core->sanitize) {
    const uint32_t p = phys;
    if (op == Bin::kMul) {
      note_accumulate(k, p, idst, Origin::kMul, name, icb0, icb1, loc);
    } else {
      if (accumulate) dst_of(k).meta[p].read = true;  // acc_to_dest reads the old value
      note_assign(k, p, idst, Origin::kAssignFpu, name, loc);
    }
  }
  switch (op) {
    case Bin::kAdd:
      if (accumulate) {
        store_tile(k, phys, [&](int i, float old) { return old + (a[i] + b[i]); });
      } else {
        store_tile(k, phys, [&](int i, float) { return a[i] + b[i]; });
      }
      break;
    case Bin::kSub:
      if (accumulate) {
        store_tile(k, phys, [&](int i, float old) { return old + (a[i] - b[i]); });
      } else {
        store_tile(k, phys, [&](int i, float) { return a[i] - b[i]; });
      }
      break;
    case Bin::kMul: {
      // in0 is SrcA, in1 SrcB.
      const int phases = fidelity_phases(k);
      if (phases > 0) {
        for (int i = 0; i < kTileElems; ++i) a[i] = fidelity_product(a[i], b[i], phases);
      } else {
        for (int i = 0; i < kTileElems; ++i) a[i] *= b[i];
      }
      // tt-llk 001c23a4 (llk_math_eltwise_binary.h): with fidelity phases, a column broadcast
      // multiply ZEROACCs faces 0-1 first, so rows 0-15 are assigned and rows 16-31 accumulate.
      if (bcast == BroadcastType::COL && k.core->config->llk == LlkVersion::k001c23a4 &&
          k.spec->config.math_fidelity != MathFidelity::LoFi) {
        store_tile(k, phys, [&](int i, float old) {
          return (kLayout.row[i] < kFaceDim ? 0.0f : old) + a[i];
        });
      } else {
        store_tile(k, phys, [&](int i, float old) { return old + a[i]; });
      }
      break;
    }
  }
  static constexpr TileOpKind kPlain[] = {TileOpKind::kAdd, TileOpKind::kSub, TileOpKind::kMul};
  static constexpr TileOpKind kBcast[] = {TileOpKind::kAddBcast, TileOpKind::kSubBcast,
                                          TileOpKind::kMulBcast};
  count(k, bcast == BroadcastType::NONE ? kPlain[int(op)] : kBcast[int(op)]);
}

// SFPU: reads operand slots, computes in fp32, stores into `out`.
template <typename F>
void sfpu(uint32_t a, uint32_t b, uint32_t out, bool two_operands, TileOpKind kind,
          const char* name, const SrcLoc& loc, F&& f) {
  KernelRuntime& k = current();
  Dst& d = dst_of(k);
  const uint32_t pa = dst_slot(k, a, true, name, loc);
  const uint32_t pb = two_operands ? dst_slot(k, b, true, name, loc) : pa;
  const uint32_t po = dst_slot(k, out, true, name, loc);
  if (k.core->sanitize) {
    note_read(k, pa, a, name, loc);
    if (two_operands) note_read(k, pb, b, name, loc);
    note_assign(k, po, out, Origin::kSfpu, name, loc);
  }
  const float* x = d.data[pa];
  const float* y = d.data[pb];
  if (po == pa || po == pb) {
    alignas(64) float t[kTileElems];
    for (int i = 0; i < kTileElems; ++i) t[i] = f(x[i], y[i]);
    store_tile(k, po, [&](int i, float) { return t[i]; });
  } else {
    store_tile(k, po, [&](int i, float) { return f(x[i], y[i]); });
  }
  count(k, kind);
}

}  // namespace

void tile_regs_acquire(SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kCompute, "tile_regs_acquire", loc);
  Dst& d = dst_of(k);
  if (k.core->sanitize && d.acquired) {
    raise(ReportKind::kDstNestedAcquire, "tile_regs_acquire", -1, -1, loc,
          "tile_regs_acquire inside an acquired section (no commit since the last acquire): "
          "the inner commit hands the outer section to the packer, whose release zeroes it");
  }
  if (d.committed >= d.sections) {
    raise(ReportKind::kDstProtocol, "tile_regs_acquire", -1, -1, loc,
          "no free dst section (all committed and not released): would block forever", true);
  }
  d.acquired = true;
  d.section_cycle[d.math_section] = ++d.cycle;
  d.acquire_file = loc.file_name();
  d.acquire_line = loc.line();
}

void tile_regs_commit(SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kCompute, "tile_regs_commit", loc);
  Dst& d = dst_of(k);
  if (!d.acquired && k.core->sanitize) {
    raise(ReportKind::kDstProtocol, "tile_regs_commit", -1, -1, loc,
          "tile_regs_commit without tile_regs_acquire");
  }
  d.acquired = false;
  d.committed = std::min(d.committed + 1, d.sections);
  if (d.sections == 2) d.math_section ^= 1u;
}

void tile_regs_wait(SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kCompute, "tile_regs_wait", loc);
  Dst& d = dst_of(k);
  if (d.committed == 0) {
    raise(ReportKind::kDstProtocol, "tile_regs_wait", -1, -1, loc,
          "tile_regs_wait with no committed section: would block forever", true);
  }
  d.waited = true;
}

void tile_regs_release(SrcLoc loc) {
  KernelRuntime& k = current();
  detail::check_domain(k, detail::Domain::kCompute, "tile_regs_release", loc);
  Dst& d = dst_of(k);
  if (!d.waited && k.core->sanitize) {
    raise(ReportKind::kDstProtocol, "tile_regs_release", -1, -1, loc,
          "tile_regs_release without tile_regs_wait");
  }
  const uint32_t first = d.pack_section * d.capacity;
  for (uint32_t p = first; p < first + d.capacity; ++p) {
    SlotMeta& m = d.meta[p];
    if (k.core->sanitize && m.origin != Origin::kZero && !m.read) {
      raise(ReportKind::kDeadStore, "tile_regs_release", -1, int(p - first), loc,
            fmt::format("dst slot {} ({} by {} at {}:{}) is released without being packed or "
                        "read",
                        p - first, origin_name(m.origin), m.op, m.file, m.line));
    }
    m = SlotMeta{};
    if (d.dirty & (1u << p)) std::memset(d.data[p], 0, sizeof d.data[p]);
    d.dirty &= ~(1u << p);
  }
  d.waited = false;
  if (d.committed > 0) --d.committed;
  if (d.sections == 2) d.pack_section ^= 1u;
}

namespace {

// A partial packed from an accumulated slot into an unpushed page, then overwritten by the next
// section's pack of the same page: the sum restarted from zero and the earlier partial is lost.
void lint_running_sum(KernelRuntime& k, CbState& c, uint32_t ocb, uint32_t page, uint32_t phys,
                      uint32_t idst, const SrcLoc& loc) {
  Dst& d = dst_of(k);
  const SlotMeta& m = d.meta[phys];
  const bool accumulated =
      m.origin == Origin::kMul || m.origin == Origin::kMatmul || m.origin == Origin::kReduce;
  const uint32_t cycle = d.section_cycle[d.sections == 2 ? d.pack_section : 0];
  detail::PackMark& mark = c.packs[(c.write_page() + page) % c.num_pages];
  if (mark.cycle != 0 && mark.cycle != cycle && mark.accumulated && accumulated && m.from_zero) {
    raise(ReportKind::kRunningSumLost, "pack_tile", int(ocb), int(idst), loc,
          fmt::format("pack_tile writes page {} of CB {} from the accumulated dst slot {}, but "
                      "pack_tile at {}:{} packed an accumulated slot {} of an earlier dst section "
                      "there and the page was not pushed since, and this sum started from zero: "
                      "that partial is lost (a section starts from zero, so a sum across sections "
                      "must carry its partial in)",
                      page, ocb, idst, mark.file, mark.line, mark.slot));
  }
  mark = {cycle, accumulated, int(idst), loc.file_name(), loc.line()};
}

}  // namespace

void detail::pack_tile_at(uint32_t idst, uint32_t ocb, uint32_t index, bool out_of_order,
                          bool index_given, SrcLoc loc) {
  KernelRuntime& k = current();
  Dst& d = dst_of(k);
  CbState& cbs = detail::cb_of(k, ocb, "pack_tile", loc);
  const uint32_t out_tile_index = out_of_order ? index : cbs.pack_pos;
  if (!out_of_order) {
    if (k.core->sanitize && index_given && index != cbs.pack_pos) {
      raise(ReportKind::kPackIndexIgnored, "pack_tile", int(ocb), int(idst), loc,
            fmt::format("in-order pack_tile ignores its index {}: it writes page {} of CB {}'s "
                        "reserved window (the pack position, advanced by each in-order pack and "
                        "reset by cb_push_back); pack_tile<true> writes the page named",
                        index, cbs.pack_pos, ocb));
    }
    ++cbs.pack_pos;
  }
  if (k.core->sanitize && !d.waited) {
    raise(ReportKind::kDstPackBeforeCommit, "pack_tile", int(ocb), int(idst), loc,
          "pack_tile before tile_regs_commit + tile_regs_wait: the packer may read a section "
          "the math engine is still writing");
  }
  const uint32_t phys = dst_slot(k, idst, false, "pack_tile", loc);
  if (k.core->sanitize) note_read(k, phys, idst, "pack_tile", loc);
  CbState* c = nullptr;
  uint8_t* p = const_cast<uint8_t*>(cb_page(k, ocb, out_tile_index, true, "pack_tile", loc, &c));
  if (!c->packs.empty()) lint_running_sum(k, *c, ocb, out_tile_index, phys, idst, loc);
  const float* v = d.data[phys];
  if (c->format == DataFormat::Float16_b) {
    auto* h = reinterpret_cast<uint16_t*>(p);
    if (k.core->faithful) {
      for (int i = 0; i < kTileElems; ++i) h[i] = packer_round_bf16(v[i]);
    } else {
      for (int i = 0; i < kTileElems; ++i) h[i] = float_to_bf16(v[i]).bits;
    }
  } else {
    std::memcpy(p, v, kTileElems * sizeof(float));  // fp32 -> fp32: the identity
  }
  count(k, TileOpKind::kPack);
}

void pack_reconfig_data_format(uint32_t) {}
void reconfig_data_format(uint32_t, uint32_t) {}
void reconfig_data_format_srca(uint32_t) {}
void reconfig_data_format_srcb(uint32_t) {}
void init_sfpu(uint32_t, uint32_t) { current().acc_to_dest = false; }
void binary_op_init_common(uint32_t, uint32_t, uint32_t) { current().acc_to_dest = false; }

void copy_tile_init(uint32_t) {}
void copy_tile_to_dst_init_short(uint32_t) {}

namespace {

void datacopy(BroadcastType bcast, uint32_t icb, uint32_t itile, uint32_t idst, const char* name,
              const SrcLoc& loc) {
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, name, loc);
  if (k.core->sanitize) note_assign(k, phys, idst, Origin::kCopy, name, loc);
  const bool tf32 = !k.spec->config.unpacks_to_dest(icb);
  Dst& d = dst_of(k);
  CbState& c = detail::cb_of(k, icb, name, loc);
  if (bcast == BroadcastType::NONE && c.format == DataFormat::Float16_b) {
    // bf16 values are exact in any dst format: the common case needs no rounding pass.
    unpack(k, icb, itile, tf32, name, loc, d.data[phys]);
    d.dirty |= 1u << phys;
  } else {
    alignas(64) float a[kTileElems];
    unpack(k, icb, itile, tf32, name, loc, a);
    store_tile(k, phys, [&](int i, float) {
      const int src = bcast == BroadcastType::ROW      ? kLayout.index[0][kLayout.col[i]]
                      : bcast == BroadcastType::COL    ? kLayout.index[kLayout.row[i]][0]
                      : bcast == BroadcastType::SCALAR ? 0
                                                       : i;
      return a[src];
    });
  }
  count(k, bcast == BroadcastType::NONE ? TileOpKind::kCopy : TileOpKind::kUnaryBcast);
}

}  // namespace

void copy_tile(uint32_t icb, uint32_t itile, uint32_t idst, SrcLoc loc) {
  datacopy(BroadcastType::NONE, icb, itile, idst, "copy_tile", loc);
}

void detail::unary_bcast(BroadcastType bcast, uint32_t icb, uint32_t itile, uint32_t idst,
                         SrcLoc loc) {
  datacopy(bcast, icb, itile, idst, "unary_bcast", loc);
}

void detail::binary_init(EltwiseBinaryType op, bool acc_to_dest) {
  current().acc_to_dest = op != EltwiseBinaryType::ELWMUL && acc_to_dest;
}

void add_tiles_init(uint32_t, uint32_t, bool acc) {
  detail::binary_init(EltwiseBinaryType::ELWADD, acc);
}
void sub_tiles_init(uint32_t, uint32_t, bool acc) {
  detail::binary_init(EltwiseBinaryType::ELWSUB, acc);
}
void mul_tiles_init(uint32_t, uint32_t) { detail::binary_init(EltwiseBinaryType::ELWMUL, false); }

void add_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t idst, SrcLoc loc) {
  fpu_binary(Bin::kAdd, BroadcastType::NONE, a, b, ia, ib, idst, "add_tiles", loc);
}
void sub_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t idst, SrcLoc loc) {
  fpu_binary(Bin::kSub, BroadcastType::NONE, a, b, ia, ib, idst, "sub_tiles", loc);
}
void mul_tiles(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t idst, SrcLoc loc) {
  fpu_binary(Bin::kMul, BroadcastType::NONE, a, b, ia, ib, idst, "mul_tiles", loc);
}

// tt-llk (llk_math_eltwise_binary.h, both commits the machine names): with dest reuse the math
// thread moves dst into SrcA / SrcB (MOVD2A / MOVD2B) and ZEROACCs the slot before the op.
void detail::binary_dest_reuse(EltwiseBinaryType op, EltwiseBinaryReuseDestType reuse, uint32_t icb,
                               uint32_t itile, uint32_t idst, SrcLoc loc) {
  static constexpr const char* kName = "binary_dest_reuse_tiles";
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, kName, loc);
  alignas(64) float c[kTileElems];
  unpack(k, icb, itile, true, kName, loc, c);
  if (k.core->sanitize) {
    note_read(k, phys, idst, kName, loc);
    note_assign(k, phys, idst, Origin::kAssignFpu, kName, loc);
  }
  Dst& d = dst_of(k);
  alignas(64) float m[kTileElems];  // the dst tile in its source register
  for (int i = 0; i < kTileElems; ++i) {
    m[i] = k.core->faithful ? round_tf32(d.data[phys][i]) : d.data[phys][i];
  }
  const bool dst_is_a = reuse == EltwiseBinaryReuseDestType::DEST_TO_SRCA;
  const float* a = dst_is_a ? m : c;
  const float* b = dst_is_a ? c : m;
  const int phases = fidelity_phases(k);
  switch (op) {
    case EltwiseBinaryType::ELWADD:
      store_tile(k, phys, [&](int i, float) { return a[i] + b[i]; });
      break;
    case EltwiseBinaryType::ELWSUB:
      store_tile(k, phys, [&](int i, float) { return a[i] - b[i]; });
      break;
    case EltwiseBinaryType::ELWMUL:
      store_tile(k, phys, [&](int i, float) { return fidelity_product(a[i], b[i], phases); });
      break;
  }
  static constexpr TileOpKind kKind[] = {TileOpKind::kAdd, TileOpKind::kSub, TileOpKind::kMul};
  count(k, kKind[int(op)]);
}

#define TN_BCAST_INIT(name, op) \
  void name(uint32_t, uint32_t) { detail::binary_init(EltwiseBinaryType::op, false); }
TN_BCAST_INIT(add_bcast_rows_init_short, ELWADD)
TN_BCAST_INIT(add_bcast_cols_init_short, ELWADD)
TN_BCAST_INIT(add_bcast_scalar_init_short, ELWADD)
TN_BCAST_INIT(sub_bcast_rows_init_short, ELWSUB)
TN_BCAST_INIT(sub_bcast_cols_init_short, ELWSUB)
TN_BCAST_INIT(sub_tiles_bcast_scalar_init_short, ELWSUB)
TN_BCAST_INIT(mul_bcast_rows_init_short, ELWMUL)
TN_BCAST_INIT(mul_bcast_cols_init_short, ELWMUL)
TN_BCAST_INIT(mul_tiles_bcast_scalar_init_short, ELWMUL)
#undef TN_BCAST_INIT

#define TN_BCAST_OP(name, op, bcast)                                                       \
  void name(uint32_t a, uint32_t b, uint32_t ia, uint32_t ib, uint32_t idst, SrcLoc loc) { \
    fpu_binary(Bin::op, BroadcastType::bcast, a, b, ia, ib, idst, #name, loc);             \
  }
TN_BCAST_OP(add_tiles_bcast_rows, kAdd, ROW)
TN_BCAST_OP(add_tiles_bcast_cols, kAdd, COL)
TN_BCAST_OP(add_tiles_bcast_scalar, kAdd, SCALAR)
TN_BCAST_OP(sub_tiles_bcast_rows, kSub, ROW)
TN_BCAST_OP(sub_tiles_bcast_cols, kSub, COL)
TN_BCAST_OP(sub_tiles_bcast_scalar, kSub, SCALAR)
TN_BCAST_OP(mul_tiles_bcast_rows, kMul, ROW)
TN_BCAST_OP(mul_tiles_bcast_cols, kMul, COL)
TN_BCAST_OP(mul_tiles_bcast_scalar, kMul, SCALAR)
#undef TN_BCAST_OP

void detail::reduce_tile(PoolType pool, ReduceDim dim, uint32_t icb, uint32_t icb_scaler,
                         uint32_t itile, uint32_t itile_scaler, uint32_t idst, SrcLoc loc) {
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, "reduce_tile", loc);
  alignas(64) float a[kTileElems];
  alignas(64) float s[kTileElems];
  unpack(k, icb, itile, true, "reduce_tile", loc, a);
  unpack(k, icb_scaler, itile_scaler, true, "reduce_tile", loc, s);
  if (k.core->sanitize)
    note_accumulate(k, phys, idst, Origin::kReduce, "reduce_tile", icb, icb_scaler, loc);
  const float scale = s[0];
  const bool is_max = pool == PoolType::MAX;
  Dst& d = dst_of(k);
  float* out = d.data[phys];
  d.dirty |= 1u << phys;
  auto combine = [&](float acc, float v) { return is_max ? std::max(acc, v) : acc + v; };
  auto finish = [&](int at, float r) {
    const float v = is_max ? std::max(out[at], r) : out[at] + r;
    out[at] = dst_round(k.core->dst_bf16, v);
  };
  const float init = is_max ? -INFINITY : 0.0f;
  auto row_pool = [&](int r) {
    float acc = init;
    for (int c = 0; c < kTileDim; ++c) acc = combine(acc, a[kLayout.index[r][c]] * scale);
    return acc;
  };
  const ReduceRowDst row_dst = k.core->config->reduce_row;
  if (dim == ReduceDim::REDUCE_ROW && row_dst != ReduceRowDst::kColumn) {
    // tt-llk llk_math_reduce.h (Wormhole), per half of the tile: the pool of rows R..R+15 lands
    // in row R (element (R, j) holds row R+j's), MOVD2B copies that row into SrcB row 16,
    // TRNSPSRCB turns it into column 0 of SrcB rows 16-31, a second MOVD2B restores row 16, and
    // two ELWADDs (SrcA zeroed) assign SrcB rows 16-31 to the face. MOVD2B reads fp32 dst as the
    // SrcA format's style: bf16 (a bf16 CB) or TF32 (fp32 data), by truncation.
    uint32_t keep = 0xffffffffu;
    if (row_dst == ReduceRowDst::kSrcBTranspose && k.core->faithful && !k.core->dst_bf16) {
      keep = detail::cb_of(k, icb, "reduce_tile", loc).format == DataFormat::Float16_b
                 ? 0xffff0000u
                 : 0xffffe000u;
    }
    for (int half = 0; half < 2; ++half) {
      const int r0 = 16 * half;
      float moved[16];
      for (int j = 0; j < 16; ++j) {
        const int at = kLayout.index[r0][j];
        finish(at, row_pool(r0 + j));
        moved[j] = float_from_bits(float_bits(out[at]) & keep);
      }
      for (int i = 0; i < 16; ++i) {
        for (int j = 0; j < 16; ++j) {
          // Off row 0 and column 0 the face receives SrcB rows 17-31 as an earlier op left them.
          const float v = i == 0   ? moved[j]
                          : j == 0 ? moved[i]
                                   : std::numeric_limits<float>::quiet_NaN();
          out[kLayout.index[r0 + i][j]] = dst_round(k.core->dst_bf16, v);
        }
      }
    }
  } else if (dim == ReduceDim::REDUCE_ROW) {
    for (int r = 0; r < kTileDim; ++r) finish(kLayout.index[r][0], row_pool(r));
  } else if (dim == ReduceDim::REDUCE_COL) {
    for (int c = 0; c < kTileDim; ++c) {
      float acc = init;
      for (int r = 0; r < kTileDim; ++r) acc = combine(acc, a[kLayout.index[r][c]] * scale);
      finish(kLayout.index[0][c], acc);
    }
  } else {
    float acc = init;
    for (int r = 0; r < kTileDim; ++r) {
      for (int c = 0; c < kTileDim; ++c) acc = combine(acc, a[kLayout.index[r][c]] * scale);
    }
    finish(0, acc);
  }
  count(k, TileOpKind::kReduce);
}

void mm_init(uint32_t, uint32_t, uint32_t, uint32_t transpose) {
  current().mm_transpose = transpose != 0;
}
void mm_init_short(uint32_t, uint32_t, uint32_t transpose) {
  current().mm_transpose = transpose != 0;
}

void matmul_tiles(uint32_t in0, uint32_t in1, uint32_t i0, uint32_t i1, uint32_t idst, SrcLoc loc) {
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, "matmul_tiles", loc);
  alignas(64) float a[kTileElems];
  alignas(64) float b[kTileElems];
  unpack(k, in0, i0, true, "matmul_tiles", loc, a);
  unpack(k, in1, i1, true, "matmul_tiles", loc, b);
  if (k.core->sanitize)
    note_accumulate(k, phys, idst, Origin::kMatmul, "matmul_tiles", in0, in1, loc);
  // Row-major copies so the inner loop is contiguous.
  alignas(64) float am[kTileDim][kTileDim];
  alignas(64) float bm[kTileDim][kTileDim];
  for (int r = 0; r < kTileDim; ++r) {
    for (int c = 0; c < kTileDim; ++c) {
      am[r][c] = a[kLayout.index[r][c]];
      bm[r][c] = k.mm_transpose ? b[kLayout.index[c][r]] : b[kLayout.index[r][c]];
    }
  }
  // MVMUL: in0 is SrcB, in1 SrcA (Dst += SrcB @ SrcA; ISA MVMUL.md). With fidelity phases the
  // operands are cut to the bits the phases take (HiFi3: two products, fidelity_product).
  const int phases = fidelity_phases(k);
  alignas(64) float am2[kTileDim][kTileDim];
  alignas(64) float bm2[kTileDim][kTileDim];
  if (phases > 0) {
    const uint32_t a_mask = phases == 4 || phases == 3 ? kSrcB : kSrcBHi;
    const uint32_t b_mask = phases == 1 ? kSrcAHi : kSrcA;
    for (int r = 0; r < kTileDim; ++r) {
      for (int c = 0; c < kTileDim; ++c) {
        const float x = am[r][c], y = bm[r][c];
        am[r][c] = keep(x, phases == 3 ? kSrcBHi : a_mask);
        bm[r][c] = keep(y, b_mask);
        am2[r][c] = keep(x, kSrcB) - keep(x, kSrcBHi);  // SrcB lo, for HiFi3
        bm2[r][c] = keep(y, kSrcAHi);
      }
    }
  }
  Dst& d = dst_of(k);
  float* out = d.data[phys];
  d.dirty |= 1u << phys;
  for (int r = 0; r < kTileDim; ++r) {
    float acc[kTileDim] = {};
    if (phases == 3) {
      for (int kk = 0; kk < kTileDim; ++kk) {
        for (int c = 0; c < kTileDim; ++c) acc[c] += am2[r][kk] * bm2[kk][c];
      }
    }
    for (int kk = 0; kk < kTileDim; ++kk) {
      for (int c = 0; c < kTileDim; ++c) acc[c] += am[r][kk] * bm[kk][c];
    }
    for (int c = 0; c < kTileDim; ++c) {
      float& o = out[kLayout.index[r][c]];
      o = dst_round(k.core->dst_bf16, o + acc[c]);
    }
  }
  count(k, TileOpKind::kMatmul);
}

void add_binary_tile_init() {}
void sub_binary_tile_init() {}
void mul_binary_tile_init() {}
void add_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc) {
  sfpu(a, b, out, true, TileOpKind::kSfpuBinary, "add_binary_tile", loc,
       [](float x, float y) { return x + y; });
}
void sub_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc) {
  sfpu(a, b, out, true, TileOpKind::kSfpuBinary, "sub_binary_tile", loc,
       [](float x, float y) { return x - y; });
}
void mul_binary_tile(uint32_t a, uint32_t b, uint32_t out, SrcLoc loc) {
  sfpu(a, b, out, true, TileOpKind::kSfpuBinary, "mul_binary_tile", loc,
       [](float x, float y) { return x * y; });
}
void add_binary_tile(uint32_t a, uint32_t b, SrcLoc loc) { add_binary_tile(a, b, a, loc); }
void sub_binary_tile(uint32_t a, uint32_t b, SrcLoc loc) { sub_binary_tile(a, b, a, loc); }
void mul_binary_tile(uint32_t a, uint32_t b, SrcLoc loc) { mul_binary_tile(a, b, a, loc); }

void fill_tile_init() {}
void fill_tile(uint32_t idst, float value, SrcLoc loc) {
  KernelRuntime& k = current();
  const uint32_t phys = dst_slot(k, idst, true, "fill_tile", loc);
  if (k.core->sanitize) {
    note_assign(k, phys, idst, Origin::kFill, "fill_tile", loc);
    dst_of(k).meta[phys].fill = value;
  }
  store_tile(k, phys, [&](int, float) { return value; });
  count(k, TileOpKind::kFill);
}

void mask_tile_init() {}
void mask_tile(uint32_t idst_data, uint32_t idst_mask, SrcLoc loc) {
  KernelRuntime& k = current();
  if (k.core->sanitize && idst_mask != idst_data + 1) {
    raise(ReportKind::kMaskSlot, "mask_tile", -1, int(idst_mask), loc,
          fmt::format("mask_tile({}, {}): the hardware reads the mask from slot {} (data + 1), "
                      "not {}",
                      idst_data, idst_mask, idst_data + 1, idst_mask));
  }
  sfpu(idst_data, idst_data + 1, idst_data, true, TileOpKind::kMask, "mask_tile", loc,
       [](float x, float m) { return m == 0.0f ? 0.0f : x; });
}

void rsqrt_tile_init() {}
void rsqrt_tile(uint32_t idst, SrcLoc loc) {
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "rsqrt_tile", loc,
       [](float x, float) { return 1.0f / std::sqrt(x); });
}
void recip_tile_init() {}
void recip_tile(uint32_t idst, SrcLoc loc) {
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "recip_tile", loc,
       [](float x, float) { return 1.0f / x; });
}
void sqrt_tile_init() {}
void sqrt_tile(uint32_t idst, SrcLoc loc) {
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "sqrt_tile", loc,
       [](float x, float) { return std::sqrt(x); });
}
void square_tile_init() {}
void square_tile(uint32_t idst, SrcLoc loc) {
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "square_tile", loc,
       [](float x, float) { return x * x; });
}
void binop_with_scalar_tile_init() {}
void add_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc) {
  const float s = float_from_bits(param);
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "add_unary_tile", loc,
       [s](float x, float) { return x + s; });
}
void sub_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc) {
  const float s = float_from_bits(param);
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "sub_unary_tile", loc,
       [s](float x, float) { return x - s; });
}
void mul_unary_tile(uint32_t idst, uint32_t param, SrcLoc loc) {
  const float s = float_from_bits(param);
  sfpu(idst, idst, idst, false, TileOpKind::kSfpuUnary, "mul_unary_tile", loc,
       [s](float x, float) { return x * s; });
}

void sanitizer_allow_accumulate(uint32_t idst, SrcLoc loc) {
  KernelRuntime& k = current();
  if (!k.core->sanitize) return;
  const uint32_t phys = dst_slot(k, idst, true, "sanitizer_allow_accumulate", loc);
  dst_of(k).meta[phys].allow_acc = true;
}

}  // namespace tilenorm::tile
