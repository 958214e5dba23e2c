#include "tile/ops/layernorm_forward/layernorm_forward.h"

#include <vector>

#include "tile/ops/layernorm_forward/cbs.h"
#include "tile/ops/layernorm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_forward_cb;

namespace {

// stream: the dense gamma/beta windows hold one span page, re-read per span and tile-row.
std::vector<CbDesc> forward_cbs(const TilePlan& p, DataFormat e) {
  const DataFormat f32 = DataFormat::Float32, b16 = DataFormat::Float16_b;
  const uint32_t block = p.block, dense = p.stream ? 1 : p.spans;
  std::vector<CbDesc> cbs = {
      {cb::kX, e, p.fit ? p.wt : 2 * block, "x"},
      {cb::kGammaDense, e, dense, "gamma_dense"},
      {cb::kBetaDense, e, dense, "beta_dense"},
      {cb::kGamma, e, 2 * block, "gamma"},
      {cb::kBeta, e, 2 * block, "beta"},
      {cb::kOnes, b16, 1, "ones"},
      {cb::kPartial, f32, 1, "partial"},
      {cb::kHi, b16, 1, "partial_hi"},
      {cb::kLo, f32, 1, "partial_lo"},
      {cb::kMeanRow, f32, 1, "mean"},
      {cb::kRstdRow, f32, 1, "rstd"},
      {cb::kStatsOut, f32, 2, "stats_out"},
      {cb::kY, e, 2 * block, "y"},
  };
  if (p.mask_w != 0) cbs.push_back({cb::kMask, b16, 1, "mask"});
  return cbs;
}

}  // namespace

Status layernorm_forward_validate(const LayerNormForwardTensors& t) {
  const int64_t rows = t.x.rows, C = t.C;
  const DataFormat e = t.x.buffer.format;
  TN_RETURN_IF_ERROR(
      check_device_tensor("x", t.x, rows, C, round_up_tile(rows), round_up_tile(C), e));
  const int64_t dense = int64_t((tiles_along(C) + kSpanTiles - 1) / kSpanTiles) * kTileDim;
  TN_RETURN_IF_ERROR(
      check_device_tensor("gamma (dense)", t.gamma, dense, kTileDim, dense, kTileDim, e));
  TN_RETURN_IF_ERROR(
      check_device_tensor("beta (dense)", t.beta, dense, kTileDim, dense, kTileDim, e));
  return {};
}

LayerNormForwardDeviceOutputs layernorm_forward_output_specs(const LayerNormForwardTensors& t) {
  return {device_tensor_spec(t.x.rows, t.C, t.x.buffer.format),
          device_tensor_spec(t.x.rows, 1, DataFormat::Float32),
          device_tensor_spec(t.x.rows, 1, DataFormat::Float32)};
}

LayerNormForwardPlan layernorm_forward_plan(int64_t rows, int64_t C, DataFormat format,
                                            const DeviceConfig& device,
                                            const std::string& force_path) {
  return tile_plan(rows, C, device, force_path,
                   [&](const TilePlan& p) { return forward_cbs(p, format); });
}

Status layernorm_forward_tile(const LayerNormForwardArgs& args, const LayerNormForwardOutputs& out,
                              const TileOpConfig& config, TileOpInfo* info) {
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const DataFormat e = tile_format(args.x.dtype);
  OpDevice op_device(config);
  Device& device = op_device.get();
  const LayerNormForwardPlan plan =
      layernorm_forward_plan(rows, C, e, device.config(), config.force_path);

  LayerNormForwardTensors t;
  t.C = C;
  const float pad = config.column_pad;
  TN_RETURN_IF_ERROR(upload_matrix(device, args.x, rows, C, e, pad, &t.x));
  TN_RETURN_IF_ERROR(upload_dense(device, args.gamma, C, e, pad, &t.gamma));
  TN_RETURN_IF_ERROR(upload_dense(device, args.beta, C, e, pad, &t.beta));
  TN_RETURN_IF_ERROR(layernorm_forward_validate(t));
  LayerNormForwardDeviceOutputs o = layernorm_forward_output_specs(t);
  TN_RETURN_IF_ERROR(allocate(device, &o.y));
  TN_RETURN_IF_ERROR(allocate(device, &o.mean));
  TN_RETURN_IF_ERROR(allocate(device, &o.rstd));

  const RowMeanConstants mean_constants = row_mean_constants(C);
  const uint32_t eps_bits = float_bits(float(args.eps));
  auto args_of = [&](uint32_t, uint32_t first, uint32_t count) {
    const TileRows rows = tile_rows(plan, first, count);
    return CoreArgs<LayerNormForwardReaderArgs, LayerNormForwardComputeArgs,
                    LayerNormForwardWriterArgs>{
        .reader = {.rows = rows,
                   .x_addr = t.x.buffer.address,
                   .gamma_addr = t.gamma.buffer.address,
                   .beta_addr = t.beta.buffer.address},
        .compute = {.rows = rows, .mean = mean_constants, .eps_bits = eps_bits},
        .writer = {.rows = rows,
                   .y_addr = o.y.buffer.address,
                   .mean_addr = o.mean.buffer.address,
                   .rstd_addr = o.rstd.buffer.address}};
  };
  const OpKernels kernels{"layernorm_forward", &layernorm_forward_reader,
                          &layernorm_forward_compute, &layernorm_forward_writer};
  return run_program(device,
                     tile_program_key("layernorm_forward", rows, C, e, plan, device.config()), plan,
                     forward_cbs(plan, e), kernels, args_of,
                     uint64_t(2) * uint64_t(rows) * uint64_t(C) * datum_size(e),
                     {{&o.y, out.y}, {&o.mean, out.mean}, {&o.rstd, out.rstd}}, info);
}

}  // namespace tilenorm::tile
