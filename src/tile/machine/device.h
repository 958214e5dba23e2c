// Host API of the tile machine: the device (core grid, L1, interleaved DRAM buffers), programs
// (circular buffers + reader/compute/writer kernels + typed per-core args) and running them.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "tile/machine/api/common.h"
#include "tile/machine/program_cache.h"
#include "tile/machine/report.h"
#include "tile/machine/tile.h"
#include "tilenorm/status.h"

namespace tilenorm::tile {

// tt-llk versions that differ in a modelled behaviour, named by commit:
// k796bc38b: mul_tiles_bcast_cols accumulates onto all four faces at every fidelity.
// k001c23a4: at HiFi2..4 mul_tiles_bcast_cols zeroes faces 0-1 first (rows 0-15 assigned) and
//            accumulates onto faces 2-3 (tt-llk tt_llk_wormhole_b0/llk_lib/
//            llk_math_eltwise_binary.h at that commit).
enum class LlkVersion : uint8_t { k796bc38b, k001c23a4 };

// What reduce_tile<..., REDUCE_ROW> does to the dst tile (docs/tile-machine.md, "Per-op
// semantics"). kColumn: d[r][0] += the pool of row r; every other element keeps its value.
// kSrcBTranspose: tt-llk's Wormhole path (tt_llk_wormhole_b0/llk_lib/llk_math_reduce.h, at
//   001c23a4 and later without enforce_fp32_accumulation): per half (tile rows 0-15, 16-31) the
//   pool lands in the face's row 0 (GAPOOL/GMPOOL, adding onto what row 0 held), that row goes
//   through SrcB rows 16-31 (MOVD2B, TRNSPSRCB, MOVD2B) and back into faces 0 and 2 (ELWADD onto
//   a zeroed SrcA): column 0 and row 0 of the face hold the results, the other elements of the
//   face are stale SrcB data (NaN here), faces 1 and 3 keep their values. In faithful mode with
//   fp32 dst, MOVD2B truncates the results to bf16 (a bf16 input CB) or TF32 (Float32).
// kSrcBTransposeFp32: the same with enforce_fp32_accumulation (later tt-llk): the hi and lo 16
//   bits move through SrcB separately (MOVB2D back), so nothing is truncated.
enum class ReduceRowDst : uint8_t { kColumn, kSrcBTranspose, kSrcBTransposeFp32 };

// exact: every value fp32, packer to bf16 rounds to nearest even; for dataflow bugs.
// faithful: Wormhole numerics (docs/tile-machine.md, "Numerics").
enum class NumericsMode : uint8_t { kExact, kFaithful };
// kError: the first report of a core ends that core's kernels and Device::run returns an error.
// kWarn: reports are collected (Device::last_run) and the kernels keep running.
// kOff: no checks except those that keep the host safe (bad DRAM access, deadlock).
enum class SanitizerMode : uint8_t { kOff, kWarn, kError };

struct DeviceConfig {
  uint32_t grid_x = 8;  // worker cores per row
  uint32_t grid_y = 8;  // rows of worker cores
  uint32_t l1_size = 1464 * 1024;
  // First L1 byte CBs may use; below it lies what firmware reserves on hardware.
  uint32_t l1_allocator_base = 0;
  uint32_t num_dram_banks = 12;
  uint64_t dram_bank_size = uint64_t{1} << 30;
  double dram_bandwidth_bytes_per_s = 288e9;  // for the estimated device time only
  NumericsMode numerics = NumericsMode::kFaithful;
  SanitizerMode sanitizer = SanitizerMode::kError;
  // kWarn prints each report to stderr as it is raised; false only collects them in last_run().
  bool print_warnings = true;
  // false: a core keeps one report per (kind, op, source line) and drops its repeats (a defect
  // inside a loop then cannot crowd the 256 kept reports and hide a later one).
  bool repeat_reports = true;
  // Lint of the sanitizer (any mode but kOff): `running-sum-lost` when pack_tile writes a CB page
  // that an earlier dst section packed an accumulated value into and that was not pushed since
  // (each section starts from zero, so that partial is lost). On by default: the first value is
  // overwritten before any kernel can read it, so the report is never a false alarm.
  bool lint_running_sum = true;
  // Faithful mode: the FPU multipliers (mul_tiles*, matmul_tiles) consume the operand bits of the
  // kernel's ComputeConfig::math_fidelity phases only (docs/tile-machine.md, "Math fidelity");
  // false: products are exact from the source registers, whatever the fidelity.
  bool math_fidelity_phases = true;
  // Where tt-llk versions differ, the one the machine follows (docs/tile-machine.md).
  LlkVersion llk = LlkVersion::k796bc38b;
  // How a row reduce writes the dst tile (see ReduceRowDst); kColumn keeps the tile ops' results.
  ReduceRowDst reduce_row = ReduceRowDst::kColumn;
  int host_threads = 0;  // 0: std::thread::hardware_concurrency(); results never depend on it
  // Kernels' debug prints (dprint_write, tt-metal's DPRINT) are kept in RunResult::dprint;
  // false discards them.
  bool dprint = false;

  bool operator==(const DeviceConfig&) const = default;
};

// Inclusive rectangle of cores, as tt-metal's CoreRange.
struct CoreRange {
  CoreCoord start;
  CoreCoord end;
  CoreRange(CoreCoord core) : start(core), end(core) {}  // NOLINT: a core is a range of one
  CoreRange(CoreCoord s, CoreCoord e) : start(s), end(e) {}
  bool contains(CoreCoord c) const {
    return c.x >= start.x && c.x <= end.x && c.y >= start.y && c.y <= end.y;
  }
  uint32_t size() const { return (end.x - start.x + 1) * (end.y - start.y + 1); }
};

// tt-metal's split_work_to_cores: the first `cores_with_more` cores (row-major over the grid)
// get `work_per_core + 1` units, the rest of the `num_cores` cores get `work_per_core`.
struct WorkSplit {
  uint32_t num_cores = 0;
  uint32_t work_per_core = 0;
  uint32_t cores_with_more = 0;
  std::vector<CoreCoord> cores;  // the used cores, row-major
  uint32_t work_of(uint32_t core_index) const {
    return work_per_core + (core_index < cores_with_more ? 1 : 0);
  }
  uint32_t first_work_of(uint32_t core_index) const;  // prefix sum of work_of
};
WorkSplit split_work_to_cores(uint32_t grid_x, uint32_t grid_y, uint32_t num_work);

// Whether this host can place L1 below 4 GiB (x86-64 Linux, mmap MAP_32BIT); OK or Unsupported
// with the reason.
Status host_addressable_l1_supported();

// A DRAM buffer: num_pages pages of one tile each, interleaved page by page over the banks
// (page i in bank i % num_banks). `address` is what a reader/writer kernel receives in its args
// and puts into InterleavedAddrGenFast::bank_base_address.
struct Buffer {
  uint32_t address = 0;
  uint32_t num_pages = 0;
  DataFormat format = DataFormat::Float16_b;
  uint32_t page_size() const { return tile_size(format); }
};

struct KernelHandle {
  uint32_t id = ~0u;
};

class Device;

// A declarative program: CBs per core, up to one kernel of each kind per core, per-core args.
// Builder misuse (core outside the grid, two kernels of a kind on a core, args of the wrong type
// or missing) is recorded and returned by status() and by Device::run; L1 overflow is returned
// at once by create_circular_buffer.
class Program {
 public:
  explicit Program(const Device& device);
  ~Program();
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;

  // Creates CB `cb` (0..31) on every core of `cores`: num_pages pages of one tile in `format`.
  // ResourceExhausted when a core's CBs exceed l1_size - l1_allocator_base; the message lists
  // that core's CBs with their bytes, the total and the L1 available.
  Status create_circular_buffer(const CoreRange& cores, uint32_t cb, DataFormat format,
                                uint32_t num_pages, std::string name = {});

  // A kernel is a plain function `void k(const Args&)` (Args trivially copyable; compile-time
  // constants as template parameters of k) or `void k()`. `name` appears in reports.
  template <typename Args>
  KernelHandle create_kernel(KernelKind kind, const CoreRange& cores, void (*fn)(const Args&),
                             // `name` is moved into add_kernel; the check misses a move into
                             // a call that depends on Args.
                             // NOLINTNEXTLINE(performance-unnecessary-value-param)
                             std::string name = {}, ComputeConfig config = {}) {
    return add_kernel(kind, cores, reinterpret_cast<void (*)()>(fn), type_tag<Args>(),
                      &invoke<Args>, std::move(name), config);
  }
  KernelHandle create_kernel(KernelKind kind, const CoreRange& cores, void (*fn)(),
                             std::string name = {}, ComputeConfig config = {});

  // Args of `kernel` on `core` (or on every core of the kernel that has no per-core args).
  template <typename Args>
  void set_runtime_args(KernelHandle kernel, CoreCoord core, const Args& args) {
    static_assert(std::is_trivially_copyable_v<Args>, "kernel args must be trivially copyable");
    set_args(kernel, &core, type_tag<Args>(), &args, sizeof(Args));
  }
  template <typename Args>
  void set_common_runtime_args(KernelHandle kernel, const Args& args) {
    static_assert(std::is_trivially_copyable_v<Args>, "kernel args must be trivially copyable");
    set_args(kernel, nullptr, type_tag<Args>(), &args, sizeof(Args));
  }

  // tt-metal style runtime args of a kernel created without an args type: uint32_t words read
  // with get_arg_val<T>(i) (per core) and get_common_arg_val<T>(i) (every core of the kernel).
  void set_runtime_arg_words(KernelHandle kernel, CoreCoord core,
                             const std::vector<uint32_t>& words);
  void set_common_runtime_arg_words(KernelHandle kernel, const std::vector<uint32_t>& words);
  // Each core's L1 at a host address below 4 GiB, so that L1 addresses (get_write_ptr, CB bases)
  // are pointers a kernel may cast and store through, as tt-metal kernels do. Unsupported (with
  // the reason) where the host cannot map memory there (host_addressable_l1_supported()).
  Status use_host_addressable_l1();

  const Status& status() const;             // first builder error, or OK
  uint32_t l1_bytes(CoreCoord core) const;  // bytes of the core's CBs
  std::string describe() const;             // CBs and kernels per core, for dumps

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  using Invoker = void (*)(void (*)(), const void*);
  template <typename Args>
  static void invoke(void (*fn)(), const void* args) {
    reinterpret_cast<void (*)(const Args&)>(fn)(*static_cast<const Args*>(args));
  }
  template <typename T>
  static const void* type_tag() {
    static const char tag = 0;
    return &tag;
  }
  KernelHandle add_kernel(KernelKind kind, const CoreRange& cores, void (*fn)(),
                          const void* args_type, Invoker invoker, std::string name,
                          ComputeConfig config);
  void set_args(KernelHandle kernel, const CoreCoord* core, const void* args_type, const void* args,
                size_t size);

  std::unique_ptr<Impl> impl_;
};

class Device {
 public:
  explicit Device(DeviceConfig config = {});
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceConfig& config() const { return config_; }
  void set_numerics(NumericsMode mode) { config_.numerics = mode; }
  void set_sanitizer(SanitizerMode mode) { config_.sanitizer = mode; }
  void set_host_threads(int n) { config_.host_threads = n; }

  // DRAM buffers. InvalidArgument for zero pages; ResourceExhausted when the banks are full.
  Status create_buffer(uint32_t num_pages, DataFormat format, Buffer* out);
  Status free_buffer(const Buffer& buffer);
  // The DRAM allocation point, and freeing every buffer created since it (an op that runs on a
  // long-lived device gives its buffers back this way).
  uint64_t dram_mark() const;
  void free_buffers_since(uint64_t mark);
  // Raw bytes of whole pages in page order (pages are tiles in face layout).
  Status write_buffer(const Buffer& buffer, const void* bytes, size_t size);
  Status read_buffer(const Buffer& buffer, void* bytes, size_t size) const;
  // Tilize a row-major rows x cols matrix (padding with `pad`), convert to the buffer's format
  // (bf16: round to nearest even) and write it from page 0; the buffer needs num_tiles(rows,
  // cols) pages. read_tiles is the inverse (untilize; padding dropped).
  Status write_tiles(const Buffer& buffer, const float* row_major, int64_t rows, int64_t cols,
                     float pad = 0.0f);
  Status read_tiles(const Buffer& buffer, int64_t rows, int64_t cols, float* row_major) const;

  // Runs every kernel of `program` to completion. Non-OK on an invalid program, a deadlock, a
  // bad DRAM access, or (sanitizer kError) any report; the Status message holds the first
  // report. Reports and counters of the run are in last_run() in every case.
  Status run(const Program& program);
  const RunResult& last_run() const { return last_run_; }

  // Programs built on this device, keyed by their op's attributes (program_cache.h).
  ProgramCache& program_cache() { return program_cache_; }

  struct Dram;
  struct Workers;

 private:
  DeviceConfig config_;
  std::unique_ptr<Dram> dram_;
  std::unique_ptr<Workers> workers_;  // fiber stacks and dst per host thread, kept across runs
  RunResult last_run_;
  ProgramCache program_cache_;
};

}  // namespace tilenorm::tile
