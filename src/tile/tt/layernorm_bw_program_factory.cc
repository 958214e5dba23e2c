// tt-train's layernorm_bw program factory, ported onto the tt-metal style host API. The CB
// indices, page counts, arg orders and rules are upstream's; the code is tilenorm's.

#include "tile/tt/layernorm_bw_program_factory.h"

#include <fmt/format.h>

#include <filesystem>
#include <limits>
#include <map>
#include <utility>

#include "tile/tt/host_internal.h"
#include "tile/tt/norm_family.h"
#include "tile/tt/program_utils.h"

namespace tilenorm::tt {

namespace {

constexpr uint32_t kTile = 32;
constexpr uint32_t kBlockSize = 3;  // upstream: one extra dst register per tile for the math

// CB indices (tt::CBIndex::c_N).
enum : uint8_t {
  kScalerCb = 0,     // 1/C, a bf16 tile
  kMaskWCb = 1,      // mask of the last tile's valid columns
  kGammaCb = 2,      //
  kXHatCb = 3,       // (x - mean) · rstd
  kRstdCb = 4,       //
  kDLoutCb = 5,      // dy
  kInputCb = 6,      // x
  kMeanCb = 7,       //
  kMeanBcastCb = 8,  // mean broadcast over the row's columns
  kDxCb = 9,         //
  kDgammaComponentsCb = 10,
  kDbetaComponentsCb = 11,
  kRstdBcastCb = 12,              // rstd broadcast over the row's columns
  kScaledDyGammaSumCb = 13,       // s1 = (1/C) Σ dy·γ, fp32
  kScaledDyGammaXnormSumCb = 14,  // s2 = (1/C) Σ dy·γ·x̂, fp32
};

// Upstream's fits_in_l1_check: every CB of the fit path against L1 above the allocator base.
bool fits_in_l1(const Device& device, uint32_t wt, uint32_t wt_blocks) {
  const uint64_t bf16 = tile_size(DataFormat::Float16_b), fp32 = tile_size(DataFormat::Float32);
  const uint64_t available = device.l1_size_per_core() - device.base_allocator_addr();
  const uint64_t rows = 3ull * wt * bf16;              // gamma, x, dy
  const uint64_t x_hat = uint64_t(wt_blocks) * bf16;   // padded to whole blocks
  const uint64_t singles = 6 * bf16;                   // scaler, mask, mean, rstd, 2 bcasts
  const uint64_t outputs = 3 * 2 * kBlockSize * bf16;  // dx, dgamma, dbeta
  const uint64_t sums = 2 * fp32;                      // s1, s2
  return rows + x_hat + singles + outputs + sums <= available;
}

}  // namespace

Status check_layernorm_bw_kernels(const std::string& root) {
  return check_tt_norm_kernels(root, TtNormOp::kLayerNormBw);
}

Status create_layernorm_bw_program(const Device& device, const LayerNormBwShape& shape,
                                   const LayerNormBwBuffers& b, LayerNormBwProgram* out) {
  if (shape.B == 0 || shape.N == 0 || shape.S == 0 || shape.C == 0)
    return Status::invalid_argument(fmt::format("layernorm_bw: empty shape [{}, {}, {}, {}]",
                                                shape.B, shape.N, shape.S, shape.C));
  const uint64_t padded_s = (uint64_t(shape.S) + kTile - 1) / kTile * kTile;
  const uint64_t tile_rows = padded_s * shape.N * shape.B / kTile;
  if (tile_rows > std::numeric_limits<uint32_t>::max())
    return Status::invalid_argument(
        fmt::format("layernorm_bw: shape [{}, {}, {}, {}] has {} tile rows (at most 2^32 - 1)",
                    shape.B, shape.N, shape.S, shape.C, tile_rows));
  LayerNormBwProgram& r = *out;
  r.program = CreateProgram();
  Program& program = r.program;
  const uint32_t Wt = (shape.C + kTile - 1) / kTile;
  const uint32_t total_rows = uint32_t(tile_rows);
  const uint32_t mask_w = shape.C % kTile;
  const WorkSplit split = split_work_to_cores(device.compute_with_storage_grid_size(), total_rows);
  const uint32_t packed_scaler = pack_two_bfloat16_to_uint32(1.0f / float(shape.C));
  const uint32_t wt_blocks = (Wt + kBlockSize - 1) / kBlockSize * kBlockSize;
  const bool fit = fits_in_l1(device, Wt, wt_blocks);
  r.everything_fits_in_l1 = fit;
  r.Wt = Wt;
  r.mask_w = mask_w;
  r.packed_scaler = packed_scaler;
  r.num_cores = split.num_cores;

  // Circular buffers: rows of Wt tiles on the fit path, two blocks otherwise.
  const uint32_t row_tiles = fit ? Wt : 2 * kBlockSize;
  const uint32_t x_hat_tiles = fit ? wt_blocks : 2 * kBlockSize;
  const CoreRangeSet& cores = split.all_cores;
  const DataFormat bf16 = DataFormat::Float16_b, fp32 = DataFormat::Float32;
  create_cb(program, cores, kScalerCb, bf16, 1);
  create_cb(program, cores, kMaskWCb, bf16, 1);
  create_cb(program, cores, kGammaCb, bf16, row_tiles);
  create_cb(program, cores, kXHatCb, bf16, x_hat_tiles);
  create_cb(program, cores, kRstdCb, bf16, 1);
  create_cb(program, cores, kDLoutCb, bf16, row_tiles);
  create_cb(program, cores, kInputCb, bf16, row_tiles);
  create_cb(program, cores, kMeanCb, bf16, 1);
  create_cb(program, cores, kMeanBcastCb, bf16, 1);
  create_cb(program, cores, kDxCb, bf16, 2 * kBlockSize);
  create_cb(program, cores, kDgammaComponentsCb, bf16, 2 * kBlockSize);
  create_cb(program, cores, kDbetaComponentsCb, bf16, 2 * kBlockSize);
  create_cb(program, cores, kRstdBcastCb, bf16, 1);
  create_cb(program, cores, kScaledDyGammaSumCb, fp32, 1);
  create_cb(program, cores, kScaledDyGammaXnormSumCb, fp32, 1);

  Defines defines;
  if (mask_w != 0) defines["DO_MASK_W"] = "1";
  if (fit) defines["EVERYTHING_FITS_IN_L1"] = "1";

  std::vector<uint32_t> reader_ct{packed_scaler, kBlockSize, mask_w, Wt};
  for (const Buffer* buffer : {b.gamma, b.input, b.mean, b.rstd, b.dL_dout})
    TensorAccessorArgs(buffer).append_to(reader_ct);
  const KernelHandle reader = CreateKernel(program, kLayerNormBwReaderPath, cores,
                                           ReaderDataMovementConfig(reader_ct, defines));
  std::vector<uint32_t> writer_ct{kBlockSize, Wt};
  for (const Buffer* buffer : {b.dx, b.dgamma_components, b.dbeta_components})
    TensorAccessorArgs(buffer).append_to(writer_ct);
  const KernelHandle writer = CreateKernel(program, kLayerNormBwWriterPath, cores,
                                           WriterDataMovementConfig(writer_ct, defines));

  // One compute kernel per core group; its row count is a compile-time arg.
  const std::pair<const CoreRangeSet*, uint32_t> groups[] = {
      {&split.core_group_1, split.units_per_core_group_1},
      {&split.core_group_2, split.units_per_core_group_2}};
  for (const auto& [group, rows] : groups)
    if (!group->empty())
      CreateKernel(program, kLayerNormBwComputePath, *group,
                   ComputeConfig{.math_fidelity = MathFidelity::HiFi4,
                                 .fp32_dest_acc_en = true,
                                 .math_approx_mode = false,
                                 .compile_args = {rows, kBlockSize, mask_w, Wt},
                                 .defines = defines});

  // Runtime args, core i = {i / grid.y, i % grid.y} taking the next rows of its group's count.
  const uint32_t grid_y = device.compute_with_storage_grid_size().y;
  for (uint32_t i = 0, rows_written = 0; i < split.num_cores; ++i) {
    const CoreCoord core{i / grid_y, i % grid_y};
    const uint32_t rows = split.core_group_1.contains(core) ? split.units_per_core_group_1
                                                            : split.units_per_core_group_2;
    SetRuntimeArgs(program, reader, core,
                   {b.gamma->address(), b.input->address(), b.mean->address(), b.rstd->address(),
                    b.dL_dout->address(), rows_written, rows});
    SetRuntimeArgs(program, writer, core,
                   {b.dx->address(), b.dgamma_components->address(), b.dbeta_components->address(),
                    rows_written, rows});
    rows_written += rows;
  }
  return program.status();
}

Status run_layernorm_bw(Device& device, const tile::ReportBackwardInputs& in,
                        tile::ReportBackwardResult* out) {
  TtNormOutputs o;
  Status s = run_tt_norm_op(device, TtNormOp::kLayerNormBw,
                            {.rows = in.rows,
                             .C = in.C,
                             .x = in.x,
                             .dy = in.dy,
                             .gamma = in.gamma,
                             .mean = in.mean,
                             .rstd = in.rstd},
                            &o);
  out->fit = o.plan.everything_fits_in_l1;
  out->program_cache_hit = false;
  out->run = machine(device).last_run();
  out->dx = std::move(o.dx);
  out->dgamma = std::move(o.dgamma);
  out->dbeta = std::move(o.dbeta);
  return s;
}

}  // namespace tilenorm::tt
