// Host side of the tile machine: program builder, DRAM buffers, and the scheduler that runs each
// core's reader/compute/writer kernels as fibers, cores spread over host threads.
#include "tile/machine/device.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "tile/machine/machine.h"

namespace tilenorm::tile {

using detail::CbState;
using detail::CoreRuntime;
using detail::KernelRuntime;

namespace {

uint64_t core_key(CoreCoord c) { return (uint64_t{c.y} << 32) | c.x; }

constexpr uint32_t kL1Alignment = 32;
constexpr uint64_t kDramAlignment = 64;
constexpr uint64_t kDramFirstOffset = 64 * 1024;  // keeps address 0 free, so 0 means "unset"
constexpr size_t kFiberStackBytes = 512 * 1024;
constexpr uint16_t kPoisonHalf = 0xffb5;  // a NaN no arithmetic produces

}  // namespace

// ---------------------------------------------------------------------------------------------
// Work split.

uint32_t WorkSplit::first_work_of(uint32_t core_index) const {
  return core_index * work_per_core + std::min(core_index, cores_with_more);
}

WorkSplit split_work_to_cores(uint32_t grid_x, uint32_t grid_y, uint32_t num_work) {
  WorkSplit s;
  const uint32_t grid = grid_x * grid_y;
  s.num_cores = std::min(grid, num_work);
  if (s.num_cores == 0) return s;
  s.work_per_core = num_work / s.num_cores;
  s.cores_with_more = num_work % s.num_cores;
  for (uint32_t i = 0; i < s.num_cores; ++i) s.cores.push_back({i % grid_x, i / grid_x});
  return s;
}

// ---------------------------------------------------------------------------------------------
// Program.

Program::Program(const Device& device) : impl_(std::make_unique<Impl>()) {
  const DeviceConfig& c = device.config();
  impl_->grid_x = c.grid_x;
  impl_->grid_y = c.grid_y;
  impl_->l1_size = c.l1_size;
  impl_->l1_base = c.l1_allocator_base;
  impl_->cores.resize(size_t{c.grid_x} * c.grid_y);
  for (CoreSpec& core : impl_->cores) core.l1_end = c.l1_allocator_base;
}
Program::~Program() = default;
Program::Program(Program&&) noexcept = default;
Program& Program::operator=(Program&&) noexcept = default;

const Status& Program::status() const { return impl_->status; }

static bool range_in_grid(const Program::Impl& p, const CoreRange& r) {
  return r.start.x <= r.end.x && r.start.y <= r.end.y && r.end.x < p.grid_x && r.end.y < p.grid_y;
}

static std::string range_string(const CoreRange& r) {
  return fmt::format("[{}..{}]", r.start.to_string(), r.end.to_string());
}

Status Program::create_circular_buffer(const CoreRange& cores, uint32_t cb, DataFormat format,
                                       uint32_t num_pages, std::string name) {
  Impl& p = *impl_;
  if (!range_in_grid(p, cores)) {
    return Status::invalid_argument(fmt::format("CB {}: core range {} is outside the {}x{} grid",
                                                cb, range_string(cores), p.grid_x, p.grid_y));
  }
  if (cb >= kMaxCbs) {
    return Status::invalid_argument(fmt::format("CB index {} is not in 0..{}", cb, kMaxCbs - 1));
  }
  if (num_pages == 0) {
    return Status::invalid_argument(fmt::format("CB {} ('{}') has 0 pages", cb, name));
  }
  const uint64_t bytes = uint64_t{num_pages} * tile_size(format);
  for (uint32_t y = cores.start.y; y <= cores.end.y; ++y) {
    for (uint32_t x = cores.start.x; x <= cores.end.x; ++x) {
      CoreSpec& core = p.core({x, y});
      if (core.cbs[cb].exists) {
        return Status::invalid_argument(
            fmt::format("CB {} created twice on core {}", cb, CoreCoord{x, y}.to_string()));
      }
      const uint64_t base =
          (uint64_t{core.l1_end} + kL1Alignment - 1) / kL1Alignment * kL1Alignment;
      if (base + bytes > p.l1_size) {
        std::string list;
        uint64_t total = 0;
        for (uint32_t i = 0; i < kMaxCbs; ++i) {
          const CbSpec& s = core.cbs[i];
          if (!s.exists) continue;
          const uint64_t b = uint64_t{s.num_pages} * tile_size(s.format);
          total += b;
          list += fmt::format("  CB {} '{}': {} x {} pages = {} B\n", i, s.name,
                              data_format_name(s.format), s.num_pages, b);
        }
        list += fmt::format("  CB {} '{}': {} x {} pages = {} B  <- does not fit\n", cb, name,
                            data_format_name(format), num_pages, bytes);
        total += bytes;
        return Status::resource_exhausted(fmt::format(
            "circular buffers of core {} need {} B but L1 has {} B ({} B from allocator base {} "
            "to {}):\n{}",
            CoreCoord{x, y}.to_string(), total, p.l1_size - p.l1_base, p.l1_size - p.l1_base,
            p.l1_base, p.l1_size, list));
      }
      CbSpec& s = core.cbs[cb];
      s.exists = true;
      s.format = format;
      s.num_pages = num_pages;
      s.base = static_cast<uint32_t>(base);
      s.name = name;
      core.l1_end = static_cast<uint32_t>(base + bytes);
    }
  }
  return Status::ok_status();
}

KernelHandle Program::add_kernel(KernelKind kind, const CoreRange& cores, void (*fn)(),
                                 const void* args_type, Invoker invoker, std::string name,
                                 ComputeConfig config) {
  Impl& p = *impl_;
  const uint32_t id = static_cast<uint32_t>(p.kernels.size());
  if (name.empty()) name = kernel_kind_name(kind);
  if (!range_in_grid(p, cores)) {
    if (p.status.ok()) {
      p.status = Status::invalid_argument(
          fmt::format("kernel '{}': core range {} is outside the {}x{} grid", name,
                      range_string(cores), p.grid_x, p.grid_y));
    }
    return {id};
  }
  KernelSpec k;
  k.kind = kind;
  k.cores = cores;
  k.fn = fn;
  k.args_type = args_type;
  k.invoker = invoker;
  k.name = std::move(name);
  k.config = config;
  for (uint32_t y = cores.start.y; y <= cores.end.y; ++y) {
    for (uint32_t x = cores.start.x; x <= cores.end.x; ++x) {
      int& slot = p.core({x, y}).kernels[static_cast<int>(kind)];
      if (slot >= 0 && p.status.ok()) {
        p.status = Status::invalid_argument(
            fmt::format("core {} has two {} kernels: '{}' and '{}'", CoreCoord{x, y}.to_string(),
                        kernel_kind_name(kind), p.kernels[slot].name, k.name));
      }
      slot = static_cast<int>(id);
    }
  }
  p.kernels.push_back(std::move(k));
  return {id};
}

KernelHandle Program::create_kernel(KernelKind kind, const CoreRange& cores, void (*fn)(),
                                    std::string name, ComputeConfig config) {
  return add_kernel(kind, cores, fn, nullptr, nullptr, std::move(name), config);
}

void Program::set_args(KernelHandle kernel, const CoreCoord* core, const void* args_type,
                       const void* args, size_t size) {
  Impl& p = *impl_;
  auto fail = [&](std::string m) {
    if (p.status.ok()) p.status = Status::invalid_argument(std::move(m));
  };
  if (kernel.id >= p.kernels.size()) return fail("set_runtime_args: unknown kernel handle");
  KernelSpec& k = p.kernels[kernel.id];
  if (k.args_type != args_type) {
    return fail(fmt::format("set_runtime_args: kernel '{}' takes {} args type", k.name,
                            k.args_type ? "another" : "no"));
  }
  const auto* b = static_cast<const std::byte*>(args);
  if (core == nullptr) {
    k.common_args.assign(b, b + size);
    return;
  }
  if (!k.cores.contains(*core)) {
    return fail(fmt::format("set_runtime_args: kernel '{}' does not run on core {}", k.name,
                            core->to_string()));
  }
  k.core_args[core_key(*core)].assign(b, b + size);
}

uint32_t Program::l1_bytes(CoreCoord core) const {
  const CoreSpec& c = impl_->core(core);
  uint32_t total = 0;
  for (const CbSpec& s : c.cbs) {
    if (s.exists) total += s.num_pages * tile_size(s.format);
  }
  return total;
}

std::string Program::describe() const {
  const Impl& p = *impl_;
  std::string out;
  for (uint32_t y = 0; y < p.grid_y; ++y) {
    for (uint32_t x = 0; x < p.grid_x; ++x) {
      const CoreSpec& c = p.core({x, y});
      if (!c.used()) continue;
      out += fmt::format("core {}: L1 {} B;", CoreCoord{x, y}.to_string(), l1_bytes({x, y}));
      for (int k = 0; k < kNumKernelKinds; ++k) {
        if (c.kernels[k] >= 0) {
          out += fmt::format(" {} '{}'", kernel_kind_name(static_cast<KernelKind>(k)),
                             p.kernels[c.kernels[k]].name);
        }
      }
      out += "\n";
      for (uint32_t i = 0; i < kMaxCbs; ++i) {
        const CbSpec& s = c.cbs[i];
        if (s.exists) {
          out += fmt::format("  CB {:2} '{}' {} x {} pages at L1 {:#x}\n", i, s.name,
                             data_format_name(s.format), s.num_pages, s.base);
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Device and DRAM.

Device::Device(DeviceConfig config)
    : config_(config), dram_(std::make_unique<Dram>()), workers_(std::make_unique<Workers>()) {
  TN_CHECK(config_.grid_x > 0 && config_.grid_y > 0 && config_.num_dram_banks > 0,
           "DeviceConfig: empty grid or no DRAM banks");
  TN_CHECK(config_.l1_allocator_base <= config_.l1_size, "DeviceConfig: L1 base beyond L1 size");
  dram_->next_offset = kDramFirstOffset;
}
Device::~Device() = default;

Status Device::create_buffer(uint32_t num_pages, DataFormat format, Buffer* out) {
  if (num_pages == 0) return Status::invalid_argument("create_buffer: 0 pages");
  const uint32_t page = tile_size(format);
  const uint64_t pages_per_bank = (num_pages + config_.num_dram_banks - 1) / config_.num_dram_banks;
  const uint64_t bank_bytes =
      (pages_per_bank * page + kDramAlignment - 1) / kDramAlignment * kDramAlignment;
  if (dram_->next_offset + bank_bytes > config_.dram_bank_size ||
      dram_->next_offset + bank_bytes > UINT32_MAX) {
    return Status::resource_exhausted(fmt::format(
        "create_buffer: {} pages of {} B need {} B per bank; {} B of {} B per bank are left",
        num_pages, page, bank_bytes, config_.dram_bank_size - dram_->next_offset,
        config_.dram_bank_size));
  }
  auto b = std::make_unique<DramBuffer>();
  b->address = static_cast<uint32_t>(dram_->next_offset);
  b->num_pages = num_pages;
  b->page_size = page;
  b->bank_bytes = bank_bytes;
  b->format = format;
  b->data.assign(size_t{num_pages} * page, 0);
  dram_->next_offset += bank_bytes;
  *out = Buffer{b->address, num_pages, format};
  dram_->buffers.emplace(b->address, std::move(b));
  return Status::ok_status();
}

Status Device::free_buffer(const Buffer& buffer) {
  auto it = dram_->buffers.find(buffer.address);
  if (it == dram_->buffers.end()) {
    return Status::invalid_argument(fmt::format("free_buffer: no buffer at {:#x}", buffer.address));
  }
  // A bump allocator: only the most recent buffer gives its bank space back.
  if (it->second->address + it->second->bank_bytes == dram_->next_offset) {
    dram_->next_offset = it->second->address;
  }
  dram_->buffers.erase(it);
  return Status::ok_status();
}

uint64_t Device::dram_mark() const { return dram_->next_offset; }

void Device::free_buffers_since(uint64_t mark) {
  std::erase_if(dram_->buffers, [&](const auto& b) { return b.second->address >= mark; });
  dram_->next_offset = std::min<uint64_t>(dram_->next_offset, mark);
}

static Status find_buffer(const Device::Dram& dram, const Buffer& buffer, size_t size,
                          const char* what, DramBuffer** out) {
  auto it = dram.buffers.find(buffer.address);
  if (it == dram.buffers.end()) {
    return Status::invalid_argument(fmt::format("{}: no buffer at {:#x}", what, buffer.address));
  }
  if (size > it->second->data.size()) {
    return Status::invalid_argument(
        fmt::format("{}: {} B do not fit the buffer's {} B", what, size, it->second->data.size()));
  }
  *out = it->second.get();
  return Status::ok_status();
}

Status Device::write_buffer(const Buffer& buffer, const void* bytes, size_t size) {
  DramBuffer* b = nullptr;
  TN_RETURN_IF_ERROR(find_buffer(*dram_, buffer, size, "write_buffer", &b));
  std::memcpy(b->data.data(), bytes, size);
  return Status::ok_status();
}

Status Device::read_buffer(const Buffer& buffer, void* bytes, size_t size) const {
  DramBuffer* b = nullptr;
  TN_RETURN_IF_ERROR(find_buffer(*dram_, buffer, size, "read_buffer", &b));
  std::memcpy(bytes, b->data.data(), size);
  return Status::ok_status();
}

Status Device::write_tiles(const Buffer& buffer, const float* row_major, int64_t rows, int64_t cols,
                           float pad) {
  if (rows <= 0 || cols <= 0) {
    return Status::invalid_argument(fmt::format("write_tiles: empty matrix {}x{}", rows, cols));
  }
  const int64_t n = num_tiles(rows, cols);
  DramBuffer* b = nullptr;
  TN_RETURN_IF_ERROR(find_buffer(*dram_, buffer, static_cast<size_t>(n) * tile_size(buffer.format),
                                 "write_tiles", &b));
  const std::vector<float> tiles = tilize(row_major, rows, cols, pad);
  encode(tiles.data(), tiles.size(), b->format, b->data.data());
  return Status::ok_status();
}

Status Device::read_tiles(const Buffer& buffer, int64_t rows, int64_t cols,
                          float* row_major) const {
  if (rows <= 0 || cols <= 0) {
    return Status::invalid_argument(fmt::format("read_tiles: empty matrix {}x{}", rows, cols));
  }
  const int64_t n = num_tiles(rows, cols);
  DramBuffer* b = nullptr;
  TN_RETURN_IF_ERROR(find_buffer(*dram_, buffer, static_cast<size_t>(n) * tile_size(buffer.format),
                                 "read_tiles", &b));
  std::vector<float> tiles(static_cast<size_t>(n) * kTileElems);
  decode(b->data.data(), tiles.size(), b->format, tiles.data());
  untilize(tiles.data(), rows, cols, row_major);
  return Status::ok_status();
}

// ---------------------------------------------------------------------------------------------
// Scheduler.

namespace detail {

// Per host thread: three fiber stacks and one dst, reused core after core and run after run.
struct Worker {
  Worker() { std::memset(dst->data, 0, sizeof dst->data); }  // then `dirty` tracks writes
  FiberStack stacks[kNumKernelKinds] = {FiberStack(kFiberStackBytes), FiberStack(kFiberStackBytes),
                                        FiberStack(kFiberStackBytes)};
  std::unique_ptr<Dst> dst = std::make_unique<Dst>();
  std::vector<uint8_t> l1;  // the L1 of the core this thread runs
};

}  // namespace detail

struct Device::Workers {
  std::vector<std::unique_ptr<detail::Worker>> pool;
};

namespace {

using detail::Worker;

void kernel_entry(void* arg) {
  auto* k = static_cast<KernelRuntime*>(arg);
  if (k->core->stopping) return;  // the core stopped before this kernel first ran
  try {
    if (k->spec->invoker != nullptr) {
      k->spec->invoker(k->spec->fn, k->args);
    } else {
      k->spec->fn();
    }
    detail::check_kernel_end(*k);
  } catch (const detail::KernelAbort&) {
  } catch (const std::exception& e) {
    k->core->internal_error =
        fmt::format("{} kernel '{}' threw: {}", kernel_kind_name(k->kind), k->spec->name, e.what());
    k->core->stopping = true;
  } catch (...) {
    k->core->internal_error =
        fmt::format("{} kernel '{}' threw an exception", kernel_kind_name(k->kind), k->spec->name);
    k->core->stopping = true;
  }
}

bool can_run(const KernelRuntime& k) {
  if (!k.blocked) return true;
  const CbState& cb = k.core->cbs[k.blocked_cb];
#ifdef TILENORM_TILE_PLANTED_FAULT
  // The mutation check's planted failure (src/tile/ops/CMakeLists.txt): a blocked kernel resumes
  // one page late, so a kernel waiting on a full 1-page CB deadlocks.
  return k.blocked_on_reserve ? cb.free_pages() > k.blocked_pages
                              : cb.available() > k.blocked_pages;
#else
  return k.blocked_on_reserve ? cb.free_pages() >= k.blocked_pages
                              : cb.available() >= k.blocked_pages;
#endif
}

void resume(KernelRuntime& k) {
  detail::t_kernel = &k;
  k.fiber.resume();
  detail::t_kernel = nullptr;
}

void report_deadlock(CoreRuntime& core) {
  std::string blocked;
  KernelRuntime* first = nullptr;
  for (KernelRuntime& k : core.kernels) {
    if (!k.present || k.fiber.finished()) continue;
    if (first == nullptr) first = &k;
    const CbState& cb = core.cbs[k.blocked_cb];
    blocked += fmt::format("  {} '{}' blocked in {}(cb {}, {}) at {}:{}: {} {} pages of {}\n",
                           kernel_kind_name(k.kind), k.spec->name,
                           k.blocked_on_reserve ? "cb_reserve_back" : "cb_wait_front", k.blocked_cb,
                           k.blocked_pages, k.blocked_file, k.blocked_line,
                           k.blocked_on_reserve ? "free" : "available",
                           k.blocked_on_reserve ? cb.free_pages() : cb.available(), cb.num_pages);
  }
  detail::raise_at(*first, ReportKind::kDeadlock,
                   first->blocked_on_reserve ? "cb_reserve_back" : "cb_wait_front",
                   static_cast<int>(first->blocked_cb), -1, first->blocked_file,
                   first->blocked_line,
                   "every unfinished kernel is blocked:\n" + blocked + detail::dump_core(core));
}

// Runs one core's kernels to completion, a deadlock or the core's first error.
void run_core(CoreRuntime& core, Worker& worker) {
  // Kernels started in a fixed order and resumed round-robin until they block: the schedule
  // depends only on the program, never on host threads or timing.
  for (int i = 0; i < kNumKernelKinds; ++i) {
    KernelRuntime& k = core.kernels[i];
    if (k.present) k.fiber.start(&worker.stacks[i], &kernel_entry, &k);
  }
  for (;;) {
    bool any_left = false, progressed = false;
    for (KernelRuntime& k : core.kernels) {
      if (!k.present || k.fiber.finished()) continue;
      if (!core.stopping && can_run(k)) {
        resume(k);
        progressed = true;
      }
      any_left |= !k.fiber.finished();
    }
    if (!any_left) break;
    if (core.stopping || !progressed) {
      if (!core.stopping) {
        report_deadlock(core);
        core.stopping = true;
      }
      // Unwind every parked kernel: each blocking call throws KernelAbort when resumed.
      for (KernelRuntime& k : core.kernels) {
        if (k.present && !k.fiber.finished()) resume(k);
      }
      break;
    }
  }
}

void setup_core(CoreRuntime& core, const Program::Impl& p, Worker& worker, bool poison) {
  const CoreSpec& spec = *core.spec;
  core.l1_base = p.l1_base;
  core.l1_size = spec.l1_end - p.l1_base;
  if (p.host_l1) {
    // L1 address a is at host address map + a: CB addresses become pointers (kernel_args.cc).
    uint8_t* map = detail::host_l1_map(p.l1_size);
    core.l1 = map + p.l1_base;
    core.l1_base = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(core.l1));
  } else {
    if (worker.l1.size() < core.l1_size) worker.l1.resize(core.l1_size);
    core.l1 = worker.l1.data();
  }
  // Never the previous core's bytes: what a kernel reads unwritten must not depend on threads.
  // A program without L1 (no CBs) has no bytes to clear, and an empty buffer's data() may be null.
  if (core.l1_size > 0 && poison) {
    auto* h = reinterpret_cast<uint16_t*>(core.l1);
    std::fill(h, h + core.l1_size / 2, kPoisonHalf);
  } else if (core.l1_size > 0) {
    std::memset(core.l1, 0, core.l1_size);
  }
  for (uint32_t i = 0; i < kMaxCbs; ++i) {
    const CbSpec& s = spec.cbs[i];
    CbState& cb = core.cbs[i];
    cb = CbState{};
    if (!s.exists) continue;
    cb.exists = true;
    cb.format = s.format;
    cb.num_pages = s.num_pages;
    cb.page_size = tile_size(s.format);
    cb.base = core.l1_base + (s.base - p.l1_base);
    cb.mem = core.l1 + (s.base - p.l1_base);
    cb.name = &s.name;
    if (core.sanitize && core.config->lint_running_sum) cb.packs.assign(cb.num_pages, {});
  }
  core.dst = worker.dst.get();
  const int compute = spec.kernels[static_cast<int>(KernelKind::kCompute)];
  const ComputeConfig cfg = compute >= 0 ? p.kernels[compute].config : ComputeConfig{};
  detail::reset_dst(*core.dst, cfg);
  core.dst_bf16 = core.faithful && !cfg.fp32_dest_acc_en;
  for (int i = 0; i < kNumKernelKinds; ++i) {
    KernelRuntime& k = core.kernels[i];
    k.core = &core;
    k.kind = static_cast<KernelKind>(i);
    k.present = spec.kernels[i] >= 0;
    if (!k.present) continue;
    k.spec = &p.kernels[spec.kernels[i]];
    if (k.spec->args_type != nullptr) {
      auto it = k.spec->core_args.find(core_key(core.core));
      k.args = it != k.spec->core_args.end() ? it->second.data() : k.spec->common_args.data();
    }
  }
}

void finish_core(CoreRuntime& core) {
  core.counters.core = core.core;
  for (int i = 0; i < kNumKernelKinds; ++i) core.counters.kernels[i] = core.kernels[i].counters;
  for (uint32_t i = 0; i < kMaxCbs; ++i) core.counters.cb_high_water[i] = core.cbs[i].high_water;
  core.counters.l1_bytes = core.l1_size;
  core.l1 = nullptr;  // the worker's L1 goes to the next core
  for (KernelRuntime& k : core.kernels) {
    k.pending_reads.clear();
    k.pending_writes.clear();
  }
}

Status validate_args(const Program::Impl& p) {
  for (const KernelSpec& k : p.kernels) {
    if (k.args_type == nullptr || !k.common_args.empty()) continue;
    for (uint32_t y = k.cores.start.y; y <= k.cores.end.y; ++y) {
      for (uint32_t x = k.cores.start.x; x <= k.cores.end.x; ++x) {
        if (!k.core_args.contains(core_key({x, y}))) {
          return Status::invalid_argument(fmt::format("kernel '{}' has no runtime args on core {}",
                                                      k.name, CoreCoord{x, y}.to_string()));
        }
      }
    }
  }
  return Status::ok_status();
}

}  // namespace

Status Device::run(const Program& program) {
  last_run_ = RunResult{};
  const Program::Impl& p = program.impl();
  TN_RETURN_IF_ERROR(p.status);
  if (p.grid_x != config_.grid_x || p.grid_y != config_.grid_y || p.l1_size != config_.l1_size ||
      p.l1_base != config_.l1_allocator_base) {
    return Status::invalid_argument("run: the program was built for another device config");
  }
  TN_RETURN_IF_ERROR(validate_args(p));

  std::vector<std::unique_ptr<CoreRuntime>> cores;
  for (uint32_t y = 0; y < p.grid_y; ++y) {
    for (uint32_t x = 0; x < p.grid_x; ++x) {
      const CoreSpec& spec = p.core({x, y});
      if (!spec.used()) continue;
      auto core = std::make_unique<CoreRuntime>();
      core->core = {x, y};
      core->spec = &spec;
      core->dram = dram_.get();
      core->config = &config_;
      core->sanitize = config_.sanitizer != SanitizerMode::kOff;
      core->error_mode = config_.sanitizer == SanitizerMode::kError;
      core->faithful = config_.numerics == NumericsMode::kFaithful;
      core->bank_bytes.assign(config_.num_dram_banks, 0);
      cores.push_back(std::move(core));
    }
  }

  int threads = config_.host_threads > 0 ? config_.host_threads
                                         : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::clamp(threads, 1, std::max<int>(1, static_cast<int>(cores.size())));
  std::atomic<size_t> next{0};
  while (workers_->pool.size() < static_cast<size_t>(threads)) {
    workers_->pool.push_back(std::make_unique<Worker>());
  }
  auto work = [&](int t) {
    Worker& worker = *workers_->pool[t];
    for (size_t i = next++; i < cores.size(); i = next++) {
      CoreRuntime& core = *cores[i];
      setup_core(core, p, worker, core.sanitize);
      run_core(core, worker);
      finish_core(core);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& t : pool) t.join();

  // Merge in core order, so reports and counters never depend on the thread count.
  Counters& c = last_run_.counters;
  c.dram_bank_bytes.assign(config_.num_dram_banks, 0);
  Status status;
  for (auto& core : cores) {
    if (status.ok() && !core->internal_error.empty()) {
      status = Status::internal(
          fmt::format("tile machine: core {}: {}", core->core.to_string(), core->internal_error));
    }
    if (status.ok() && core->fatal_report >= 0) {
      status = Status::internal("tile machine: " + core->reports[core->fatal_report].to_string());
    }
    for (SanitizerReport& r : core->reports) last_run_.reports.push_back(std::move(r));
    last_run_.dprint += core->dprint;
    for (const detail::KernelRuntime& k : core->kernels) {
      if (!k.dprint_line.empty()) {  // a print the kernel did not end with a newline
        last_run_.dprint += fmt::format("core {} {}: {}\n", core->core.to_string(),
                                        kernel_kind_name(k.kind), k.dprint_line);
      }
    }
    last_run_.dropped_reports += core->dropped_reports;
    if (core->dropped_reports > 0 && config_.sanitizer == SanitizerMode::kWarn &&
        config_.print_warnings) {
      fmt::print(stderr, "tile machine warning: core {}: {} further reports dropped ({} kept)\n",
                 core->core.to_string(), core->dropped_reports, detail::kMaxReportsPerCore);
    }
    c.dram_bytes_read += core->counters.dram_bytes_read();
    c.dram_bytes_written += core->counters.dram_bytes_written();
    for (int i = 0; i < kNumTileOpKinds; ++i) c.tile_ops[i] += core->counters.tile_ops[i];
    for (uint32_t b = 0; b < config_.num_dram_banks; ++b) {
      c.dram_bank_bytes[b] += core->bank_bytes[b];
    }
    c.cores.push_back(core->counters);
  }
  if (!status.ok() && last_run_.dropped_reports > 0) {
    status =
        Status(status.code(), fmt::format("{} ({} further reports dropped: {} are kept per core)",
                                          status.message(), last_run_.dropped_reports,
                                          detail::kMaxReportsPerCore));
  }
  c.estimated_device_seconds = static_cast<double>(c.dram_bytes_read + c.dram_bytes_written) /
                               config_.dram_bandwidth_bytes_per_s;
  return status;
}

}  // namespace tilenorm::tile
