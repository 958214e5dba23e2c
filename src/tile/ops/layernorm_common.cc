#include "tile/ops/layernorm_common.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "reference/layernorm.h"
#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/mask.h"
#include "tile/machine/api/compute/matmul.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/machine/api/dataflow_api.h"

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

TileOpConfig default_tile_op_config(const LayerNormOptions& options) {
  TileOpConfig config;
  config.device.numerics = NumericsMode::kFaithful;
  config.device.sanitizer = SanitizerMode::kOff;
  config.device.host_threads = options.num_threads;
  return config;
}

DataFormat tile_format(DType dtype) {
  return dtype == DType::kBF16 ? DataFormat::Float16_b : DataFormat::Float32;
}

std::vector<float> pad_matrix(ConstTensorView t, int64_t rows, int64_t C, float column_pad) {
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

std::vector<float> dense_vector(ConstTensorView v, int64_t C, float pad) {
  const int64_t spans = (tiles_along(C) + kSpanTiles - 1) / kSpanTiles;
  std::vector<float> m(size_t(spans * kTileElems), pad);
  for (int64_t i = 0; i < C; ++i) m[size_t(i)] = float(tensor_get(v, i));
  return m;
}

std::vector<float> replicated_stats(ConstTensorView s, int64_t rows) {
  std::vector<float> m(size_t(tiles_along(rows) * kTileDim * kTileDim), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float v = float(tensor_get(s, r));
    for (int c = 0; c < kTileDim; ++c) m[size_t(r * kTileDim + c)] = v;
  }
  return m;
}

void store_values(const float* values, TensorView out) {
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

LayerNormTilePlan layernorm_tile_plan(int64_t rows, int64_t C, const DeviceConfig& device,
                                      const std::string& force_path, const CbList& cbs) {
  LayerNormTilePlan p;
  p.ht = uint32_t(tiles_along(rows));
  p.wt = uint32_t(tiles_along(C));
  p.mask_w = uint32_t(C % kTileDim);
  p.spans = (p.wt + kSpanTiles - 1) / kSpanTiles;
  const uint64_t available = device.l1_size - device.l1_allocator_base;
  auto bytes = [&](bool fit, bool stream) {
    LayerNormTilePlan q = p;
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

// ---------------------------------------------------------------------------------------------
// Reader side.

InterleavedAddrGenFast<true> tile_addr_gen(uint32_t addr, uint32_t cb) {
  return {
      .bank_base_address = addr, .page_size = get_tile_size(cb), .data_format = get_dataformat(cb)};
}

void read_tiles_into(uint32_t cb, const InterleavedAddrGenFast<true>& s, uint32_t first, uint32_t n,
                     uint32_t pages) {
  cb_reserve_back(cb, pages);
  const uint32_t base = get_write_ptr(cb), size = get_tile_size(cb);
  for (uint32_t i = 0; i < n; ++i) noc_async_read_tile(first + i, s, base + i * size);
}

namespace {

// Writes element values of one page given as fp32, in the CB's format.
template <typename F>
void write_page(uint32_t cb, uint32_t page, F&& value_at) {
  const uint32_t size = get_tile_size(cb);
  const uint32_t addr = get_write_ptr(cb) + page * size;
  if (get_dataformat(cb) == DataFormat::Float32) {
    float* p = l1_ptr<float>(addr, kTileElems);
    for (int r = 0; r < kTileDim; ++r)
      for (int c = 0; c < kTileDim; ++c) p[tile_index(r, c)] = value_at(r, c);
  } else {
    uint16_t* p = l1_ptr<uint16_t>(addr, kTileElems);
    for (int r = 0; r < kTileDim; ++r)
      for (int c = 0; c < kTileDim; ++c) p[tile_index(r, c)] = float_to_bf16(value_at(r, c)).bits;
  }
}

}  // namespace

void fill_page(uint32_t cb, uint32_t page, float value) {
  write_page(cb, page, [&](int, int) { return value; });
}

void push_mask_page(uint32_t cb, uint32_t mask_w) {
  if (mask_w == 0) return;
  cb_reserve_back(cb, 1);
  fill_mask_page(cb, 0, mask_w);
  cb_push_back(cb, 1);
}

void fill_mask_page(uint32_t cb, uint32_t page, uint32_t mask_w) {
  write_page(cb, page, [&](int, int c) { return uint32_t(c) < mask_w ? 1.0f : 0.0f; });
}

void fill_row_selector_pages(uint32_t cb, uint32_t page) {
  for (int i = 0; i < kTileDim; ++i)
    write_page(cb, page + i, [&](int r, int) { return r == i ? 1.0f : 0.0f; });
}

void expand_dense_row(uint32_t dense_cb, uint32_t t, uint32_t out_cb, uint32_t page) {
  const uint32_t size = get_tile_size(out_cb);
  const uint32_t es = size / kTileElems;
  const uint8_t* src = l1_ptr<uint8_t>(get_write_ptr(dense_cb) + (t / kSpanTiles) * size, size);
  uint8_t* dst = l1_ptr<uint8_t>(get_write_ptr(out_cb) + page * size, size);
  const int row = int(t % kSpanTiles);
  // A row is 16 elements in a left face and 16 in a right face.
  const uint8_t* left = src + size_t(tile_index(row, 0)) * es;
  const uint8_t* right = src + size_t(tile_index(row, kFaceDim)) * es;
  for (int r = 0; r < kTileDim; ++r) {
    std::memcpy(dst + size_t(tile_index(r, 0)) * es, left, kFaceDim * es);
    std::memcpy(dst + size_t(tile_index(r, kFaceDim)) * es, right, kFaceDim * es);
  }
}

// ---------------------------------------------------------------------------------------------
// Compute-side exact row sum.

RowMeanConstants row_mean_constants(int64_t C) {
  const uint64_t c = uint64_t(C);
  const int k = std::bit_width(c) - std::countr_zero(c);  // significant bits
  const double split = std::ldexp(1.0, k) + 1;
  return {float_bits(float(1.0 / double(C))), float_bits(float(C)),
          k <= 20 ? float_bits(float(split)) : 0u,
          float_bits(float(2 * std::max(double(C), split)))};
}

void zero_where_infinite(uint32_t cb, uint32_t itile, uint32_t data) {
  // 1/(v·2^-100) is 0 exactly where v = ±Inf (finite v: |v·2^-100| <= 2^28), NaN where v is
  // NaN (kept: mask_tile zeroes only where the mask equals 0, tt-metal ckernel_sfpu_mask.h).
  copy_tile(cb, itile, data + 1);
  mul_unary_tile(data + 1, float_bits(std::ldexp(1.0f, -100)));
  recip_tile(data + 1);
  mask_tile(data, data + 1);
}

namespace {

// Slot 0 = s / C (slots 1-3 scratch). With m0 = s·(1/C) (within 1.5 ulp of s/C):
//   m1   = m0 rounded to 24 - k bits   (Veltkamp: c = m0·(2^k + 1), m1 = c - (c - m0))
//   r    = s - m1·C                    exact: m1·C has <= 24 bits and lies within 2x of s
//   mean = m1 + r·(1/C)                the sum is off s/C by <= 2^(k-24) ulp before rounding
// The correction mean - m0 is computed on s zeroed where m0·guard is not finite (±Inf, NaN
// only where s is NaN, or |m0| so large that c would overflow) and zeroed there again, so those
// rows keep m0 (a row sum of +Inf gives +Inf).
void divide_by_c(const RowMeanConstants& k) {
  if (k.split == 0) {
    mul_unary_tile(0, k.inv_c);
    return;
  }
  auto guard_mask = [&] {  // slot 1 = 1/(m0·guard): 0 exactly where m0·guard is ±Inf
    fill_tile(1, float_from_bits(k.guard));
    mul_binary_tile(2, 1, 1);
    recip_tile(1);
  };
  fill_tile(2, float_from_bits(k.inv_c));
  mul_binary_tile(0, 2, 2);  // m0
  guard_mask();
  mask_tile(0, 1);  // s, or 0 where m0 is left as is
  fill_tile(1, float_from_bits(k.inv_c));
  mul_binary_tile(0, 1, 1);  // m0 (or 0)
  fill_tile(3, float_from_bits(k.split));
  mul_binary_tile(1, 3, 3);  // c
  sub_binary_tile(3, 1, 1);
  sub_binary_tile(3, 1, 1);  // m1
  fill_tile(3, float_from_bits(k.c));
  mul_binary_tile(1, 3, 3);  // m1·C, exact
  sub_binary_tile(0, 3, 0);  // r, exact
  mul_unary_tile(0, k.inv_c);
  add_binary_tile(1, 0, 0);  // mean
  sub_binary_tile(0, 2, 0);  // mean - m0, exact
  guard_mask();
  mask_tile(0, 1);
  add_binary_tile(2, 0, 0);
}

}  // namespace

void row_means(const RowSumCbs& cbs, uint32_t n, const RowMeanConstants& k) {
  // lo = partial - hi, in fp32 on the SFPU (0 where the partial is ±Inf).
  cb_wait_front(cbs.partial, n);
  cb_wait_front(cbs.hi, n);
  tile_regs_acquire();
  for (uint32_t i = 0; i < n; ++i) {
    copy_tile(cbs.partial, i, 2 * i);
    copy_tile(cbs.hi, i, 2 * i + 1);
    sub_binary_tile(2 * i, 2 * i + 1, 2 * i);
    zero_where_infinite(cbs.partial, i, 2 * i);
  }
  tile_regs_commit();
  cb_pop_front(cbs.partial, n);
  cb_reserve_back(cbs.lo, n);
  tile_regs_wait();
  for (uint32_t i = 0; i < n; ++i) pack_tile(2 * i, cbs.lo, i);
  tile_regs_release();
  cb_push_back(cbs.lo, n);

  // Row sums replicated over the columns, matmul(hi, ones) + matmul(lo, ones), divided by C in
  // fp32 one partial per section (divide_by_c needs four slots), through `partial`.
  cb_wait_front(cbs.lo, n);
  cb_reserve_back(cbs.partial, n);
  mm_init_short(cbs.hi, cbs.ones);
  for (uint32_t i = 0; i < n; ++i) {
    tile_regs_acquire();
    matmul_tiles(cbs.hi, cbs.ones, i, 0, 0);
    matmul_tiles(cbs.lo, cbs.ones, i, 0, 0);
    divide_by_c(k);
    tile_regs_commit();
    tile_regs_wait();
    pack_tile(0, cbs.partial, i);
    tile_regs_release();
  }
  cb_pop_front(cbs.hi, n);
  cb_pop_front(cbs.lo, n);
  cb_push_back(cbs.partial, n);
  cb_wait_front(cbs.partial, n);
  tile_regs_acquire();
  for (uint32_t i = 0; i < n; ++i) copy_tile(cbs.partial, i, i);
  cb_pop_front(cbs.partial, n);
}

void fill_tile_op_info(TileOpInfo* info, const LayerNormTilePlan& plan, uint32_t cores,
                       uint64_t floor_bytes, const Device& device) {
  if (info == nullptr) return;
  info->path = plan.fit ? "fit" : plan.stream ? "streamed" : "block";
  info->cores = cores;
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

Status OpProgram::ready() {
  TN_RETURN_IF_ERROR(program().status());
  if (cached_ == nullptr) cached_ = &device_.program_cache().insert(key_, std::move(built_));
  return {};
}

uint64_t tile_program_key(const char* op, int64_t rows, int64_t C, DataFormat format,
                          const LayerNormTilePlan& plan, const DeviceConfig& device) {
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

}  // namespace tilenorm::tile
