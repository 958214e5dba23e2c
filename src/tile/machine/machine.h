// Internal state of the tile machine shared by the host side (device.cc) and the kernel API
// (kernel_runtime.h and its files): program description, DRAM, and the per-core runtime the
// fibers act on.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tile/machine/api/common.h"
#include "tile/machine/device.h"
#include "tile/machine/fiber.h"

namespace tilenorm::tile {

struct CbSpec {
  bool exists = false;
  DataFormat format = DataFormat::Float16_b;
  uint32_t num_pages = 0;
  uint32_t base = 0;  // L1 address
  std::string name;
};

struct KernelSpec {
  KernelKind kind = KernelKind::kReader;
  CoreRange cores{CoreCoord{}};
  void (*fn)() = nullptr;
  const void* args_type = nullptr;  // nullptr: the kernel takes no args
  void (*invoker)(void (*)(), const void*) = nullptr;
  std::string name;
  ComputeConfig config;
  std::vector<std::byte> common_args;
  std::unordered_map<uint64_t, std::vector<std::byte>> core_args;  // key: y << 32 | x
};

struct CoreSpec {
  std::array<CbSpec, kMaxCbs> cbs;
  uint32_t l1_end = 0;                                   // first L1 byte after the last CB
  std::array<int, kNumKernelKinds> kernels{-1, -1, -1};  // index into Program::Impl::kernels
  bool used() const { return kernels[0] >= 0 || kernels[1] >= 0 || kernels[2] >= 0; }
};

struct Program::Impl {
  uint32_t grid_x = 0, grid_y = 0;
  uint32_t l1_size = 0, l1_base = 0;
  std::vector<CoreSpec> cores;  // y * grid_x + x
  std::vector<KernelSpec> kernels;
  Status status;
  // Each core's L1 at a host address below 4 GiB, so an L1 address is a pointer a kernel may cast
  // and store through (Program::use_host_addressable_l1).
  bool host_l1 = false;
  CoreSpec& core(CoreCoord c) { return cores[c.y * grid_x + c.x]; }
  const CoreSpec& core(CoreCoord c) const { return cores[c.y * grid_x + c.x]; }
};

struct DramBuffer {
  uint32_t address = 0;
  uint32_t num_pages = 0;
  uint32_t page_size = 0;
  uint64_t bank_bytes = 0;  // bytes reserved in each bank
  DataFormat format = DataFormat::Float16_b;
  std::vector<uint8_t> data;  // page i at i * page_size
};

struct Device::Dram {
  std::unordered_map<uint32_t, std::unique_ptr<DramBuffer>> buffers;  // by address
  uint64_t next_offset = 0;
  const DramBuffer* find(uint32_t address) const {
    auto it = buffers.find(address);
    return it == buffers.end() ? nullptr : it->second.get();
  }
};

namespace detail {

// Thrown inside a fiber to unwind its kernel when the core stops (first error, deadlock).
struct KernelAbort {};

// Where a dst slot's value came from; decides implicit accumulation and dead stores.
enum class Origin : uint8_t { kZero, kFill, kCopy, kAssignFpu, kSfpu, kMul, kMatmul, kReduce };

struct SlotMeta {
  Origin origin = Origin::kZero;
  bool read = false;        // the current value was read (pack, SFPU operand, accumulation)
  bool chain_open = false;  // accumulating op may continue its chain (no read since)
  bool allow_acc = false;   // sanitizer_allow_accumulate was called
  const char* op = "";
  const char* file = "";
  uint32_t line = 0;
  float fill = 0.0f;       // the constant of a kFill slot
  int cb0 = -1;            // operand CBs of the accumulation that wrote the slot
  bool from_zero = false;  // an accumulation chain that started on a zero slot
  int cb1 = -1;
};

inline constexpr int kDstTiles = 16;  // physical bf16 tiles; fp32 dst uses the first 8

struct Dst {
  alignas(64) float data[kDstTiles][kTileElems];
  SlotMeta meta[kDstTiles];
  uint32_t capacity = 8;  // tiles per section as kernels index them
  uint32_t sections = 2;  // 2 half-sync, 1 full-sync
  bool acquired = false;
  bool waited = false;
  // The packer's tile_regs_wait ran while the math engine still held its section uncommitted
  // (the threads' calls in source order: wait, then commit); the next commit satisfies it.
  bool wait_pending = false;
  // The section was taken by acquire_dst, the older API that acquires for the math engine and
  // the packer at once: its packs are legal before release_dst (the packer waits for the math
  // engine's release), and `both_packed` marks that one has run.
  bool both_threads = false;
  bool both_packed = false;
  uint32_t committed = 0;  // sections committed and not yet released
  uint32_t math_section = 0;
  uint32_t pack_section = 0;
  uint32_t dirty = 0;             // physical slots that may be non-zero
  const char* acquire_file = "";  // last tile_regs_acquire, for kernel-end reports
  uint32_t acquire_line = 0;
  uint32_t cycle = 0;                  // tile_regs_acquire calls so far
  uint32_t section_cycle[2] = {0, 0};  // the acquire number each section was taken at
};

struct PendingCopy {
  uint8_t* dst;
  const uint8_t* src;
  uint32_t bytes;
  uint32_t l1_addr;
  int cb;
  const char* file;
  uint32_t line;
};

// The last pack into a CB page since its reserve (running-sum lint).
struct PackMark {
  uint32_t cycle = 0;  // the packed section's acquire number; 0: not packed since reserve
  bool accumulated = false;
  int slot = -1;
  const char* file = "";
  uint32_t line = 0;
};

struct CbState {
  bool exists = false;
  DataFormat format = DataFormat::Float16_b;
  uint32_t num_pages = 0;
  uint32_t page_size = 0;
  uint32_t base = 0;
  uint8_t* mem = nullptr;
  uint64_t pushed = 0;
  uint64_t popped = 0;
  uint32_t reserved = 0;  // pages in the producer's current window
  uint32_t waited = 0;    // pages in the consumer's current window
  int producer = -1;      // KernelKind of the producer, -1 before the first reserve
  int consumer = -1;
  uint32_t high_water = 0;
  const std::string* name = nullptr;
  // Source of the last reserve / wait, for dangling-window reports at kernel end.
  const char* reserve_file = "";
  uint32_t reserve_line = 0;
  const char* wait_file = "";
  uint32_t wait_line = 0;
  std::vector<PackMark> packs;  // per page; sized only when the running-sum lint is on
  uint32_t pack_pos = 0;        // page of the reserved window the next in-order pack_tile writes
  uint32_t available() const { return static_cast<uint32_t>(pushed - popped); }
  uint32_t free_pages() const { return num_pages - available(); }
  uint32_t write_page() const { return static_cast<uint32_t>(pushed % num_pages); }
  uint32_t read_page() const { return static_cast<uint32_t>(popped % num_pages); }
};

struct CoreRuntime;

struct KernelRuntime {
  CoreRuntime* core = nullptr;
  KernelKind kind = KernelKind::kReader;
  const KernelSpec* spec = nullptr;
  const void* args = nullptr;
  Fiber fiber;
  bool present = false;
  // Blocking state while parked in the scheduler.
  bool blocked = false;
  bool blocked_on_reserve = false;
  uint32_t blocked_cb = 0;
  uint32_t blocked_pages = 0;
  const char* blocked_file = "";
  uint32_t blocked_line = 0;
  std::vector<PendingCopy> pending_reads;
  std::vector<PendingCopy> pending_writes;
  const DramBuffer* last_buffer = nullptr;  // lookup cache
  KernelCounters counters;
  // Compute state.
  bool acc_to_dest = false;
  bool mm_transpose = false;
  std::string dprint_line;  // debug print text since the kernel's last newline
};

struct CoreRuntime {
  CoreCoord core;
  const CoreSpec* spec = nullptr;
  Device::Dram* dram = nullptr;
  const DeviceConfig* config = nullptr;
  uint32_t l1_base = 0;
  uint8_t* l1 = nullptr;  // bytes [l1_base, l1_base + l1_size), owned by the host thread's worker
  uint32_t l1_size = 0;
  std::array<CbState, kMaxCbs> cbs;
  std::array<KernelRuntime, kNumKernelKinds> kernels;
  Dst* dst = nullptr;
  bool sanitize = false;  // mode != kOff
  bool error_mode = false;
  bool faithful = false;
  bool dst_bf16 = false;  // faithful and !fp32_dest_acc_en: dst values are rounded to bf16
  bool stopping = false;  // an error ended this core; unwinding fibers
  std::vector<SanitizerReport> reports;  // at most kMaxReportsPerCore
  uint64_t dropped_reports = 0;          // reports raised past that limit
  std::string dprint;                    // the kernels' whole debug print lines, prefixed
  CoreCounters counters;
  std::vector<uint64_t> bank_bytes;
  std::string internal_error;
  int fatal_report = -1;  // index in reports of the report that stopped the core
};

// Reports kept per core; later ones are counted in dropped_reports (a kernel looping over a
// bug would otherwise grow the list without bound).
inline constexpr size_t kMaxReportsPerCore = 256;

// The kernel running on this host thread (set by the scheduler around every resume).
extern thread_local KernelRuntime* t_kernel;

// Records a report for the current kernel; throws KernelAbort in error mode or when `fatal`.
void raise(ReportKind kind, const char* op, int cb, int slot, const SrcLoc& loc,
           std::string message, bool fatal = false);
void raise_at(KernelRuntime& k, ReportKind kind, const char* op, int cb, int slot, const char* file,
              uint32_t line, std::string message);

// Kernel-end checks (dangling windows, unbarriered NoC, dst held); called by the scheduler.
void check_kernel_end(KernelRuntime& k);
// Resets dst for a compute kernel with this config.
void reset_dst(Dst& dst, const ComputeConfig& config);
std::string dump_core(const CoreRuntime& core);
// This host thread's L1 below 4 GiB (mmap MAP_32BIT), at least `bytes` long; kept for the thread's
// life. Only called after host_addressable_l1_supported() said OK.
uint8_t* host_l1_map(uint32_t bytes);

}  // namespace detail
}  // namespace tilenorm::tile
