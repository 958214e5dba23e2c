// Kernel API of the tile machine: the dst register protocol (compute/reg_api.h), the unpacker
// into dst (compute/tile_move_copy.h, unary broadcasts of compute/bcast.h) and the packer
// (compute/pack.h), with the sanitizer checks that go with each call.

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "tile/machine/api/compute/bcast.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reconfig_data_format.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/machine/kernel_runtime.h"

namespace tilenorm::tile {
namespace detail {

void reset_dst(Dst& d, const ComputeConfig& config) {
  d.capacity = (config.fp32_dest_acc_en ? 4u : 8u) * (config.dst_full_sync_en ? 2u : 1u);
  d.sections = config.dst_full_sync_en ? 1u : 2u;
  d.acquired = d.waited = d.wait_pending = d.both_threads = d.both_packed = false;
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

// Physical dst tile of index idst in the math (or pack) section.
uint32_t dst_slot(KernelRuntime& k, uint32_t idst, bool math, const char* op, const SrcLoc& loc) {
  Dst& d = dst_of(k);
  if (k.core->sanitize) {
    detail::check_domain(k, detail::Domain::kCompute, op, loc);
    if (math && !d.acquired) {
      raise(ReportKind::kDstOpOutsideAcquire, op, -1, int(idst), loc,
            "dst op outside tile_regs_acquire ... tile_regs_commit");
    }
    if (math && d.both_packed && std::strcmp(op, "pack_tile") != 0) {
      raise(ReportKind::kDstProtocol, op, -1, int(idst), loc,
            "dst op after a pack_tile of the same acquire_dst section: on hardware the packer "
            "waits for release_dst, so that pack would see this op's result; here it ran at "
            "its call");
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

namespace {

// The page of CB `cb` that unpack (the consumer's waited window) or pack (the producer's
// reserved window) addresses as tile `itile`.
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

}  // namespace

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

}  // namespace detail

using namespace detail;  // the kernel API runtime (kernel_runtime.h)

namespace {

// The dst of the running kernel, which calls `op` of the compute API.
Dst& compute_dst(KernelRuntime& k, const char* op, const SrcLoc& loc) {
  check_domain(k, Domain::kCompute, op, loc);
  return dst_of(k);
}

// A `dst-protocol` report of `op`; fatal where the call would block forever.
void protocol_error(const char* op, const SrcLoc& loc, const char* message, bool fatal = false) {
  raise(ReportKind::kDstProtocol, op, -1, -1, loc, message, fatal);
}

}  // namespace

void tile_regs_acquire(SrcLoc loc) {
  KernelRuntime& k = current();
  Dst& d = compute_dst(k, "tile_regs_acquire", loc);
  if (k.core->sanitize && d.acquired) {
    raise(ReportKind::kDstNestedAcquire, "tile_regs_acquire", -1, -1, loc,
          "tile_regs_acquire inside an acquired section (no commit since the last acquire): "
          "the inner commit hands the outer section to the packer, whose release zeroes it");
  }
  if (d.committed >= d.sections) {
    protocol_error("tile_regs_acquire", loc,
                   "no free dst section (all committed and not released): would block forever",
                   true);
  }
  d.acquired = true;
  d.section_cycle[d.math_section] = ++d.cycle;
  d.acquire_file = loc.file_name();
  d.acquire_line = loc.line();
}

void tile_regs_commit(SrcLoc loc) {
  KernelRuntime& k = current();
  Dst& d = compute_dst(k, "tile_regs_commit", loc);
  if (!d.acquired && k.core->sanitize) {
    protocol_error("tile_regs_commit", loc, "tile_regs_commit without tile_regs_acquire");
  }
  d.acquired = false;
  d.committed = std::min(d.committed + 1, d.sections);
  if (d.sections == 2) d.math_section ^= 1u;
  if (d.wait_pending) {
    d.wait_pending = false;
    d.waited = true;
  }
}

void tile_regs_wait(SrcLoc loc) {
  KernelRuntime& k = current();
  Dst& d = compute_dst(k, "tile_regs_wait", loc);
  // wait before commit: on hardware the packer's wait and the math engine's commit run on
  // different threads, so a wait written before the commit of an acquired section returns once
  // that commit comes.
  if (d.committed == 0 && d.acquired) {
    d.wait_pending = true;
    return;
  }
  if (d.committed == 0) {
    protocol_error("tile_regs_wait", loc,
                   "tile_regs_wait with no committed section: would block forever", true);
  }
  d.waited = true;
}

void tile_regs_release(SrcLoc loc) {
  KernelRuntime& k = current();
  Dst& d = compute_dst(k, "tile_regs_release", loc);
  if (!d.waited && k.core->sanitize) {
    protocol_error("tile_regs_release", loc, "tile_regs_release without tile_regs_wait");
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

void acquire_dst(SrcLoc loc) {
  tile_regs_acquire(loc);
  Dst& d = dst_of(current());
  d.both_threads = true;
  d.both_packed = false;
}

void release_dst(SrcLoc loc) {
  KernelRuntime& k = current();
  Dst& d = compute_dst(k, "release_dst", loc);
  if (!d.both_threads) {
    protocol_error("release_dst", loc, "release_dst without acquire_dst", true);
  }
  tile_regs_commit(loc);
  d.waited = true;  // the packer's wait returned at the math engine's release
  d.both_threads = d.both_packed = false;
  tile_regs_release(loc);
}

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
  // In an acquire_dst section the pack reads the section the math engine holds.
  const bool both = d.both_threads && d.acquired;
  if (k.core->sanitize && !d.waited && !both) {
    raise(ReportKind::kDstPackBeforeCommit, "pack_tile", int(ocb), int(idst), loc,
          "pack_tile before tile_regs_commit + tile_regs_wait: the packer may read a section "
          "the math engine is still writing");
  }
  const uint32_t phys = dst_slot(k, idst, both, "pack_tile", loc);
  if (both) d.both_packed = true;
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

}  // namespace tilenorm::tile
