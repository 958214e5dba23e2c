#include "tile/ops/norm_backward/norm_backward.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "tile/ops/norm_backward/cbs.h"

namespace tilenorm::tile {

namespace cb = norm_backward_cb;

namespace {

// stream: one dense gamma page, re-read per span and tile-row, and no dgamma/dbeta carry across
// tile-rows (each tile-row writes its own partial spans). RMSNorm keeps one row partial (Σg·x)
// and one accumulator (dgamma) where LayerNorm keeps two, and no mean or dy hi/lo.
std::vector<CbDesc> backward_cbs(const NormBackwardVariant& v, const TilePlan& p, DataFormat e) {
  const DataFormat f32 = DataFormat::Float32, b16 = DataFormat::Float16_b;
  const uint32_t block = p.block, spans = p.spans, row = p.fit ? p.wt : 2 * block;
  const uint32_t sums = v.row_sums(), acc = v.accumulators();
  std::vector<CbDesc> cbs = {{cb::kX, e, row, "x"},
                             {cb::kDy, e, row, "dy"},
                             {cb::kGammaDense, e, p.stream ? 1 : spans, "gamma_dense"},
                             {cb::kGamma, e, 2 * block, "gamma"}};
  if (v.has_mean()) cbs.push_back({cb::kMean, f32, 2, "mean"});
  cbs.insert(cbs.end(), {{cb::kRstd, f32, 2, v.has_mean() ? "rstd" : "rrms"},
                         {cb::kOnes, b16, 1, "ones"},
                         {cb::kSelect, b16, kTileDim, "row_select"},
                         {cb::kPartial, f32, sums, "partial"},
                         {cb::kHi, b16, sums, "partial_hi"},
                         {cb::kLo, f32, sums, "partial_lo"},
                         {cb::kRowStats, f32, sums, "s1_s2"},
                         {cb::kProduct, f32, block, "dy_xhat"},
                         {cb::kProductHi, b16, block, "dy_xhat_hi"},
                         {cb::kProductLo, f32, block, "dy_xhat_lo"}});
  if (v.has_beta()) {
    cbs.insert(cbs.end(), {{cb::kDyHi, b16, block, "dy_hi"}, {cb::kDyLo, f32, block, "dy_lo"}});
  }
  cbs.insert(cbs.end(), {{cb::kAccSpan, f32, acc, "dgamma_dbeta_span"},
                         {cb::kAccOut, f32, acc, "dgamma_dbeta_out"},
                         {cb::kDx, e, 2 * block, "dx"}});
  if (!p.stream) cbs.push_back({cb::kAccCarry, f32, acc * spans, "dgamma_dbeta_carry"});
  if (v.dh_in) cbs.push_back({cb::kDhIn, e, 2 * block, "dh_in"});
  if (p.mask_w != 0) cbs.push_back({cb::kMask, b16, 1, "mask"});
  return cbs;
}

using BackwardKernels =
    OpKernels<NormBackwardReaderArgs, NormBackwardComputeArgs, NormBackwardWriterArgs>;
// The variant's kernels; their name is also the program-cache key's op.
BackwardKernels backward_kernels(const NormBackwardVariant& v) {
  return with_variant(v.norm, v.dh_in, []<Norm kNorm, bool kDhIn>() {
    constexpr NormBackwardVariant V{.norm = kNorm, .dh_in = kDhIn};
    static const std::string name =
        variant_kernel_name(kNorm, kDhIn ? "dh_in" : nullptr, "backward");
    return BackwardKernels{name.c_str(), &norm_backward_reader<V>, &norm_backward_compute<V>,
                           &norm_backward_writer<V>};
  });
}

}  // namespace

Status norm_backward_validate(const NormBackwardVariant& v, const NormBackwardTensors& t) {
  const int64_t rows = t.x.rows, C = t.C;
  const DataFormat e = t.x.buffer.format;
  const int64_t pr = round_up_tile(rows), pc = round_up_tile(C);
  TN_RETURN_IF_ERROR(check_device_tensor("x", t.x, rows, C, pr, pc, e));
  TN_RETURN_IF_ERROR(check_device_tensor("dy", t.dy, rows, C, pr, pc, e));
  if (v.dh_in) TN_RETURN_IF_ERROR(check_device_tensor("dh_in", t.dh_in, rows, C, pr, pc, e));
  const int64_t dense = int64_t((tiles_along(C) + kSpanTiles - 1) / kSpanTiles) * kTileDim;
  TN_RETURN_IF_ERROR(
      check_device_tensor("gamma (dense)", t.gamma, dense, kTileDim, dense, kTileDim, e));
  if (v.has_mean()) {
    TN_RETURN_IF_ERROR(
        check_device_tensor("mean", t.mean, rows, 1, pr, kTileDim, DataFormat::Float32));
  }
  TN_RETURN_IF_ERROR(check_device_tensor(v.has_mean() ? "rstd" : "rrms", t.rstd, rows, 1, pr,
                                         kTileDim, DataFormat::Float32));
  return {};
}

NormBackwardDeviceOutputs norm_backward_output_specs(const NormBackwardVariant& v,
                                                     const NormBackwardTensors& t, uint32_t slots) {
  const int64_t part_rows = int64_t(slots) * t.gamma.rows;
  const DeviceTensor part = device_tensor_spec(part_rows, kTileDim, DataFormat::Float32);
  return {.dx = device_tensor_spec(t.x.rows, t.C, t.x.buffer.format),
          .dgamma_partials = part,
          .dbeta_partials = v.has_beta() ? part : DeviceTensor{}};
}

TilePlan norm_backward_plan(const NormBackwardVariant& v, int64_t rows, int64_t C,
                            DataFormat format, const DeviceConfig& device,
                            const std::string& force_path) {
  return tile_plan(rows, C, device, force_path,
                   [&](const TilePlan& p) { return backward_cbs(v, p, format); });
}

Status norm_backward_tile(const NormBackwardArgs& args, const NormBackwardOutputs& out,
                          const TileOpConfig& config, TileOpInfo* info) {
  const NormBackwardVariant v{.norm = args.norm, .dh_in = !args.dh_in.empty()};
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const DataFormat e = tile_format(args.x.dtype);
  OpDevice op_device(config);
  Device& device = op_device.get();
  const TilePlan plan = norm_backward_plan(v, rows, C, e, device.config(), config.force_path);

  // Host tensors -> tiles (padding explicit) -> device buffers.
  NormBackwardTensors t;
  t.C = C;
  const float pad = config.column_pad;
  TN_RETURN_IF_ERROR(upload_matrix(device, args.x, rows, C, e, pad, &t.x));
  TN_RETURN_IF_ERROR(upload_matrix(device, args.dy, rows, C, e, pad, &t.dy));
  TN_RETURN_IF_ERROR(upload_dense(device, args.gamma, C, e, pad, &t.gamma));
  if (v.has_mean()) TN_RETURN_IF_ERROR(upload_stats(device, args.mean, rows, &t.mean));
  TN_RETURN_IF_ERROR(upload_stats(device, args.rstd, rows, &t.rstd));
  if (v.dh_in) TN_RETURN_IF_ERROR(upload_matrix(device, args.dh_in, rows, C, e, pad, &t.dh_in));
  TN_RETURN_IF_ERROR(norm_backward_validate(v, t));
  NormBackwardDeviceOutputs o = norm_backward_output_specs(v, t, plan.slots);
  TN_RETURN_IF_ERROR(allocate(device, &o.dx));
  TN_RETURN_IF_ERROR(allocate(device, &o.dgamma_partials));
  if (v.has_beta()) TN_RETURN_IF_ERROR(allocate(device, &o.dbeta_partials));

  const RowMeanConstants mean_constants = row_mean_constants(C);
  auto args_of = [&](uint32_t i, uint32_t first, uint32_t count) {
    const TileRows tr = tile_rows(plan, first, count);
    return CoreArgs<NormBackwardReaderArgs, NormBackwardComputeArgs, NormBackwardWriterArgs>{
        .reader = {.rows = tr,
                   .x_addr = t.x.buffer.address,
                   .dy_addr = t.dy.buffer.address,
                   .gamma_addr = t.gamma.buffer.address,
                   .mean_addr = t.mean.buffer.address,
                   .rstd_addr = t.rstd.buffer.address,
                   .dh_in_addr = t.dh_in.buffer.address},
        .compute = {.rows = tr, .mean = mean_constants},
        .writer = {.rows = tr,
                   .dx_addr = o.dx.buffer.address,
                   .dgamma_addr = o.dgamma_partials.buffer.address,
                   .dbeta_addr = o.dbeta_partials.buffer.address,
                   .first_span_page = i * plan.spans}};
  };
  // Floor: read x, dy (and dh_in), write dx.
  const uint64_t floor = (v.dh_in ? 4u : 3u) * uint64_t(rows) * uint64_t(C) * datum_size(e);
  const BackwardKernels kernels = backward_kernels(v);
  TN_RETURN_IF_ERROR(
      run_program(device, tile_program_key(kernels.name, rows, C, e, plan, device.config()), plan,
                  backward_cbs(v, plan, e), kernels, args_of, floor, {{&o.dx, out.dx}}, info));

  // Combine the dgamma/dbeta partials (per core, or per tile-row when streamed) in order.
  const int64_t part_rows = o.dgamma_partials.rows;
  const size_t stride = size_t(plan.spans) * kTileElems;
  std::vector<float> parts(size_t(part_rows * kTileDim));
  for (const auto& [partials, view] :
       {std::pair{&o.dgamma_partials, out.dgamma}, std::pair{&o.dbeta_partials, out.dbeta}}) {
    if (view.empty()) continue;
    TN_RETURN_IF_ERROR(device.read_tiles(partials->buffer, part_rows, kTileDim, parts.data()));
    float* sum = view.as<float>();
    for (int64_t i = 0; i < C; ++i) {
      double s = 0;
      for (uint32_t k = 0; k < plan.slots; ++k) s += parts[k * stride + size_t(i)];
      sum[i] = float(s);
    }
  }
  return {};
}

}  // namespace tilenorm::tile
