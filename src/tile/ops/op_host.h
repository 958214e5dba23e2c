// The host half every tile op shares: run settings and report, device tensors and host-side
// tilizing with explicit padding, the path plan from CB bytes, the device and its program cache,
// and run_program (kernels and args on each core, run, read-back).
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tile/machine/device.h"
#include "tile/ops/op_args.h"
#include "tilenorm/norm.h"

namespace tilenorm::tile {

// Settings of a tile-op run that are not part of the math.
struct TileOpConfig {
  DeviceConfig device;
  // Value of the padded columns of x and dy (C % 32 != 0). NaN by default: a row sum that forgets
  // the last-tile mask turns NaN instead of silently wrong. Padded rows are always 0.
  float column_pad = std::numeric_limits<float>::quiet_NaN();
  // "fit" or "block" overrides the L1 rule (tests: a C too small for any L1 to pick the block
  // path); empty: the rule decides.
  std::string force_path;
  // Run on this device instead of a fresh one of `device`: its program cache is reused across
  // calls (a second call with the same attributes only rewrites the runtime args) and the op
  // frees its buffers when it returns. Not owned.
  Device* on_device = nullptr;
};

// What a run did: the path, the work split and the machine's counters and findings.
struct TileOpInfo {
  std::string path;  // "fit", "block" or "streamed" (the block path streaming dense vectors)
  uint32_t cores = 0;
  bool program_cache_hit = false;  // the program came from the device's program cache
  uint32_t tile_rows = 0;          // Ht = ceil(rows / 32)
  uint32_t wt = 0;                 // tiles per tile-row = ceil(C / 32)
  uint32_t block = 0;              // tiles per block
  uint32_t l1_bytes = 0;           // CB bytes per core
  uint64_t floor_bytes = 0;        // forward: read x + write y; backward: read x, dy + write dx
  Counters counters;
  std::vector<SanitizerReport> reports;
  double traffic_ratio() const {
    return floor_bytes == 0 ? 0.0
                            : double(counters.dram_bytes_read + counters.dram_bytes_written) /
                                  double(floor_bytes);
  }
};

// Fills the public RunReport from a run.
void fill_run_report(const TileOpInfo& info, RunReport* report);

// Default settings of the `tile` backend.
TileOpConfig default_tile_op_config(const NormOptions& options);

// ---- Device tensors.
// A tensor on the device: a buffer of tiles covering a logical rows x cols matrix padded to
// padded_rows x padded_cols (multiples of 32).
struct DeviceTensor {
  Buffer buffer;
  int64_t rows = 0, cols = 0;
  int64_t padded_rows = 0, padded_cols = 0;
};
int64_t round_up_tile(int64_t n);  // n rounded up to a multiple of 32
// The devices operations' check of one tensor: logical shape, canonical 32x32 padding, format,
// pages. The message names the tensor, the expected and the actual value.
Status check_device_tensor(const char* name, const DeviceTensor& t, int64_t rows, int64_t cols,
                           int64_t padded_rows, int64_t padded_cols, DataFormat format);
// A DeviceTensor spec (no buffer yet) of a rows x cols matrix, padded to whole tiles.
DeviceTensor device_tensor_spec(int64_t rows, int64_t cols, DataFormat format);
// Creates the buffer of `t` (its padded size); writes `padded` (padded_rows x padded_cols,
// row-major) into it when given.
Status allocate(Device& device, DeviceTensor* t, const std::vector<float>* padded = nullptr);

DataFormat tile_format(DType dtype);  // bf16 -> Float16_b, f32 -> Float32

// Host helpers. A [rows, C] view as a [Ht*32, Wt*32] row-major matrix: rows >= `rows` are 0,
// columns >= C of the real rows are `column_pad`.
std::vector<float> pad_matrix(const ConstTensorView& t, int64_t rows, int64_t C, float column_pad);
// A length-C vector stored densely: tile q, row i holds elements [32 (32q + i), +32). Returns
// the [32 * ceil(Wt / 32), 32] row-major matrix (tail padded with `pad`).
std::vector<float> dense_vector(const ConstTensorView& v, int64_t C, float pad);
// Per-row statistics replicated over the 32 columns of their tile: [Ht*32, 32], padded rows 0.
std::vector<float> replicated_stats(const ConstTensorView& s, int64_t rows);
// Stores float values into a view of dtype f32 or bf16 (round to nearest even).
void store_values(const float* values, const TensorView& out);

// Uploads: a [rows, C] view as tiles of `format` (pad_matrix); a length-C vector stored densely
// (dense_vector; an empty view uploads zeros); per-row statistics as fp32 (replicated_stats).
Status upload_matrix(Device& device, const ConstTensorView& v, int64_t rows, int64_t C,
                     DataFormat format, float column_pad, DeviceTensor* t);
Status upload_dense(Device& device, const ConstTensorView& v, int64_t C, DataFormat format,
                    float column_pad, DeviceTensor* t);
Status upload_stats(Device& device, const ConstTensorView& s, int64_t rows, DeviceTensor* t);

// ---- Program factory: CBs and the path rule.
struct CbDesc {
  uint32_t id;
  DataFormat format;
  uint32_t pages;
  const char* name;
};
uint64_t cb_bytes(const std::vector<CbDesc>& cbs);  // per core
// Creates every CB on every core of `grid`.
Status create_cbs(Program& program, const CoreRange& grid, const std::vector<CbDesc>& cbs);

// A tile op's plan: the path and the sizes.
struct TilePlan {
  bool fit = false;
  // Block path whose resident dense gamma/beta (and the backward's dgamma/dbeta carry across
  // tile-rows) would not fit: one dense page per vector, re-read per span and tile-row, and one
  // dgamma/dbeta partial per tile-row in DRAM, so the per-core L1 does not grow with C.
  bool stream = false;
  uint32_t ht = 0, wt = 0, block = kBlockTiles, mask_w = 0, spans = 0;
  uint32_t l1_bytes = 0;  // CB bytes per core of the chosen path
  uint32_t slots = 0;     // backward dgamma/dbeta partials: cores, or tile-rows when streamed
  WorkSplit split;
};
// The rule: fit if the fit path's CBs fit in l1_size - l1_allocator_base, else block, streamed
// if the resident block path's CBs do not fit. `cbs` lists the op's CBs for a plan's geometry,
// fit and stream. force_path: "fit" or "block" overrides the fit rule
// (TileOpConfig::force_path).
// A core's TileRows: tile-rows [first, first + count) cut as the plan says.
TileRows tile_rows(const TilePlan& plan, uint32_t first, uint32_t count);
using CbList = std::function<std::vector<CbDesc>(const TilePlan&)>;
TilePlan tile_plan(int64_t rows, int64_t C, const DeviceConfig& device,
                   const std::string& force_path, const CbList& cbs);
// The program-cache key of a tile op: the op, shape, format, plan and device geometry.
uint64_t tile_program_key(const char* op, int64_t rows, int64_t C, DataFormat format,
                          const TilePlan& plan, const DeviceConfig& device);

// The device a tile op runs on: TileOpConfig::on_device (whose buffers created during the op are
// freed when this goes out of scope), else a fresh device of TileOpConfig::device.
class OpDevice {
 public:
  explicit OpDevice(const TileOpConfig& config);
  ~OpDevice();
  OpDevice(const OpDevice&) = delete;
  OpDevice& operator=(const OpDevice&) = delete;
  Device& get() { return *device_; }

 private:
  std::unique_ptr<Device> own_;
  Device* device_ = nullptr;
  uint64_t mark_ = 0;
};

// An op's program through the device's program cache (key: what the CBs and kernels depend on;
// the runtime args are always rewritten). On a miss create_kernel creates each kernel; on a hit
// it returns the handles of the cached program in the same order, so the op's loop that creates
// kernels and sets their args is the same on both. Only a call that succeeded() keeps its
// program: a new program goes into the cache then, and a cached one whose call failed (a builder
// error, a failed run) leaves the cache when this goes out of scope, so a failure is never served
// again.
class OpProgram {
 public:
  OpProgram(Device& device, uint64_t key);
  ~OpProgram();
  OpProgram(const OpProgram&) = delete;
  OpProgram& operator=(const OpProgram&) = delete;
  bool hit() const { return hit_; }
  Program& program() { return *entry().program; }
  // fn: a kernel function of typed args, or an argument-less one (a JIT-compiled kernel that
  // reads its runtime arg words), as Program::create_kernel takes.
  template <typename Fn>
  KernelHandle create_kernel(KernelKind kind, const CoreRange& cores, Fn fn, std::string name,
                             ComputeConfig config = {}) {
    if (hit_) {
      // More kernels than the cached program holds: its key missed an attribute.
      if (next_ >= cached_->kernels.size()) {
        mismatch_ = true;
        return {};
      }
      return cached_->kernels[next_++];
    }
    const KernelHandle k = program().create_kernel(kind, cores, fn, std::move(name), config);
    built_.kernels.push_back(k);
    return k;
  }
  Status ready();    // the program's builder status (Internal for a cached program that differs)
  void succeeded();  // the call succeeded: a new program goes into the cache

 private:
  CachedProgram& entry() { return cached_ != nullptr ? *cached_ : built_; }
  Device& device_;
  uint64_t key_;
  CachedProgram* cached_ = nullptr;
  bool hit_ = false;
  bool kept_ = false;
  bool mismatch_ = false;
  CachedProgram built_;
  size_t next_ = 0;
};

// The key run_program caches under: the op's key with what the program is built from added —
// the CBs, the kernel functions (the variant), the cores the kernels run on and the device
// geometry — so that a program is never served to a call that would build another one, even
// when the op's key misses an attribute.
uint64_t op_program_key(uint64_t op_key, const TilePlan& plan, const std::vector<CbDesc>& cbs,
                        std::initializer_list<void (*)()> kernels, const DeviceConfig& device);

// ---- Running a program.
// An op's three kernels; they are named <name>_reader, <name>_compute and <name>_writer.
template <typename ReaderArgs, typename ComputeArgs, typename WriterArgs>
struct OpKernels {
  const char* name;
  void (*reader)(const ReaderArgs&);
  void (*compute)(const ComputeArgs&);
  void (*writer)(const WriterArgs&);
};
// One core's runtime args.
template <typename ReaderArgs, typename ComputeArgs, typename WriterArgs>
struct CoreArgs {
  ReaderArgs reader;
  ComputeArgs compute;
  WriterArgs writer;
};
// f.template operator()<norm, residual>(): the run-time norm and whether the residual add is fused
// (forward: the residual; backward: its gradient dh_in) as compile-time constants (the ops pick
// their kernel variant with it).
template <typename F>
auto with_variant(Norm norm, bool residual, F&& f) {
  auto with_norm = [&]<Norm kNorm>() {
    return residual ? f.template operator()<kNorm, true>() : f.template operator()<kNorm, false>();
  };
  switch (norm) {
    case Norm::kRmsNorm:
      return with_norm.template operator()<Norm::kRmsNorm>();
    case Norm::kLayerNorm:
      break;
  }
  return with_norm.template operator()<Norm::kLayerNorm>();
}
// An op's kernel name from its variant: "<norm>[_<residual>]_<direction>", e.g. "rmsnorm_forward",
// "layernorm_residual_forward", "rmsnorm_dh_in_backward" (residual: the fused tensor's name, or
// null without one). Also the program-cache key's op.
std::string variant_kernel_name(Norm norm, const char* residual, const char* direction);
// A device tensor untilized into a host view (its logical rows x cols) after the run.
struct ReadBack {
  const DeviceTensor* tensor;
  TensorView out;
};

// Fills *info (when not null) from a finished run: the plan's path and sizes, the machine's
// counters and findings, and `floor_bytes` (the op's minimal DRAM traffic).
void fill_tile_op_info(TileOpInfo* info, const TilePlan& plan, uint64_t floor_bytes,
                       const Device& device);
// run_program's tail: runs `program`, fills *info, untilizes `outputs` when the run succeeded.
Status run_and_read_back(Device& device, Program& program, bool cache_hit, const TilePlan& plan,
                         uint64_t floor_bytes, const std::vector<ReadBack>& outputs,
                         TileOpInfo* info);

// The program of an op (from the device's cache under `key`, or built: `cbs` on every core of
// the grid, the three kernels on each core of the plan's split), each core's args from
// args_of(core index, first tile-row, tile-rows), then the run, *info (the op's floor_bytes)
// and the read-back of `outputs`.
template <typename R, typename C, typename W, typename ArgsOf>
Status run_program(Device& device, uint64_t key, const TilePlan& plan,
                   const std::vector<CbDesc>& cbs, const OpKernels<R, C, W>& kernels,
                   ArgsOf&& args_of, uint64_t floor_bytes, const std::vector<ReadBack>& outputs,
                   TileOpInfo* info) {
  const auto fn = [](auto* f) { return reinterpret_cast<void (*)()>(f); };
  OpProgram cached(
      device,
      op_program_key(key, plan, cbs, {fn(kernels.reader), fn(kernels.compute), fn(kernels.writer)},
                     device.config()));
  Program& program = cached.program();
  const DeviceConfig& d = device.config();
  if (!cached.hit())
    TN_RETURN_IF_ERROR(create_cbs(program, CoreRange({0, 0}, {d.grid_x - 1, d.grid_y - 1}), cbs));
  const std::string name = kernels.name;
  for (uint32_t i = 0; i < plan.split.num_cores; ++i) {
    const CoreCoord core = plan.split.cores[i];
    const CoreArgs<R, C, W> args = args_of(i, plan.split.first_work_of(i), plan.split.work_of(i));
    const KernelHandle reader =
        cached.create_kernel(KernelKind::kReader, core, kernels.reader, name + "_reader");
    const KernelHandle compute = cached.create_kernel(KernelKind::kCompute, core, kernels.compute,
                                                      name + "_compute", kTileOpComputeConfig);
    const KernelHandle writer =
        cached.create_kernel(KernelKind::kWriter, core, kernels.writer, name + "_writer");
    program.set_runtime_args(reader, core, args.reader);
    program.set_runtime_args(compute, core, args.compute);
    program.set_runtime_args(writer, core, args.writer);
  }
  TN_RETURN_IF_ERROR(cached.ready());
  Status run = run_and_read_back(device, program, cached.hit(), plan, floor_bytes, outputs, info);
  if (run.ok()) cached.succeeded();
  return run;
}

}  // namespace tilenorm::tile
