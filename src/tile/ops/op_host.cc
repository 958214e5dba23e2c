#include "tile/ops/op_host.h"

#include <fmt/format.h>

#include <cstring>
#include <string>

namespace tilenorm::tile {

void fill_run_report(const TileOpInfo& info, RunReport* report) {
  if (report == nullptr) return;
  report->path = info.path;
  const Counters& c = info.counters;
  report->metrics = {
      {"cores", info.cores},
      {"tile_rows", info.tile_rows},
      {"tiles_per_row", info.wt},
      {"block_tiles", info.block},
      {"l1_bytes_per_core", info.l1_bytes},
      {"dram_bytes_read", double(c.dram_bytes_read)},
      {"dram_bytes_written", double(c.dram_bytes_written)},
      {"dram_bytes_floor", double(info.floor_bytes)},
      {"traffic_ratio", info.traffic_ratio()},
      {"estimated_device_seconds", c.estimated_device_seconds},
  };
}

int64_t round_up_tile(int64_t n) { return tiles_along(n) * kTileDim; }

Status check_device_tensor(const char* name, const DeviceTensor& t, int64_t rows, int64_t cols,
                           int64_t padded_rows, int64_t padded_cols, DataFormat format) {
  auto shape = [](int64_t r, int64_t c) { return fmt::format("[{}, {}]", r, c); };
  if (t.rows != rows || t.cols != cols)
    return Status::invalid_argument(fmt::format("{} must have logical shape {}, got {}", name,
                                                shape(rows, cols), shape(t.rows, t.cols)));
  if (t.padded_rows != padded_rows || t.padded_cols != padded_cols)
    return Status::invalid_argument(
        fmt::format("{} must be padded to {} (canonical 32x32 tiles), got {}", name,
                    shape(padded_rows, padded_cols), shape(t.padded_rows, t.padded_cols)));
  if (t.buffer.format != format)
    return Status::invalid_argument(fmt::format("{} must be {}, got {}", name,
                                                data_format_name(format),
                                                data_format_name(t.buffer.format)));
  const int64_t pages = (padded_rows / kTileDim) * (padded_cols / kTileDim);
  if (t.buffer.num_pages != pages)
    return Status::invalid_argument(
        fmt::format("{} must have {} tile pages, got {}", name, pages, t.buffer.num_pages));
  return {};
}

DeviceTensor device_tensor_spec(int64_t rows, int64_t cols, DataFormat format) {
  DeviceTensor t;
  t.buffer.format = format;
  t.rows = rows;
  t.cols = cols;
  t.padded_rows = round_up_tile(rows);
  t.padded_cols = round_up_tile(cols);
  t.buffer.num_pages = uint32_t(num_tiles(rows, cols));
  return t;
}

Status allocate(Device& device, DeviceTensor* t, const std::vector<float>* padded) {
  TN_RETURN_IF_ERROR(device.create_buffer(t->buffer.num_pages, t->buffer.format, &t->buffer));
  if (padded == nullptr) return {};
  return device.write_tiles(t->buffer, padded->data(), t->padded_rows, t->padded_cols);
}

TileOpConfig default_tile_op_config(const NormOptions& options) {
  TileOpConfig config;
  config.device.numerics = NumericsMode::kFaithful;
  config.device.sanitizer = SanitizerMode::kOff;
  config.device.host_threads = options.num_threads;
  return config;
}

DataFormat tile_format(DType dtype) {
  return dtype == DType::kBF16 ? DataFormat::Float16_b : DataFormat::Float32;
}

std::vector<float> pad_matrix(const ConstTensorView& t, int64_t rows, int64_t C, float column_pad) {
  const int64_t pr = tiles_along(rows) * kTileDim, pc = tiles_along(C) * kTileDim;
  std::vector<float> m(size_t(pr * pc), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    float* out = m.data() + r * pc;
    if (t.dtype == DType::kF32) {
      std::memcpy(out, t.as<float>() + r * C, size_t(C) * sizeof(float));
    } else {
      const bf16* in = t.as<bf16>() + r * C;
      for (int64_t c = 0; c < C; ++c) out[c] = bf16_to_float(in[c]);
    }
    for (int64_t c = C; c < pc; ++c) out[c] = column_pad;
  }
  return m;
}

std::vector<float> dense_vector(const ConstTensorView& v, int64_t C, float pad) {
  const int64_t spans = (tiles_along(C) + kSpanTiles - 1) / kSpanTiles;
  std::vector<float> m(size_t(spans * kTileElems), pad);
  for (int64_t i = 0; i < C; ++i) m[size_t(i)] = float(tensor_get(v, i));
  return m;
}

std::vector<float> replicated_stats(const ConstTensorView& s, int64_t rows) {
  std::vector<float> m(size_t(tiles_along(rows) * kTileDim * kTileDim), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float v = float(tensor_get(s, r));
    for (int c = 0; c < kTileDim; ++c) m[size_t(r * kTileDim + c)] = v;
  }
  return m;
}

void store_values(const float* values, const TensorView& out) {
  const int64_t n = out.shape.numel();
  if (out.dtype == DType::kF32) {
    std::memcpy(out.as<float>(), values, size_t(n) * sizeof(float));
  } else {
    bf16* o = out.as<bf16>();
    for (int64_t i = 0; i < n; ++i) o[i] = float_to_bf16(values[i]);
  }
}

uint64_t cb_bytes(const std::vector<CbDesc>& cbs) {
  uint64_t bytes = 0;
  for (const CbDesc& c : cbs) bytes += uint64_t(c.pages) * tile_size(c.format);
  return bytes;
}

Status create_cbs(Program& program, const CoreRange& grid, const std::vector<CbDesc>& cbs) {
  for (const CbDesc& c : cbs)
    TN_RETURN_IF_ERROR(program.create_circular_buffer(grid, c.id, c.format, c.pages, c.name));
  return {};
}

TilePlan tile_plan(int64_t rows, int64_t C, const DeviceConfig& device,
                   const std::string& force_path, const CbList& cbs) {
  TilePlan p;
  p.ht = uint32_t(tiles_along(rows));
  p.wt = uint32_t(tiles_along(C));
  p.mask_w = uint32_t(C % kTileDim);
  p.spans = (p.wt + kSpanTiles - 1) / kSpanTiles;
  const uint64_t available = device.l1_size - device.l1_allocator_base;
  auto bytes = [&](bool fit, bool stream) {
    TilePlan q = p;
    q.fit = fit;
    q.stream = stream;
    return cb_bytes(cbs(q));
  };
  const uint64_t fit_bytes = bytes(true, false);
  p.fit = force_path.empty() ? fit_bytes <= available : force_path == "fit";
  p.stream = !p.fit && bytes(false, false) > available;
  p.l1_bytes = uint32_t(p.fit ? fit_bytes : bytes(false, p.stream));
  p.split = split_work_to_cores(device.grid_x, device.grid_y, p.ht);
  p.slots = p.stream ? p.ht : p.split.num_cores;
  return p;
}

void fill_tile_op_info(TileOpInfo* info, const TilePlan& plan, uint64_t floor_bytes,
                       const Device& device) {
  if (info == nullptr) return;
  info->path = plan.fit ? "fit" : plan.stream ? "streamed" : "block";
  info->cores = plan.split.num_cores;
  info->tile_rows = plan.ht;
  info->wt = plan.wt;
  info->block = plan.block;
  info->l1_bytes = plan.l1_bytes;
  info->floor_bytes = floor_bytes;
  info->counters = device.last_run().counters;
  info->reports = device.last_run().reports;
}

OpDevice::OpDevice(const TileOpConfig& config) {
  if (config.on_device != nullptr) {
    device_ = config.on_device;
    mark_ = device_->dram_mark();
  } else {
    own_ = std::make_unique<Device>(config.device);
    device_ = own_.get();
  }
}

OpDevice::~OpDevice() {
  if (own_ == nullptr) device_->free_buffers_since(mark_);
}

OpProgram::OpProgram(Device& device, uint64_t key)
    : device_(device),
      key_(key),
      cached_(device.program_cache().find(key)),
      hit_(cached_ != nullptr) {
  if (!hit_) built_.program = std::make_unique<Program>(device);
}

OpProgram::~OpProgram() {
  // A cached program whose call failed may hold the failure (a builder error in its status):
  // drop it, the next call builds it afresh.
  if (hit_ && !kept_) device_.program_cache().erase(key_);
}

Status OpProgram::ready() {
  if (mismatch_ || (hit_ && next_ != cached_->kernels.size())) {
    return Status::internal(fmt::format(
        "program cache: the program cached under key {:#x} has {} kernels, the op creates {}: "
        "the op's key misses an attribute its program depends on",
        key_, cached_->kernels.size(), mismatch_ ? "more" : std::to_string(next_)));
  }
  return program().status();
}

void OpProgram::succeeded() {
  if (!hit_ && !kept_) cached_ = &device_.program_cache().insert(key_, std::move(built_));
  kept_ = true;
}

uint64_t op_program_key(uint64_t op_key, const TilePlan& plan, const std::vector<CbDesc>& cbs,
                        std::initializer_list<void (*)()> kernels, const DeviceConfig& device) {
  ProgramHash h;
  h.add(op_key);
  for (const CbDesc& c : cbs) h.add(c.id).add(c.format).add(c.pages);
  for (void (*k)() : kernels) h.add(reinterpret_cast<uintptr_t>(k));
  return h.add(plan.split.num_cores)
      .add(device.grid_x)
      .add(device.grid_y)
      .add(device.l1_size)
      .add(device.l1_allocator_base)
      .value();
}

TileRows tile_rows(const TilePlan& plan, uint32_t first, uint32_t count) {
  return {.first = first,
          .count = count,
          .wt = plan.wt,
          .block = plan.block,
          .mask_w = plan.mask_w,
          .spans = plan.spans,
          .fit = plan.fit ? 1u : 0u,
          .stream = plan.stream ? 1u : 0u};
}

std::string variant_kernel_name(Norm norm, const char* residual, const char* direction) {
  return residual ? fmt::format("{}_{}_{}", norm_traits(norm).name, residual, direction)
                  : fmt::format("{}_{}", norm_traits(norm).name, direction);
}

uint64_t tile_program_key(const char* op, int64_t rows, int64_t C, DataFormat format,
                          const TilePlan& plan, const DeviceConfig& device) {
  return ProgramHash()
      .add(std::string_view(op))
      .add(rows)
      .add(C)
      .add(format)
      .add(plan.fit)
      .add(plan.stream)
      .add(plan.wt)
      .add(plan.block)
      .add(plan.mask_w)
      .add(plan.spans)
      .add(device.grid_x)
      .add(device.grid_y)
      .add(device.l1_size)
      .add(device.l1_allocator_base)
      .value();
}

Status upload_matrix(Device& device, const ConstTensorView& v, int64_t rows, int64_t C,
                     DataFormat format, float column_pad, DeviceTensor* t) {
  *t = device_tensor_spec(rows, C, format);
  const std::vector<float> tiles = pad_matrix(v, rows, C, column_pad);
  return allocate(device, t, &tiles);
}

Status upload_dense(Device& device, const ConstTensorView& v, int64_t C, DataFormat format,
                    float column_pad, DeviceTensor* t) {
  const int64_t spans = (tiles_along(C) + kSpanTiles - 1) / kSpanTiles;
  *t = device_tensor_spec(spans * kTileDim, kTileDim, format);
  const std::vector<float> tiles =
      v.empty() ? std::vector<float>(size_t(spans * kTileElems)) : dense_vector(v, C, column_pad);
  return allocate(device, t, &tiles);
}

Status upload_stats(Device& device, const ConstTensorView& s, int64_t rows, DeviceTensor* t) {
  *t = device_tensor_spec(rows, 1, DataFormat::Float32);
  const std::vector<float> tiles = replicated_stats(s, rows);
  return allocate(device, t, &tiles);
}

Status run_and_read_back(Device& device, Program& program, bool cache_hit, const TilePlan& plan,
                         uint64_t floor_bytes, const std::vector<ReadBack>& outputs,
                         TileOpInfo* info) {
  const Status run = device.run(program);
  fill_tile_op_info(info, plan, floor_bytes, device);
  if (info != nullptr) info->program_cache_hit = cache_hit;
  TN_RETURN_IF_ERROR(run);
  std::vector<float> values;
  for (const ReadBack& r : outputs) {
    values.resize(size_t(r.tensor->rows * r.tensor->cols));
    TN_RETURN_IF_ERROR(
        device.read_tiles(r.tensor->buffer, r.tensor->rows, r.tensor->cols, values.data()));
    store_values(values.data(), r.out);
  }
  return {};
}

}  // namespace tilenorm::tile
