// The tt-metal style host API over the tile machine and the kernel JIT.

#include "tilenorm/tt/host.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <utility>

#include "tile/machine/api/tensor_accessor.h"
#include "tile/machine/device.h"
#include "tile/tt/host_internal.h"
#include "tile/tt/jit.h"

namespace tilenorm::tt {

namespace {

tile::DataFormat machine_format(DataFormat f) {
  return f == DataFormat::Float32 ? tile::DataFormat::Float32 : tile::DataFormat::Float16_b;
}

tile::CoreRange machine_range(const CoreRange& r) {
  return {{r.start.x, r.start.y}, {r.end.x, r.end.y}};
}

std::string core_name(CoreCoord c) { return fmt::format("(x={}, y={})", c.x, c.y); }

}  // namespace

bool CoreRangeSet::contains(CoreCoord c) const {
  for (const CoreRange& r : ranges_)
    if (r.contains(c)) return true;
  return false;
}

uint32_t CoreRangeSet::num_cores() const {
  uint32_t n = 0;
  for (const CoreRange& r : ranges_) n += r.size();
  return n;
}

uint32_t tile_size(DataFormat format) { return tile::tile_size(machine_format(format)); }

DataMovementConfig ReaderDataMovementConfig(std::vector<uint32_t> compile_args, Defines defines) {
  return {DataMovementProcessor::RISCV_1, NOC::RISCV_1_default, std::move(compile_args),
          std::move(defines)};
}

DataMovementConfig WriterDataMovementConfig(std::vector<uint32_t> compile_args, Defines defines) {
  return {DataMovementProcessor::RISCV_0, NOC::RISCV_0_default, std::move(compile_args),
          std::move(defines)};
}

void TensorAccessorArgs::append_to(std::vector<uint32_t>& compile_args) const {
  // One word per interleaved DRAM buffer: the kernel's TensorAccessorArgs<i>() checks it and
  // reads the address and page size from its runtime args, as tt-metal's interleaved accessor.
  compile_args.push_back(tile::kInterleavedDramAccessorArg);
}

// Cores [first, first + count) in column-major order as ranges: a partial first column, the
// full columns, a partial last column.
static CoreRangeSet column_major_span(CoreCoord grid, uint32_t first, uint32_t count) {
  std::vector<CoreRange> ranges;
  uint32_t i = first;
  const uint32_t end = first + count;
  while (i < end) {
    const uint32_t x = i / grid.y, y = i % grid.y;
    if (y != 0 || end - i < grid.y) {  // a partial column
      const uint32_t last = std::min(end, (x + 1) * grid.y) - 1;
      ranges.push_back({{x, y}, {x, last % grid.y}});
      i = last + 1;
    } else {  // full columns
      const uint32_t cols = (end - i) / grid.y;
      ranges.push_back({{x, 0}, {x + cols - 1, grid.y - 1}});
      i += cols * grid.y;
    }
  }
  return CoreRangeSet(std::move(ranges));
}

WorkSplit split_work_to_cores(CoreCoord grid, uint32_t units) {
  WorkSplit s;
  s.num_cores = std::min(units, grid.x * grid.y);
  if (s.num_cores == 0) return s;
  s.all_cores = column_major_span(grid, 0, s.num_cores);
  s.units_per_core_group_1 = units / s.num_cores;
  const uint32_t more = units % s.num_cores;
  if (more == 0) {
    s.core_group_1 = s.all_cores;
  } else {
    s.core_group_1 = column_major_span(grid, 0, more);
    s.core_group_2 = column_major_span(grid, more, s.num_cores - more);
    s.units_per_core_group_2 = s.units_per_core_group_1;
    ++s.units_per_core_group_1;
  }
  return s;
}

// ---- Program ----

Program::Program() : impl_(std::make_unique<Impl>()) {}
Program::~Program() = default;
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;
const Status& Program::status() const { return impl_->status; }

void Program::Impl::fail(Status s) {
  if (status.ok()) status = std::move(s);
}

CBHandle CreateCircularBuffer(Program& program, const CoreRangeSet& cores,
                              const CircularBufferConfig& config) {
  Program::Impl& p = program.impl();
  const CBHandle handle = CBHandle(p.cbs.size());
  if (cores.empty()) p.fail(Status::invalid_argument("CreateCircularBuffer: empty core set"));
  if (config.formats().empty())
    p.fail(Status::invalid_argument("CreateCircularBuffer: config names no CB index"));
  for (const auto& [index, format] : config.formats()) {
    const auto page = config.page_sizes().find(index);
    const uint32_t want = tile_size(format);
    if (index >= tile::kMaxCbs) {
      p.fail(Status::invalid_argument(fmt::format(
          "CreateCircularBuffer: CB index {} (valid: 0..{})", index, tile::kMaxCbs - 1)));
    } else if (page == config.page_sizes().end()) {
      p.fail(Status::invalid_argument(
          fmt::format("CreateCircularBuffer: CB {} has no page size (set_page_size)", index)));
    } else if (page->second != want) {
      p.fail(Status::unsupported(fmt::format(
          "CreateCircularBuffer: CB {} page size {} (the tile machine holds one tile per page: {} "
          "bytes in this format)",
          index, page->second, want)));
    } else if (config.total_size() == 0 || config.total_size() % want != 0) {
      p.fail(Status::invalid_argument(fmt::format(
          "CreateCircularBuffer: CB {} total size {} is not a whole number of {}-byte pages", index,
          config.total_size(), want)));
    }
  }
  p.cbs.push_back({cores, config});
  return handle;
}

static KernelHandle add_kernel(Program& program, const std::string& path, const CoreRangeSet& cores,
                               Program::Impl::Kernel k) {
  Program::Impl& p = program.impl();
  if (cores.empty())
    p.fail(Status::invalid_argument(fmt::format("CreateKernel {}: empty core set", path)));
  k.path = path;
  k.cores = cores;
  p.kernels.push_back(std::move(k));
  return KernelHandle(p.kernels.size() - 1);
}

KernelHandle CreateKernel(Program& program, const std::string& path, const CoreRangeSet& cores,
                          const DataMovementConfig& config) {
  Program::Impl::Kernel k;
  k.kind = config.processor == DataMovementProcessor::RISCV_1 ? tile::KernelKind::kReader
                                                              : tile::KernelKind::kWriter;
  k.compile_args = config.compile_args;
  k.defines = config.defines;
  return add_kernel(program, path, cores, std::move(k));
}

KernelHandle CreateKernel(Program& program, const std::string& path, const CoreRangeSet& cores,
                          const ComputeConfig& config) {
  if (config.math_approx_mode)
    program.impl().fail(Status::unsupported(fmt::format(
        "CreateKernel {}: math_approx_mode = true is not modelled (the SFPU's approximations)",
        path)));
  Program::Impl::Kernel k;
  k.kind = tile::KernelKind::kCompute;
  k.compile_args = config.compile_args;
  k.defines = config.defines;
  k.compute.fp32_dest_acc_en = config.fp32_dest_acc_en;
  k.compute.math_fidelity = tile::MathFidelity(uint8_t(config.math_fidelity));
  return add_kernel(program, path, cores, std::move(k));
}

static Program::Impl::Kernel* find_kernel(Program& program, KernelHandle kernel, const char* what) {
  Program::Impl& p = program.impl();
  if (kernel >= p.kernels.size()) {
    p.fail(Status::invalid_argument(fmt::format("{}: kernel handle {} (the program has {} kernels)",
                                                what, kernel, p.kernels.size())));
    return nullptr;
  }
  return &p.kernels[kernel];
}

void SetRuntimeArgs(Program& program, KernelHandle kernel, CoreCoord core,
                    std::vector<uint32_t> args) {
  Program::Impl::Kernel* k = find_kernel(program, kernel, "SetRuntimeArgs");
  if (k == nullptr) return;
  if (!k->cores.contains(core)) {
    program.impl().fail(Status::invalid_argument(fmt::format(
        "SetRuntimeArgs: core {} is not one of kernel {}'s cores", core_name(core), k->path)));
    return;
  }
  k->args[{core.x, core.y}] = std::move(args);
}

void SetCommonRuntimeArgs(Program& program, KernelHandle kernel, std::vector<uint32_t> args) {
  Program::Impl::Kernel* k = find_kernel(program, kernel, "SetCommonRuntimeArgs");
  if (k != nullptr) k->common_args = std::move(args);
}

// ---- Device ----

static tile::DeviceConfig machine_config(const DeviceConfig& c) {
  tile::DeviceConfig m;
  m.grid_x = c.grid_x;
  m.grid_y = c.grid_y;
  m.l1_size = c.l1_size;
  m.l1_allocator_base = c.l1_allocator_base;
  m.sanitizer = c.sanitizer == SanitizerMode::kOff    ? tile::SanitizerMode::kOff
                : c.sanitizer == SanitizerMode::kWarn ? tile::SanitizerMode::kWarn
                                                      : tile::SanitizerMode::kError;
  m.print_warnings = false;  // findings go to the RunReport
  m.repeat_reports = false;  // one per (kind, op, line) and core: a loop cannot crowd them out
  m.dprint = c.dprint;
  return m;
}

Device::Device(DeviceConfig config)
    : config_(std::move(config)), impl_(std::make_unique<Impl>(machine_config(config_))) {}
Device::~Device() = default;

Status Device::CreateBuffer(const InterleavedBufferConfig& config, Buffer* out) {
  const uint32_t page = tile_size(config.format);
  if (config.page_size != page)
    return Status::unsupported(fmt::format(
        "CreateBuffer: page size {} (tile layout: one {}-byte tile per page in this format)",
        config.page_size, page));
  if (config.size == 0 || config.size % page != 0)
    return Status::invalid_argument(fmt::format(
        "CreateBuffer: size {} is not a whole number of {}-byte pages", config.size, page));
  tile::Buffer b;
  TN_RETURN_IF_ERROR(
      impl_->machine.create_buffer(config.size / page, machine_format(config.format), &b));
  out->address_ = b.address;
  out->num_pages_ = b.num_pages;
  out->format_ = config.format;
  return {};
}

static tile::Buffer machine_buffer(const Buffer& b) {
  return {b.address(), b.num_pages(), machine_format(b.format())};
}

Status Device::WriteTiles(const Buffer& buffer, const float* row_major, int64_t rows,
                          int64_t cols) {
  return impl_->machine.write_tiles(machine_buffer(buffer), row_major, rows, cols);
}

Status Device::ReadTiles(const Buffer& buffer, int64_t rows, int64_t cols, float* row_major) const {
  return impl_->machine.read_tiles(machine_buffer(buffer), rows, cols, row_major);
}

tile::Device& machine(Device& device) { return device.impl().machine; }

// ---- Run ----

Status RunProgram(Device& device, const Program& program, RunReport* report) {
  *report = {};
  const Program::Impl& p = program.impl();
  TN_RETURN_IF_ERROR(p.status);
  tile::Device& m = device.impl().machine;
  tile::Program mp(m);
  TN_RETURN_IF_ERROR(mp.use_host_addressable_l1());
  for (const auto& cb : p.cbs)
    for (const CoreRange& r : cb.cores.ranges())
      for (const auto& [index, format] : cb.config.formats())
        TN_RETURN_IF_ERROR(mp.create_circular_buffer(machine_range(r), index,
                                                     machine_format(format),
                                                     cb.config.total_size() / tile_size(format)));
  const std::string& root = device.config().kernel_root;
  for (const auto& k : p.kernels) {
    JitSource src;
    src.path = k.path;
    if (!root.empty() && std::filesystem::path(k.path).is_relative())
      src.path = (std::filesystem::path(root) / k.path).string();
    src.kind = k.kind;
    src.compile_args = k.compile_args;
    src.defines = k.defines;
    if (!root.empty()) src.include_dirs.push_back(root);
    JitKernel jk;
    TN_RETURN_IF_ERROR(jit_compile(src, &jk));
    ++(jk.compiled ? report->kernels_compiled : report->kernels_cached);
    report->compile_seconds += jk.compile_seconds;
    for (const CoreRange& r : k.cores.ranges()) {
      const tile::KernelHandle h =
          mp.create_kernel(k.kind, machine_range(r), jk.entry, k.path, k.compute);
      if (!k.common_args.empty()) mp.set_common_runtime_arg_words(h, k.common_args);
      for (const auto& [core, words] : k.args)
        if (r.contains({core.first, core.second}))
          mp.set_runtime_arg_words(h, {core.first, core.second}, words);
    }
  }
  TN_RETURN_IF_ERROR(mp.status());
  Status run = m.run(mp);
  const tile::RunResult& result = m.last_run();
  for (const tile::SanitizerReport& r : result.reports)
    report->findings.push_back({tile::report_kind_name(r.kind),
                                {r.core.x, r.core.y},
                                r.kernel_name,
                                r.op,
                                r.file,
                                r.line,
                                r.message});
  report->dropped_findings = result.dropped_reports;
  report->dprint = result.dprint;
  return run;
}

}  // namespace tilenorm::tt
