// Kernel API of the tile machine: reports, the sanitizer's checks (kernel API domain, dst slot
// bookkeeping, running-sum lint, kernel-end checks) and compute/sanitizer.h.

#include "tile/machine/api/compute/sanitizer.h"

#include <fmt/format.h>

#include <cstring>

#include "tile/machine/kernel_runtime.h"

namespace tilenorm::tile {
namespace detail {

thread_local KernelRuntime* t_kernel = nullptr;

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

void raise(ReportKind kind, const char* op, int cb, int slot, const SrcLoc& loc,
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
// Kernel end.

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

// ---------------------------------------------------------------------------------------------
// Dst slots.

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

}  // namespace detail

using detail::current;
using detail::dst_of;
using detail::dst_slot;
using detail::KernelRuntime;

void sanitizer_allow_accumulate(uint32_t idst, SrcLoc loc) {
  KernelRuntime& k = current();
  if (!k.core->sanitize) return;
  const uint32_t phys = dst_slot(k, idst, true, "sanitizer_allow_accumulate", loc);
  dst_of(k).meta[phys].allow_acc = true;
}

}  // namespace tilenorm::tile
