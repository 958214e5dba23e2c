// A host API in the shape of tt-metal's, for running kernel sources written in tt-metal's
// dialect on tilenorm's tile machine: programs of circular buffers and kernels given by source
// path, per-core uint32 runtime args, interleaved DRAM buffers in tile layout, and a run that
// JIT-compiles each (source, compile-time args, defines) once and reports the sanitizer's
// findings at the kernel's own file and line. A tt-metal program factory ports onto it close to
// line for line (CreateCircularBuffer, CreateKernel, SetRuntimeArgs, TensorAccessorArgs,
// split_work_to_cores). No exceptions: builder errors are kept by the Program and returned by
// RunProgram; everything else returns a Status.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tilenorm/status.h"

namespace tilenorm::tt {

struct CoreCoord {
  uint32_t x = 0;
  uint32_t y = 0;
  bool operator==(const CoreCoord&) const = default;
};

// Inclusive rectangle of cores.
struct CoreRange {
  CoreCoord start, end;
  CoreRange(CoreCoord core) : start(core), end(core) {}  // NOLINT: a core is a range of one
  CoreRange(CoreCoord s, CoreCoord e) : start(s), end(e) {}
  bool contains(CoreCoord c) const {
    return c.x >= start.x && c.x <= end.x && c.y >= start.y && c.y <= end.y;
  }
  uint32_t size() const { return (end.x - start.x + 1) * (end.y - start.y + 1); }
};

// A set of core ranges (they must not overlap: CreateKernel and CreateCircularBuffer report a
// core named twice).
class CoreRangeSet {
 public:
  CoreRangeSet() = default;
  CoreRangeSet(CoreRange range) : ranges_{range} {}  // NOLINT: as tt-metal converts
  explicit CoreRangeSet(std::vector<CoreRange> ranges) : ranges_(std::move(ranges)) {}
  const std::vector<CoreRange>& ranges() const { return ranges_; }
  bool empty() const { return ranges_.empty(); }
  bool contains(CoreCoord c) const;
  uint32_t num_cores() const;

 private:
  std::vector<CoreRange> ranges_;
};

enum class DataFormat : uint8_t { Float32, Float16_b };
uint32_t tile_size(DataFormat format);  // bytes of one 32x32 tile: 4096 / 2048

// tt-metal's CircularBufferConfig: total bytes, the data format of each CB index it describes
// and their page sizes. The tile machine holds one tile per page: a page size other than
// tile_size(format), or a total that is not a whole number of pages, is a builder error.
class CircularBufferConfig {
 public:
  CircularBufferConfig(uint32_t total_size, std::map<uint8_t, DataFormat> formats)
      : total_size_(total_size), formats_(std::move(formats)) {}
  CircularBufferConfig& set_page_size(uint8_t index, uint32_t page_size) {
    page_sizes_[index] = page_size;
    return *this;
  }
  uint32_t total_size() const { return total_size_; }
  const std::map<uint8_t, DataFormat>& formats() const { return formats_; }
  const std::map<uint8_t, uint32_t>& page_sizes() const { return page_sizes_; }

 private:
  uint32_t total_size_;
  std::map<uint8_t, DataFormat> formats_;
  std::map<uint8_t, uint32_t> page_sizes_;
};

// RISCV_1 (NCRISC) runs readers, RISCV_0 (BRISC) writers, as tt-metal's Reader/Writer configs.
enum class DataMovementProcessor : uint8_t { RISCV_0, RISCV_1 };
enum class NOC : uint8_t { NOC_0, NOC_1, RISCV_0_default = NOC_0, RISCV_1_default = NOC_1 };
enum class MathFidelity : uint8_t { LoFi, HiFi2, HiFi3, HiFi4 };

using Defines = std::map<std::string, std::string>;

struct DataMovementConfig {
  DataMovementProcessor processor = DataMovementProcessor::RISCV_0;
  NOC noc = NOC::RISCV_0_default;
  std::vector<uint32_t> compile_args;
  Defines defines;
};
DataMovementConfig ReaderDataMovementConfig(std::vector<uint32_t> compile_args = {},
                                            Defines defines = {});
DataMovementConfig WriterDataMovementConfig(std::vector<uint32_t> compile_args = {},
                                            Defines defines = {});

// math_approx_mode = true is not modelled (the SFPU's approximations): RunProgram refuses it.
struct ComputeConfig {
  MathFidelity math_fidelity = MathFidelity::HiFi4;
  bool fp32_dest_acc_en = false;
  bool math_approx_mode = false;
  std::vector<uint32_t> compile_args;
  Defines defines;
};

using KernelHandle = uint32_t;
using CBHandle = uint32_t;

enum class SanitizerMode : uint8_t { kOff, kWarn, kError };

struct DeviceConfig {
  uint32_t grid_x = 8, grid_y = 8;  // worker cores
  uint32_t l1_size = 1464 * 1024;   // bytes per core
  uint32_t l1_allocator_base = 0;   // first L1 byte circular buffers may use
  // kWarn: findings are collected in the RunReport and the kernels keep running; kError: the
  // first finding stops its core and RunProgram returns it as an error.
  SanitizerMode sanitizer = SanitizerMode::kWarn;
  // Relative kernel paths resolve against this folder (tt-metal's root); it is also on the
  // kernels' include path, so "tt-train/sources/..." includes resolve.
  std::string kernel_root;
  // Kernels' DPRINT output is kept in RunReport::dprint; false discards it, as tt-metal does
  // when no core is named for printing.
  bool dprint = false;
};

class Device;

// An interleaved DRAM buffer in tile layout: pages of one tile each.
class Buffer {
 public:
  uint32_t address() const { return address_; }
  uint32_t size() const { return num_pages_ * tile_size(format_); }
  uint32_t page_size() const { return tile_size(format_); }
  uint32_t num_pages() const { return num_pages_; }
  DataFormat format() const { return format_; }

 private:
  friend class Device;
  uint32_t address_ = 0, num_pages_ = 0;
  DataFormat format_ = DataFormat::Float16_b;
};

struct InterleavedBufferConfig {
  uint32_t size = 0;       // bytes, a whole number of pages
  uint32_t page_size = 0;  // tile_size(format)
  DataFormat format = DataFormat::Float16_b;
};

// One sanitizer finding of a run.
struct Finding {
  std::string kind;    // "implicit-accumulation", "dst-nested-acquire", ...
  CoreCoord core;      // where it was raised
  std::string kernel;  // the kernel's source path as given to CreateKernel
  std::string op;      // the API call that raised it
  std::string file;    // source file and line of that call (the kernel's own file or header)
  uint32_t line = 0;
  std::string message;
};

struct RunReport {
  std::vector<Finding> findings;  // in core order, then in the order raised
  uint64_t dropped_findings = 0;  // past the ones a core keeps
  uint32_t kernels_compiled = 0;  // JIT compiles of this run (0 when every kernel was cached)
  uint32_t kernels_cached = 0;
  double compile_seconds = 0.0;
  // With DeviceConfig::dprint, the kernels' DPRINT lines: each core's in core order, each
  // prefixed by the core and kernel kind ("core (x=0, y=0) compute: ...").
  std::string dprint;
};

// The kernels' view of the whole program, built by the calls below.
class Program {
 public:
  Program();
  ~Program();
  Program(Program&&) noexcept;
  Program& operator=(Program&&) noexcept;
  // The first builder error (bad core set, CB config, args), or OK; RunProgram returns it too.
  const Status& status() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

inline Program CreateProgram() { return Program(); }

CBHandle CreateCircularBuffer(Program& program, const CoreRangeSet& cores,
                              const CircularBufferConfig& config);
KernelHandle CreateKernel(Program& program, const std::string& path, const CoreRangeSet& cores,
                          const DataMovementConfig& config);
KernelHandle CreateKernel(Program& program, const std::string& path, const CoreRangeSet& cores,
                          const ComputeConfig& config);
// The kernel's per-core args, read with get_arg_val<T>(i).
void SetRuntimeArgs(Program& program, KernelHandle kernel, CoreCoord core,
                    std::vector<uint32_t> args);
// Args every core of the kernel reads with get_common_arg_val<T>(i).
void SetCommonRuntimeArgs(Program& program, KernelHandle kernel, std::vector<uint32_t> args);

// The compile-time args a kernel's TensorAccessorArgs<i>() reads for an interleaved buffer.
class TensorAccessorArgs {
 public:
  explicit TensorAccessorArgs(const Buffer& buffer) : buffer_(&buffer) {}
  explicit TensorAccessorArgs(const Buffer* buffer) : buffer_(buffer) {}
  void append_to(std::vector<uint32_t>& compile_args) const;

 private:
  const Buffer* buffer_;
};

// tt-metal's split_work_to_cores: min(units, cores) cores taken column-major (core i is
// {i / grid.y, i % grid.y}); the first units % num_cores of them (core_group_1) do one unit more
// than the rest (core_group_2, empty when the units divide evenly).
struct WorkSplit {
  uint32_t num_cores = 0;
  CoreRangeSet all_cores, core_group_1, core_group_2;
  uint32_t units_per_core_group_1 = 0, units_per_core_group_2 = 0;
};
WorkSplit split_work_to_cores(CoreCoord grid, uint32_t units);

class Device {
 public:
  explicit Device(DeviceConfig config = {});
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceConfig& config() const { return config_; }
  CoreCoord compute_with_storage_grid_size() const { return {config_.grid_x, config_.grid_y}; }
  uint32_t l1_size_per_core() const { return config_.l1_size; }
  uint32_t base_allocator_addr() const { return config_.l1_allocator_base; }

  Status CreateBuffer(const InterleavedBufferConfig& config, Buffer* out);
  // Row-major [rows, cols] floats to tile layout (zero padding to whole tiles, rounded to the
  // buffer's format), and back.
  Status WriteTiles(const Buffer& buffer, const float* row_major, int64_t rows, int64_t cols);
  Status ReadTiles(const Buffer& buffer, int64_t rows, int64_t cols, float* row_major) const;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  DeviceConfig config_;
  std::unique_ptr<Impl> impl_;
};

// JIT-compiles the program's kernels (cached by source, headers, args and defines), runs it and
// fills `report`. Errors: the program's builder error, a kernel file that is missing or does not
// compile (the compiler's first lines), a kernel calling API the machine does not model, a
// deadlock, and with SanitizerMode::kError the first finding.
Status RunProgram(Device& device, const Program& program, RunReport* report);

}  // namespace tilenorm::tt
