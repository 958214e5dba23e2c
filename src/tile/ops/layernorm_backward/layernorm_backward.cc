#include "tile/ops/layernorm_backward/layernorm_backward.h"

#include <fmt/format.h>

#include <algorithm>

#include "tile/ops/layernorm_backward/cbs.h"
#include "tile/ops/layernorm_backward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_backward_cb;

namespace {

// stream: one dense gamma page, re-read per span and tile-row, and no dgamma/dbeta carry across
// tile-rows (each tile-row writes its own partial spans).
std::vector<CbDesc> backward_cbs(const TilePlan& p, DataFormat e) {
  const DataFormat f32 = DataFormat::Float32, b16 = DataFormat::Float16_b;
  const uint32_t block = p.block, spans = p.spans, row = p.fit ? p.wt : 2 * block;
  std::vector<CbDesc> cbs = {
      {cb::kX, e, row, "x"},
      {cb::kDy, e, row, "dy"},
      {cb::kGammaDense, e, p.stream ? 1 : spans, "gamma_dense"},
      {cb::kGamma, e, 2 * block, "gamma"},
      {cb::kMean, f32, 2, "mean"},
      {cb::kRstd, f32, 2, "rstd"},
      {cb::kOnes, b16, 1, "ones"},
      {cb::kSelect, b16, kTileDim, "row_select"},
      {cb::kPartial, f32, 2, "partial"},
      {cb::kHi, b16, 2, "partial_hi"},
      {cb::kLo, f32, 2, "partial_lo"},
      {cb::kRowStats, f32, 2, "s1_s2"},
      {cb::kProduct, f32, block, "dy_xhat"},
      {cb::kProductHi, b16, block, "dy_xhat_hi"},
      {cb::kProductLo, f32, block, "dy_xhat_lo"},
      {cb::kDyHi, b16, block, "dy_hi"},
      {cb::kDyLo, f32, block, "dy_lo"},
      {cb::kAccSpan, f32, 2, "dgamma_dbeta_span"},
      {cb::kAccOut, f32, 2, "dgamma_dbeta_out"},
      {cb::kDx, e, 2 * block, "dx"},
  };
  if (!p.stream) cbs.push_back({cb::kAccCarry, f32, 2 * spans, "dgamma_dbeta_carry"});
  if (p.mask_w != 0) cbs.push_back({cb::kMask, b16, 1, "mask"});
  return cbs;
}

}  // namespace

Status layernorm_backward_validate(const LayerNormBackwardTensors& t) {
  const int64_t rows = t.x.rows, C = t.C;
  const DataFormat e = t.x.buffer.format;
  const int64_t pr = round_up_tile(rows), pc = round_up_tile(C);
  TN_RETURN_IF_ERROR(check_device_tensor("x", t.x, rows, C, pr, pc, e));
  TN_RETURN_IF_ERROR(check_device_tensor("dy", t.dy, rows, C, pr, pc, e));
  const int64_t dense = int64_t((tiles_along(C) + kSpanTiles - 1) / kSpanTiles) * kTileDim;
  TN_RETURN_IF_ERROR(
      check_device_tensor("gamma (dense)", t.gamma, dense, kTileDim, dense, kTileDim, e));
  TN_RETURN_IF_ERROR(
      check_device_tensor("mean", t.mean, rows, 1, pr, kTileDim, DataFormat::Float32));
  TN_RETURN_IF_ERROR(
      check_device_tensor("rstd", t.rstd, rows, 1, pr, kTileDim, DataFormat::Float32));
  return {};
}

LayerNormBackwardDeviceOutputs layernorm_backward_output_specs(const LayerNormBackwardTensors& t,
                                                               uint32_t slots) {
  const int64_t part_rows = int64_t(slots) * t.gamma.rows;
  return {device_tensor_spec(t.x.rows, t.C, t.x.buffer.format),
          device_tensor_spec(part_rows, kTileDim, DataFormat::Float32),
          device_tensor_spec(part_rows, kTileDim, DataFormat::Float32)};
}

LayerNormBackwardPlan layernorm_backward_plan(int64_t rows, int64_t C, DataFormat format,
                                              const DeviceConfig& device,
                                              const std::string& force_path) {
  return tile_plan(rows, C, device, force_path,
                   [&](const TilePlan& p) { return backward_cbs(p, format); });
}

Status layernorm_backward_tile(const LayerNormBackwardArgs& args,
                               const LayerNormBackwardOutputs& out, const TileOpConfig& config,
                               TileOpInfo* info) {
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const DataFormat e = tile_format(args.x.dtype);
  OpDevice op_device(config);
  Device& device = op_device.get();
  const LayerNormBackwardPlan plan =
      layernorm_backward_plan(rows, C, e, device.config(), config.force_path);

  // Host tensors -> tiles (padding explicit) -> device buffers.
  LayerNormBackwardTensors t;
  t.C = C;
  const float pad = config.column_pad;
  TN_RETURN_IF_ERROR(upload_matrix(device, args.x, rows, C, e, pad, &t.x));
  TN_RETURN_IF_ERROR(upload_matrix(device, args.dy, rows, C, e, pad, &t.dy));
  TN_RETURN_IF_ERROR(upload_dense(device, args.gamma, C, e, pad, &t.gamma));
  TN_RETURN_IF_ERROR(upload_stats(device, args.mean, rows, &t.mean));
  TN_RETURN_IF_ERROR(upload_stats(device, args.rstd, rows, &t.rstd));
  TN_RETURN_IF_ERROR(layernorm_backward_validate(t));
  LayerNormBackwardDeviceOutputs o = layernorm_backward_output_specs(t, plan.slots);
  TN_RETURN_IF_ERROR(allocate(device, &o.dx));
  TN_RETURN_IF_ERROR(allocate(device, &o.dgamma_partials));
  TN_RETURN_IF_ERROR(allocate(device, &o.dbeta_partials));

  const RowMeanConstants mean_constants = row_mean_constants(C);
  auto args_of = [&](uint32_t i, uint32_t first, uint32_t count) {
    const TileRows rows = tile_rows(plan, first, count);
    return CoreArgs<LayerNormBackwardReaderArgs, LayerNormBackwardComputeArgs,
                    LayerNormBackwardWriterArgs>{
        .reader = {.rows = rows,
                   .x_addr = t.x.buffer.address,
                   .dy_addr = t.dy.buffer.address,
                   .gamma_addr = t.gamma.buffer.address,
                   .mean_addr = t.mean.buffer.address,
                   .rstd_addr = t.rstd.buffer.address},
        .compute = {.rows = rows, .mean = mean_constants},
        .writer = {.rows = rows,
                   .dx_addr = o.dx.buffer.address,
                   .dgamma_addr = o.dgamma_partials.buffer.address,
                   .dbeta_addr = o.dbeta_partials.buffer.address,
                   .first_span_page = i * plan.spans}};
  };
  const OpKernels kernels{"layernorm_backward", &layernorm_backward_reader,
                          &layernorm_backward_compute, &layernorm_backward_writer};
  TN_RETURN_IF_ERROR(run_program(
      device, tile_program_key("layernorm_backward", rows, C, e, plan, device.config()), plan,
      backward_cbs(plan, e), kernels, args_of,
      uint64_t(3) * uint64_t(rows) * uint64_t(C) * datum_size(e), {{&o.dx, out.dx}}, info));

  // Combine the dgamma/dbeta partials (per core, or per tile-row when streamed) in order.
  const int64_t part_rows = o.dgamma_partials.rows;
  std::vector<float> g(size_t(part_rows * kTileDim)), b(g.size());
  TN_RETURN_IF_ERROR(device.read_tiles(o.dgamma_partials.buffer, part_rows, kTileDim, g.data()));
  TN_RETURN_IF_ERROR(device.read_tiles(o.dbeta_partials.buffer, part_rows, kTileDim, b.data()));
  const size_t stride = size_t(plan.spans) * kTileElems;
  float* dgamma = out.dgamma.as<float>();
  float* dbeta = out.dbeta.as<float>();
  for (int64_t i = 0; i < C; ++i) {
    double sg = 0, sb = 0;
    for (uint32_t k = 0; k < plan.slots; ++k) {
      sg += g[k * stride + size_t(i)];
      sb += b[k * stride + size_t(i)];
    }
    dgamma[i] = float(sg);
    dbeta[i] = float(sb);
  }
  return {};
}

}  // namespace tilenorm::tile
