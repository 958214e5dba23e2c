// Names and printing of the tile machine's reports and counters.
#include "tile/machine/report.h"

#include <fmt/format.h>

namespace tilenorm::tile {

std::string CoreCoord::to_string() const { return fmt::format("(x={}, y={})", x, y); }

const char* kernel_kind_name(KernelKind kind) {
  switch (kind) {
    case KernelKind::kReader:
      return "reader";
    case KernelKind::kCompute:
      return "compute";
    case KernelKind::kWriter:
      return "writer";
  }
  return "?";
}

const char* report_kind_name(ReportKind kind) {
  switch (kind) {
    case ReportKind::kDeadlock:
      return "deadlock";
    case ReportKind::kCbOverCapacity:
      return "cb-over-capacity";
    case ReportKind::kCbPopMoreThanWaited:
      return "cb-pop-more-than-waited";
    case ReportKind::kCbPushWithoutReserve:
      return "cb-push-without-reserve";
    case ReportKind::kCbAccessOutsideWindow:
      return "cb-access-outside-window";
    case ReportKind::kCbTwoProducers:
      return "cb-two-producers";
    case ReportKind::kCbTwoConsumers:
      return "cb-two-consumers";
    case ReportKind::kCbDanglingReserve:
      return "cb-dangling-reserve";
    case ReportKind::kCbDanglingWait:
      return "cb-dangling-wait";
    case ReportKind::kCbUnknown:
      return "cb-unknown";
    case ReportKind::kNocReadNotBarriered:
      return "noc-read-not-barriered";
    case ReportKind::kNocWriteNotBarriered:
      return "noc-write-not-barriered";
    case ReportKind::kNocBadAccess:
      return "noc-bad-access";
    case ReportKind::kDstOpOutsideAcquire:
      return "dst-op-outside-acquire";
    case ReportKind::kDstNestedAcquire:
      return "dst-nested-acquire";
    case ReportKind::kDstPackBeforeCommit:
      return "dst-pack-before-commit";
    case ReportKind::kDstSlotOverCapacity:
      return "dst-slot-over-capacity";
    case ReportKind::kDstProtocol:
      return "dst-protocol";
    case ReportKind::kPoisonDstRead:
      return "poison-dst-read";
    case ReportKind::kPoisonL1Read:
      return "poison-l1-read";
    case ReportKind::kImplicitAccumulation:
      return "implicit-accumulation";
    case ReportKind::kDeadStore:
      return "dead-store";
    case ReportKind::kMaskSlot:
      return "mask-slot";
    case ReportKind::kRunningSumLost:
      return "running-sum-lost";
    case ReportKind::kKernelApiKind:
      return "kernel-api-kind";
    case ReportKind::kPackIndexIgnored:
      return "pack-index-ignored";
    case ReportKind::kArgOutOfRange:
      return "arg-out-of-range";
  }
  return "?";
}

const char* tile_op_kind_name(TileOpKind kind) {
  static constexpr const char* kNames[] = {
      "copy_tile",       "unary_bcast",     "add_tiles",       "sub_tiles",    "mul_tiles",
      "add_tiles_bcast", "sub_tiles_bcast", "mul_tiles_bcast", "matmul_tiles", "reduce_tile",
      "sfpu_binary",     "sfpu_unary",      "fill_tile",       "mask_tile",    "pack_tile"};
  static_assert(std::size(kNames) == kNumTileOpKinds);
  return static_cast<int>(kind) < kNumTileOpKinds ? kNames[static_cast<int>(kind)] : "?";
}

std::string SanitizerReport::to_string() const {
  std::string where = line > 0 ? fmt::format(" ({}:{})", file, line) : std::string();
  std::string what;
  if (cb >= 0) what += fmt::format(" cb {}", cb);
  if (slot >= 0) what += fmt::format(" slot {}", slot);
  return fmt::format("{} at core {} {} '{}' {}{}{}: {}", report_kind_name(kind), core.to_string(),
                     kernel_kind_name(kernel), kernel_name, op, what, where, message);
}

uint64_t CoreCounters::dram_bytes_read() const {
  uint64_t n = 0;
  for (const KernelCounters& k : kernels) n += k.dram_bytes_read;
  return n;
}

uint64_t CoreCounters::dram_bytes_written() const {
  uint64_t n = 0;
  for (const KernelCounters& k : kernels) n += k.dram_bytes_written;
  return n;
}

const CoreCounters* Counters::find(CoreCoord core) const {
  for (const CoreCounters& c : cores) {
    if (c.core == core) return &c;
  }
  return nullptr;
}

std::string Counters::to_string() const {
  std::string out = fmt::format(
      "DRAM: {} B read, {} B written; estimated device time {:.3g} s (ESTIMATE: DRAM bytes at the "
      "configured bandwidth only)\ntile ops:",
      dram_bytes_read, dram_bytes_written, estimated_device_seconds);
  for (int i = 0; i < kNumTileOpKinds; ++i) {
    if (tile_ops[i] != 0) {
      out += fmt::format(" {}={}", tile_op_kind_name(static_cast<TileOpKind>(i)), tile_ops[i]);
    }
  }
  out += "\n";
  for (const CoreCounters& c : cores) {
    out += fmt::format(
        "core {}: L1 {} B, DRAM read {} / written {} B (reader {}/{}, compute "
        "{}/{}, writer {}/{}), CB high water:",
        c.core.to_string(), c.l1_bytes, c.dram_bytes_read(), c.dram_bytes_written(),
        c.kernels[0].dram_bytes_read, c.kernels[0].dram_bytes_written, c.kernels[1].dram_bytes_read,
        c.kernels[1].dram_bytes_written, c.kernels[2].dram_bytes_read,
        c.kernels[2].dram_bytes_written);
    for (uint32_t i = 0; i < kMaxCbs; ++i) {
      if (c.cb_high_water[i] != 0) out += fmt::format(" c{}={}", i, c.cb_high_water[i]);
    }
    out += "\n";
  }
  return out;
}

bool RunResult::ok() const { return reports.empty() && dropped_reports == 0; }

std::vector<const SanitizerReport*> RunResult::of_kind(ReportKind kind) const {
  std::vector<const SanitizerReport*> out;
  for (const SanitizerReport& r : reports) {
    if (r.kind == kind) out.push_back(&r);
  }
  return out;
}

}  // namespace tilenorm::tile
