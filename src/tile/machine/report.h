// What a run of the tile machine reports: sanitizer findings and counters (DRAM traffic, tile
// ops, CB high-water marks, L1 use, an estimated device time).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tile/machine/tile.h"

namespace tilenorm::tile {

struct CoreCoord {
  uint32_t x = 0;
  uint32_t y = 0;
  bool operator==(const CoreCoord&) const = default;
  std::string to_string() const;  // "(x=1, y=0)"
};

enum class KernelKind : uint8_t { kReader = 0, kCompute = 1, kWriter = 2 };
inline constexpr int kNumKernelKinds = 3;
const char* kernel_kind_name(KernelKind kind);  // "reader", "compute", "writer"

// Every finding of the sanitizer. Findings after which the machine cannot go on are raised in
// every mode, sanitizer off included, and fail the run: kDeadlock, kNocBadAccess, kCbUnknown,
// kCbOverCapacity, an L1 range outside every CB, a compute tile index whose window runs past the
// CB's end (unpack and pack do not wrap), and a tile_regs_wait/acquire that would hang.
enum class ReportKind : uint8_t {
  kDeadlock,               // every unfinished kernel of a core is blocked on a CB
  kCbOverCapacity,         // cb_reserve_back / cb_wait_front asks for more pages than the CB has
  kCbPopMoreThanWaited,    // cb_pop_front(n) with n > pages currently waited for
  kCbPushWithoutReserve,   // cb_push_back(n) with n > pages currently reserved
  kCbAccessOutsideWindow,  // pointer / tile index outside the reserved or waited window
  kCbTwoProducers,         // a second kernel reserves/pushes a CB
  kCbTwoConsumers,         // a second kernel waits/pops a CB
  kCbDanglingReserve,      // a kernel ends with reserved pages not pushed
  kCbDanglingWait,         // a kernel ends with waited pages not popped
  kCbUnknown,              // a CB index the program did not create on this core
  kNocReadNotBarriered,    // cb_push_back (or kernel end) with a noc read not yet barriered
  kNocWriteNotBarriered,   // cb_pop_front (or kernel end) with a noc write not yet barriered
  kNocBadAccess,           // unknown DRAM buffer, tile id out of range, page size mismatch
  kDstOpOutsideAcquire,    // a dst op while no section is acquired (or after commit)
  kDstNestedAcquire,       // tile_regs_acquire while a section is already acquired
  kDstPackBeforeCommit,    // pack_tile without tile_regs_commit + tile_regs_wait
  kDstSlotOverCapacity,    // dst index >= capacity of the section (8/4 half-sync, 16/8 full)
  kDstProtocol,            // other order errors: commit without acquire, release without wait,
                           // wait with nothing committed, kernel ends holding dst
  kPoisonDstRead,          // a read of a dst slot not written since it was acquired
  kPoisonL1Read,           // a read of L1 bytes nothing wrote during this run
  kImplicitAccumulation,   // accumulating FPU op onto a slot holding another computation's value
  kDeadStore,              // a dst slot overwritten before its value was read
  kMaskSlot,               // mask_tile's mask argument is not data + 1 (hardware ignores it)
  kRunningSumLost,         // lint: pack_tile overwrites an unpushed CB page that an earlier dst
                           // section packed an accumulated value into (a sum restarted from 0)
  kKernelApiKind,          // a kernel calls another kernel kind's API (does not compile on
                           // hardware: a reader calling copy_tile, a compute kernel calling
                           // noc_async_read_tile)
  kPackIndexIgnored,       // in-order pack_tile given an index other than the CB's pack position
  kArgOutOfRange,          // get_arg_val / get_common_arg_val past the args the host set
};
const char* report_kind_name(ReportKind kind);  // "implicit-accumulation", ...

struct SanitizerReport {
  ReportKind kind = ReportKind::kDeadlock;
  CoreCoord core;
  KernelKind kernel = KernelKind::kReader;
  std::string kernel_name;
  std::string op;         // kernel API call that raised it, e.g. "mul_tiles"
  int cb = -1;            // CB index involved, -1 if none
  int slot = -1;          // dst slot (index as the kernel wrote it), -1 if none
  const char* file = "";  // kernel source position of the call (std::source_location)
  uint32_t line = 0;
  std::string message;  // the specifics; deadlock reports carry the core's CB dump
  // "implicit-accumulation at core (x=0, y=0) compute 'bw' mul_tiles slot 1 (compute.cc:88): ..."
  std::string to_string() const;
};

// Tile-op counter index; one count per kernel API call on a whole tile.
enum class TileOpKind : uint8_t {
  kCopy,
  kUnaryBcast,
  kAdd,
  kSub,
  kMul,
  kAddBcast,
  kSubBcast,
  kMulBcast,
  kMatmul,
  kReduce,
  kSfpuBinary,
  kSfpuUnary,
  kFill,
  kMask,
  kPack,
  kCount
};
inline constexpr int kNumTileOpKinds = static_cast<int>(TileOpKind::kCount);
const char* tile_op_kind_name(TileOpKind kind);  // "copy_tile", "mul_tiles", ...

struct KernelCounters {
  uint64_t dram_bytes_read = 0;
  uint64_t dram_bytes_written = 0;
};

struct CoreCounters {
  CoreCoord core;
  std::array<KernelCounters, kNumKernelKinds> kernels{};  // indexed by KernelKind
  std::array<uint64_t, kNumTileOpKinds> tile_ops{};       // indexed by TileOpKind
  std::array<uint32_t, kMaxCbs> cb_high_water{};  // most pages ever pushed and not yet popped
  uint32_t l1_bytes = 0;                          // bytes of this core's CBs
  uint64_t dram_bytes_read() const;
  uint64_t dram_bytes_written() const;
};

struct Counters {
  std::vector<CoreCounters> cores;        // cores the program used, row-major (y, then x) order
  std::vector<uint64_t> dram_bank_bytes;  // bytes read + written per DRAM bank
  uint64_t dram_bytes_read = 0;
  uint64_t dram_bytes_written = 0;
  std::array<uint64_t, kNumTileOpKinds> tile_ops{};
  // (read + written) / bandwidth: an ESTIMATE from the DRAM bandwidth model only (288 GB/s by
  // default); compute, NoC and dispatch time are not modelled.
  double estimated_device_seconds = 0;
  const CoreCounters* find(CoreCoord core) const;  // nullptr if the core did not run
  std::string to_string() const;                   // a table for humans
};

struct RunResult {
  // In core order, then in the order raised per core; at most 256 per core (the first ones, and
  // the one that stopped the core).
  std::vector<SanitizerReport> reports;
  uint64_t dropped_reports = 0;  // reports past the 256 of a core, counted but not kept
  Counters counters;
  // With DeviceConfig::dprint, the kernels' debug prints: each core's lines in core order, each
  // prefixed by the core and kernel kind ("core (x=0, y=0) compute: ...").
  std::string dprint;
  bool ok() const;  // no report at all, kept or dropped
  // Reports of one kind (tests assert on these).
  std::vector<const SanitizerReport*> of_kind(ReportKind kind) const;
};

}  // namespace tilenorm::tile
