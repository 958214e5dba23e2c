#include "tile/ops/layernorm_forward/layernorm_forward.h"

#include <vector>

#include "tile/ops/layernorm_forward/cbs.h"
#include "tile/ops/layernorm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_forward_cb;

namespace {

// stream: the dense gamma/beta windows hold one span page, re-read per span and tile-row.
std::vector<CbDesc> forward_cbs(const LayerNormTilePlan& p, DataFormat e) {
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
  return layernorm_tile_plan(rows, C, device, force_path,
                             [&](const LayerNormTilePlan& p) { return forward_cbs(p, format); });
}

Status layernorm_forward_tile(const LayerNormForwardArgs& args, const LayerNormForwardOutputs& out,
                              const TileOpConfig& config, TileOpInfo* info) {
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const DataFormat e = tile_format(args.x.dtype);
  OpDevice op_device(config);
  Device& device = op_device.get();
  const LayerNormForwardPlan plan =
      layernorm_forward_plan(rows, C, e, device.config(), config.force_path);
  const uint32_t num_cores = plan.split.num_cores;
  const int64_t dense_rows = int64_t(plan.spans) * kTileDim;

  LayerNormForwardTensors t;
  t.C = C;
  t.x = device_tensor_spec(rows, C, e);
  t.gamma = device_tensor_spec(dense_rows, kTileDim, e);
  t.beta = device_tensor_spec(dense_rows, kTileDim, e);
  const auto x_tiles = pad_matrix(args.x, rows, C, config.column_pad);
  const auto gamma_tiles = dense_vector(args.gamma, C, config.column_pad);
  const auto beta_tiles = args.beta.empty() ? std::vector<float>(size_t(dense_rows) * kTileDim)
                                            : dense_vector(args.beta, C, config.column_pad);
  TN_RETURN_IF_ERROR(allocate(device, &t.x, &x_tiles));
  TN_RETURN_IF_ERROR(allocate(device, &t.gamma, &gamma_tiles));
  TN_RETURN_IF_ERROR(allocate(device, &t.beta, &beta_tiles));
  TN_RETURN_IF_ERROR(layernorm_forward_validate(t));
  LayerNormForwardDeviceOutputs o = layernorm_forward_output_specs(t);
  TN_RETURN_IF_ERROR(allocate(device, &o.y));
  TN_RETURN_IF_ERROR(allocate(device, &o.mean));
  TN_RETURN_IF_ERROR(allocate(device, &o.rstd));
  const Buffer &x = t.x.buffer, &gamma = t.gamma.buffer, &beta = t.beta.buffer, &y = o.y.buffer,
               &mean = o.mean.buffer, &rstd = o.rstd.buffer;

  OpProgram cached(device,
                   tile_program_key("layernorm_forward", rows, C, e, plan, device.config()));
  Program& program = cached.program();
  const CoreRange grid({0, 0}, {device.config().grid_x - 1, device.config().grid_y - 1});
  if (!cached.hit()) TN_RETURN_IF_ERROR(create_cbs(program, grid, forward_cbs(plan, e)));
  const RowMeanConstants mean_constants = row_mean_constants(C);
  const uint32_t eps_bits = float_bits(float(args.eps));
  for (uint32_t i = 0; i < num_cores; ++i) {
    const CoreCoord core = plan.split.cores[i];
    const uint32_t start = plan.split.first_work_of(i), n = plan.split.work_of(i);
    const KernelHandle reader = cached.create_kernel(
        KernelKind::kReader, core, &layernorm_forward_reader, "layernorm_forward_reader");
    const KernelHandle compute =
        cached.create_kernel(KernelKind::kCompute, core, &layernorm_forward_compute,
                             "layernorm_forward_compute", kLayerNormComputeConfig);
    const KernelHandle writer = cached.create_kernel(
        KernelKind::kWriter, core, &layernorm_forward_writer, "layernorm_forward_writer");
    program.set_runtime_args(
        reader, core,
        LayerNormForwardReaderArgs{x.address, gamma.address, beta.address, start, n, plan.wt,
                                   plan.block, plan.mask_w, plan.fit ? 1u : 0u, plan.spans,
                                   plan.stream ? 1u : 0u});
    program.set_runtime_args(
        compute, core,
        LayerNormForwardComputeArgs{n, plan.wt, plan.block, plan.mask_w, plan.fit ? 1u : 0u,
                                    mean_constants, eps_bits});
    program.set_runtime_args(
        writer, core,
        LayerNormForwardWriterArgs{y.address, mean.address, rstd.address, start, n, plan.wt});
  }
  TN_RETURN_IF_ERROR(cached.ready());

  const Status run = device.run(program);
  fill_tile_op_info(info, plan, num_cores,
                    uint64_t(2) * uint64_t(rows) * uint64_t(C) * datum_size(e), device);
  if (info != nullptr) info->program_cache_hit = cached.hit();
  TN_RETURN_IF_ERROR(run);

  std::vector<float> values(size_t(rows * C));
  TN_RETURN_IF_ERROR(device.read_tiles(y, rows, C, values.data()));
  store_values(values.data(), out.y);
  std::vector<float> stat(static_cast<size_t>(rows));
  TN_RETURN_IF_ERROR(device.read_tiles(mean, rows, 1, stat.data()));
  store_values(stat.data(), out.mean);
  TN_RETURN_IF_ERROR(device.read_tiles(rstd, rows, 1, stat.data()));
  store_values(stat.data(), out.rstd);
  return {};
}

}  // namespace tilenorm::tile
