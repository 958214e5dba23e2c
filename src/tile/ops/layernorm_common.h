// What the LayerNorm tile ops share: the run settings and report, host-side tilizing with explicit
// padding, the reader's constant tiles, and the compute kernels' exact row sum.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/device.h"
#include "tilenorm/layernorm.h"

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

// Fills the public RunReport from a run.
void fill_run_report(const TileOpInfo& info, RunReport* report);

// Default settings of the `tile` backend.
TileOpConfig default_tile_op_config(const LayerNormOptions& options);

// Tiles per 32-tile span of a dense vector (dgamma/dbeta partials, dense gamma/beta).
inline constexpr uint32_t kSpanTiles = 32;
// Tiles of one dst section: 16 bf16 tiles in full-sync, half that per half-sync section, half
// again with fp32_dest_acc_en.
constexpr uint32_t dst_section_tiles(bool fp32_dest_acc_en, bool dst_full_sync_en) {
  return (dst_full_sync_en ? 16u : 8u) / (fp32_dest_acc_en ? 2u : 1u);
}
// The compute kernels' config in both ops: fp32 dst (sums and products in fp32), half-sync, and
// fp32 CBs unpacked to dst without the TF32 rounding.
inline constexpr ComputeConfig kLayerNormComputeConfig{.fp32_dest_acc_en = true,
                                                       .dst_full_sync_en = false,
                                                       .math_fidelity = MathFidelity::HiFi4,
                                                       .unpack_to_dest_fp32 = true};
// Tiles per block: one dst section of that config (4).
inline constexpr uint32_t kBlockTiles = dst_section_tiles(kLayerNormComputeConfig.fp32_dest_acc_en,
                                                          kLayerNormComputeConfig.dst_full_sync_en);
static_assert(kSpanTiles % kBlockTiles == 0, "a block never straddles two spans");

// ---- Program factory: CBs and the path rule.
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
// kernels and sets their args is the same on both. ready() stores a new program in the cache.
class OpProgram {
 public:
  OpProgram(Device& device, uint64_t key);
  bool hit() const { return hit_; }
  Program& program() { return *entry().program; }
  template <typename Args>
  KernelHandle create_kernel(KernelKind kind, const CoreRange& cores, void (*fn)(const Args&),
                             std::string name, ComputeConfig config = {}) {
    if (hit_) return cached_->kernels[next_++];
    const KernelHandle k = program().create_kernel(kind, cores, fn, std::move(name), config);
    built_.kernels.push_back(k);
    return k;
  }
  Status ready();  // the program's builder status; on a miss, stores it in the cache

 private:
  CachedProgram& entry() { return cached_ != nullptr ? *cached_ : built_; }
  Device& device_;
  uint64_t key_;
  CachedProgram* cached_ = nullptr;
  bool hit_ = false;
  CachedProgram built_;
  size_t next_ = 0;
};

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
struct LayerNormTilePlan {
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
using CbList = std::function<std::vector<CbDesc>(const LayerNormTilePlan&)>;
// The program-cache key of a LayerNorm tile op: the op, shape, format, plan and device geometry.
uint64_t tile_program_key(const char* op, int64_t rows, int64_t C, DataFormat format,
                          const LayerNormTilePlan& plan, const DeviceConfig& device);
LayerNormTilePlan layernorm_tile_plan(int64_t rows, int64_t C, const DeviceConfig& device,
                                      const std::string& force_path, const CbList& cbs);

DataFormat tile_format(DType dtype);  // bf16 -> Float16_b, f32 -> Float32

// Host helpers. A [rows, C] view as a [Ht*32, Wt*32] row-major matrix: rows >= `rows` are 0,
// columns >= C of the real rows are `column_pad`.
std::vector<float> pad_matrix(ConstTensorView t, int64_t rows, int64_t C, float column_pad);
// A length-C vector stored densely: tile q, row i holds elements [32 (32q + i), +32). Returns
// the [32 * ceil(Wt / 32), 32] row-major matrix (tail padded with `pad`).
std::vector<float> dense_vector(ConstTensorView v, int64_t C, float pad);
// Per-row statistics replicated over the 32 columns of their tile: [Ht*32, 32], padded rows 0.
std::vector<float> replicated_stats(ConstTensorView s, int64_t rows);
// Fills *info (when not null) from a finished run: the plan's path and sizes, the machine's
// counters and findings, and `floor_bytes` (the op's minimal DRAM traffic).
void fill_tile_op_info(TileOpInfo* info, const LayerNormTilePlan& plan, uint32_t cores,
                       uint64_t floor_bytes, const Device& device);
// Stores float values into a view of dtype f32 or bf16 (round to nearest even).
void store_values(const float* values, TensorView out);

// ---- Reader side.
// The DRAM address generator of a tile buffer whose pages are those of CB `cb`.
InterleavedAddrGenFast<true> tile_addr_gen(uint32_t addr, uint32_t cb);
// Reserves `pages` (a whole block, so windows never wrap the ring) and reads n <= pages tiles
// from page `first`; the caller barriers and pushes.
void read_tiles_into(uint32_t cb, const InterleavedAddrGenFast<true>& s, uint32_t first, uint32_t n,
                     uint32_t pages);

// Constant tiles (written through l1_ptr into the reserved page).
void fill_page(uint32_t cb, uint32_t page, float value);
// 1.0 in the columns < mask_w of every row, 0 elsewhere.
void fill_mask_page(uint32_t cb, uint32_t page, uint32_t mask_w);
// When mask_w != 0: reserves one page of `cb`, fills it as fill_mask_page and pushes it.
void push_mask_page(uint32_t cb, uint32_t mask_w);
// 32 pages from `page`: page i has row i all 1.0 and every other row 0 (matmul(sel_i, P) puts
// the column sums of P in row i).
void fill_row_selector_pages(uint32_t cb, uint32_t page);
// Page `page` of `out_cb` = row (t % 32) of dense page t / 32 of `dense_cb` (the reader's own
// reserved window), replicated over the 32 rows.
void expand_dense_row(uint32_t dense_cb, uint32_t t, uint32_t out_cb, uint32_t page);

// ---- Compute-side exact row sum and correctly rounded row mean.
// The FPU reads fp32 CB data as TF32, so a sum of fp32 partials P is split as P = hi + lo with
// hi = bf16(P) (the packer's rounding) and lo = P - hi (exact in fp32, TF32 keeps it to 2^-19 of
// P); matmul(hi, ones) + matmul(lo, ones) is then the row sum of P to about fp32 accuracy.
struct RowSumCbs {
  uint32_t partial;  // fp32: the n partials, pushed by the caller
  uint32_t hi;       // bf16: the same n partials, pushed by the caller
  uint32_t lo;       // fp32 scratch, n pages
  uint32_t ones;     // bf16 all-ones tile, waited for by the caller
};
// The fp32 constants (as bits) with which a row sum s becomes s / C; see divide_by_c in
// layernorm_common.cc. split = 0: C has more than 20 significant bits, s * (1/C) only.
struct RowMeanConstants {
  uint32_t inv_c;  // 1/C
  uint32_t c;      // C
  uint32_t split;  // 2^k + 1, k = the significant bits of C
  uint32_t guard;  // 2 max(C, 2^k + 1): a quotient q with q * guard not finite is left as is
};
RowMeanConstants row_mean_constants(int64_t C);
// Pops the n partials, and returns inside an acquired dst section whose slots 0..n-1 hold
// (row sum of partial i) / C in every column, correctly rounded except within 2^-4 ulp of a
// rounding midpoint (so a quotient that is an fp32 value comes out exactly). The caller does
// more math, then commits, packs and releases. A ±Inf partial element gives a ±Inf row sum (not
// Inf - Inf); `partial` is reused for the means.
void row_means(const RowSumCbs& cbs, uint32_t n, const RowMeanConstants& k);
// Slot data = 0 where tile `itile` of `cb` is ±Inf (its hi + lo split would turn NaN there);
// slot data + 1 holds the mask afterwards.
void zero_where_infinite(uint32_t cb, uint32_t itile, uint32_t data);

}  // namespace tilenorm::tile
