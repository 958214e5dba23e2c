#include "tile/ops/norm_forward/norm_forward.h"

#include <string>
#include <vector>

#include "tile/ops/norm_forward/cbs.h"

namespace tilenorm::tile {

namespace cb = norm_forward_cb;

namespace {

// stream: the dense gamma/beta windows hold one span page, re-read per span and tile-row. With a
// residual, x and the residual move in blocks and h takes x's place (the tile-row on the fit path).
std::vector<CbDesc> forward_cbs(const NormForwardVariant& v, const TilePlan& p, DataFormat e) {
  const DataFormat f32 = DataFormat::Float32, b16 = DataFormat::Float16_b;
  const uint32_t block = p.block, dense = p.stream ? 1 : p.spans;
  const uint32_t row = p.fit ? p.wt : 2 * block;
  std::vector<CbDesc> cbs = {{cb::kX, e, v.residual ? 2 * block : row, "x"},
                             {cb::kGammaDense, e, dense, "gamma_dense"}};
  if (v.has_beta()) cbs.push_back({cb::kBetaDense, e, dense, "beta_dense"});
  cbs.push_back({cb::kGamma, e, 2 * block, "gamma"});
  if (v.has_beta()) cbs.push_back({cb::kBeta, e, 2 * block, "beta"});
  cbs.insert(cbs.end(), {{cb::kOnes, b16, 1, "ones"},
                         {cb::kPartial, f32, 1, "partial"},
                         {cb::kHi, b16, 1, "partial_hi"},
                         {cb::kLo, f32, 1, "partial_lo"}});
  if (v.has_mean()) cbs.push_back({cb::kMeanRow, f32, 1, "mean"});
  cbs.insert(cbs.end(), {{cb::kRstdRow, f32, 1, v.has_mean() ? "rstd" : "rrms"},
                         {cb::kStatsOut, f32, v.has_mean() ? 2u : 1u, "stats_out"},
                         {cb::kY, e, 2 * block, "y"}});
  if (v.residual) {
    cbs.insert(cbs.end(), {{cb::kResidual, e, 2 * block, "residual"},
                           {cb::kH, e, row, "h"},
                           {cb::kHOut, e, 2, "h_out"}});
  }
  if (p.mask_w != 0) cbs.push_back({cb::kMask, b16, 1, "mask"});
  return cbs;
}

using ForwardKernels =
    OpKernels<NormForwardReaderArgs, NormForwardComputeArgs, NormForwardWriterArgs>;
// The variant's kernels; their name is also the program-cache key's op.
ForwardKernels forward_kernels(const NormForwardVariant& v) {
  return with_variant(v.norm, v.residual, []<Norm kNorm, bool kResidual>() {
    constexpr NormForwardVariant V{.norm = kNorm, .residual = kResidual};
    static const std::string name =
        variant_kernel_name(kNorm, kResidual ? "residual" : nullptr, "forward");
    return ForwardKernels{name.c_str(), &norm_forward_reader<V>, &norm_forward_compute<V>,
                          &norm_forward_writer<V>};
  });
}

}  // namespace

Status norm_forward_validate(const NormForwardVariant& v, const NormForwardTensors& t) {
  const int64_t rows = t.x.rows, C = t.C;
  const int64_t pr = round_up_tile(rows), pc = round_up_tile(C);
  const DataFormat e = t.x.buffer.format;
  TN_RETURN_IF_ERROR(check_device_tensor("x", t.x, rows, C, pr, pc, e));
  if (v.residual)
    TN_RETURN_IF_ERROR(check_device_tensor("residual", t.residual, rows, C, pr, pc, e));
  const int64_t dense = int64_t((tiles_along(C) + kSpanTiles - 1) / kSpanTiles) * kTileDim;
  TN_RETURN_IF_ERROR(
      check_device_tensor("gamma (dense)", t.gamma, dense, kTileDim, dense, kTileDim, e));
  if (v.has_mean()) {
    TN_RETURN_IF_ERROR(
        check_device_tensor("beta (dense)", t.beta, dense, kTileDim, dense, kTileDim, e));
  }
  return {};
}

NormForwardDeviceOutputs norm_forward_output_specs(const NormForwardVariant& v,
                                                   const NormForwardTensors& t) {
  const DeviceTensor like_x = device_tensor_spec(t.x.rows, t.C, t.x.buffer.format);
  const DeviceTensor stat = device_tensor_spec(t.x.rows, 1, DataFormat::Float32);
  return {.y = like_x,
          .mean = v.has_mean() ? stat : DeviceTensor{},
          .rstd = stat,
          .h = v.residual ? like_x : DeviceTensor{}};
}

TilePlan norm_forward_plan(const NormForwardVariant& v, int64_t rows, int64_t C, DataFormat format,
                           const DeviceConfig& device, const std::string& force_path) {
  return tile_plan(rows, C, device, force_path,
                   [&](const TilePlan& p) { return forward_cbs(v, p, format); });
}

Status norm_forward_tile(const NormForwardArgs& args, const NormForwardOutputs& out,
                         const TileOpConfig& config, TileOpInfo* info) {
  const NormForwardVariant v{.norm = args.norm, .residual = !args.residual.empty()};
  const int64_t rows = args.x.shape.rows(), C = args.x.shape.cols();
  const DataFormat e = tile_format(args.x.dtype);
  OpDevice op_device(config);
  Device& device = op_device.get();
  const TilePlan plan = norm_forward_plan(v, rows, C, e, device.config(), config.force_path);

  NormForwardTensors t;
  t.C = C;
  const float pad = config.column_pad;
  TN_RETURN_IF_ERROR(upload_matrix(device, args.x, rows, C, e, pad, &t.x));
  if (v.residual)
    TN_RETURN_IF_ERROR(upload_matrix(device, args.residual, rows, C, e, pad, &t.residual));
  TN_RETURN_IF_ERROR(upload_dense(device, args.gamma, C, e, pad, &t.gamma));
  if (v.has_beta()) TN_RETURN_IF_ERROR(upload_dense(device, args.beta, C, e, pad, &t.beta));
  TN_RETURN_IF_ERROR(norm_forward_validate(v, t));
  NormForwardDeviceOutputs o = norm_forward_output_specs(v, t);
  TN_RETURN_IF_ERROR(allocate(device, &o.y));
  if (v.residual) TN_RETURN_IF_ERROR(allocate(device, &o.h));
  if (v.has_mean()) TN_RETURN_IF_ERROR(allocate(device, &o.mean));
  TN_RETURN_IF_ERROR(allocate(device, &o.rstd));

  const RowMeanConstants mean_constants = row_mean_constants(C);
  const uint32_t eps_bits = float_bits(float(args.eps));
  auto args_of = [&](uint32_t, uint32_t first, uint32_t count) {
    const TileRows tr = tile_rows(plan, first, count);
    return CoreArgs<NormForwardReaderArgs, NormForwardComputeArgs, NormForwardWriterArgs>{
        .reader = {.rows = tr,
                   .x_addr = t.x.buffer.address,
                   .residual_addr = t.residual.buffer.address,
                   .gamma_addr = t.gamma.buffer.address,
                   .beta_addr = t.beta.buffer.address},
        .compute = {.rows = tr, .mean = mean_constants, .eps_bits = eps_bits},
        .writer = {.rows = tr,
                   .y_addr = o.y.buffer.address,
                   .h_addr = o.h.buffer.address,
                   .mean_addr = o.mean.buffer.address,
                   .rstd_addr = o.rstd.buffer.address}};
  };
  // Floor: read x (and the residual), write y (and h).
  const uint64_t floor = (v.residual ? 4u : 2u) * uint64_t(rows) * uint64_t(C) * datum_size(e);
  const ForwardKernels kernels = forward_kernels(v);
  std::vector<ReadBack> outputs = {{&o.y, out.y}, {&o.rstd, out.rstd}};
  if (v.residual) outputs.push_back({&o.h, out.h});
  if (v.has_mean()) outputs.push_back({&o.mean, out.mean});
  return run_program(device, tile_program_key(kernels.name, rows, C, e, plan, device.config()),
                     plan, forward_cbs(v, plan, e), kernels, args_of, floor, outputs, info);
}

}  // namespace tilenorm::tile
