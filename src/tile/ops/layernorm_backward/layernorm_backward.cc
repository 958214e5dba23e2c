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
std::vector<CbDesc> backward_cbs(const LayerNormTilePlan& p, DataFormat e) {
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
  return layernorm_tile_plan(rows, C, device, force_path,
                             [&](const LayerNormTilePlan& p) { return backward_cbs(p, format); });
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
  const uint32_t num_cores = plan.split.num_cores;

  // Host tensors -> tiles (padding explicit) -> device buffers.
  LayerNormBackwardTensors t;
  t.C = C;
  t.x = device_tensor_spec(rows, C, e);
  t.dy = device_tensor_spec(rows, C, e);
  t.gamma = device_tensor_spec(int64_t(plan.spans) * kTileDim, kTileDim, e);
  t.mean = device_tensor_spec(rows, 1, DataFormat::Float32);
  t.rstd = device_tensor_spec(rows, 1, DataFormat::Float32);
  const auto x_tiles = pad_matrix(args.x, rows, C, config.column_pad);
  const auto dy_tiles = pad_matrix(args.dy, rows, C, config.column_pad);
  const auto gamma_tiles = dense_vector(args.gamma, C, config.column_pad);
  const auto mean_tiles = replicated_stats(args.mean, rows);
  const auto rstd_tiles = replicated_stats(args.rstd, rows);
  TN_RETURN_IF_ERROR(allocate(device, &t.x, &x_tiles));
  TN_RETURN_IF_ERROR(allocate(device, &t.dy, &dy_tiles));
  TN_RETURN_IF_ERROR(allocate(device, &t.gamma, &gamma_tiles));
  TN_RETURN_IF_ERROR(allocate(device, &t.mean, &mean_tiles));
  TN_RETURN_IF_ERROR(allocate(device, &t.rstd, &rstd_tiles));
  TN_RETURN_IF_ERROR(layernorm_backward_validate(t));
  LayerNormBackwardDeviceOutputs o = layernorm_backward_output_specs(t, plan.slots);
  TN_RETURN_IF_ERROR(allocate(device, &o.dx));
  TN_RETURN_IF_ERROR(allocate(device, &o.dgamma_partials));
  TN_RETURN_IF_ERROR(allocate(device, &o.dbeta_partials));
  const Buffer &dx = o.dx.buffer, &dgamma_parts = o.dgamma_partials.buffer,
               &dbeta_parts = o.dbeta_partials.buffer;

  // Program: CBs on every core, the three kernels on each used core.
  OpProgram cached(device,
                   tile_program_key("layernorm_backward", rows, C, e, plan, device.config()));
  Program& program = cached.program();
  const CoreRange grid({0, 0}, {device.config().grid_x - 1, device.config().grid_y - 1});
  if (!cached.hit()) TN_RETURN_IF_ERROR(create_cbs(program, grid, backward_cbs(plan, e)));
  const RowMeanConstants mean_constants = row_mean_constants(C);
  for (uint32_t i = 0; i < num_cores; ++i) {
    const CoreCoord core = plan.split.cores[i];
    const uint32_t start = plan.split.first_work_of(i), n = plan.split.work_of(i);
    const KernelHandle reader = cached.create_kernel(
        KernelKind::kReader, core, &layernorm_backward_reader, "layernorm_backward_reader");
    const KernelHandle compute =
        cached.create_kernel(KernelKind::kCompute, core, &layernorm_backward_compute,
                             "layernorm_backward_compute", kLayerNormComputeConfig);
    const KernelHandle writer = cached.create_kernel(
        KernelKind::kWriter, core, &layernorm_backward_writer, "layernorm_backward_writer");
    program.set_runtime_args(
        reader, core,
        LayerNormBackwardReaderArgs{t.x.buffer.address, t.dy.buffer.address, t.gamma.buffer.address,
                                    t.mean.buffer.address, t.rstd.buffer.address, start, n, plan.wt,
                                    plan.block, plan.mask_w, plan.fit ? 1u : 0u, plan.spans,
                                    plan.stream ? 1u : 0u});
    program.set_runtime_args(
        compute, core,
        LayerNormBackwardComputeArgs{n, plan.wt, plan.block, plan.mask_w, plan.fit ? 1u : 0u,
                                     mean_constants, plan.stream ? 1u : 0u});
    program.set_runtime_args(
        writer, core,
        LayerNormBackwardWriterArgs{dx.address, dgamma_parts.address, dbeta_parts.address, start, n,
                                    plan.wt, plan.block, i * plan.spans, plan.spans,
                                    plan.stream ? 1u : 0u});
  }
  TN_RETURN_IF_ERROR(cached.ready());

  const Status run = device.run(program);
  fill_tile_op_info(info, plan, num_cores,
                    uint64_t(3) * uint64_t(rows) * uint64_t(C) * datum_size(e), device);
  if (info != nullptr) info->program_cache_hit = cached.hit();
  TN_RETURN_IF_ERROR(run);

  // Untilize dx; combine the dgamma/dbeta partials (per core, or per tile-row when streamed) in
  // order.
  std::vector<float> values(size_t(rows * C));
  TN_RETURN_IF_ERROR(device.read_tiles(dx, rows, C, values.data()));
  store_values(values.data(), out.dx);
  const int64_t part_rows = o.dgamma_partials.rows;
  std::vector<float> g(size_t(part_rows * kTileDim)), b(g.size());
  TN_RETURN_IF_ERROR(device.read_tiles(dgamma_parts, part_rows, kTileDim, g.data()));
  TN_RETURN_IF_ERROR(device.read_tiles(dbeta_parts, part_rows, kTileDim, b.data()));
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
