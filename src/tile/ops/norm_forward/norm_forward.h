// The norm forward (LayerNorm or RMSNorm, with or without the fused residual add) as a
// tile-machine op: the high-level op (host tensors in, y, h, mean, rstd / rrms out), the device
// operation (validation, output specs) and the program factory (kernel variant, path from the CB
// bytes, blocks, mask, work split).
#pragma once

#include <cstdint>
#include <string>

#include "norm_args.h"
#include "tile/machine/device.h"
#include "tile/ops/norm_forward/kernels.h"
#include "tile/ops/op_host.h"

namespace tilenorm::tile {

struct NormForwardTensors {
  DeviceTensor x;
  DeviceTensor residual;     // with a residual: like x
  DeviceTensor gamma, beta;  // dense: [32 * ceil(Wt / 32), 32], the C values in order; beta:
                             // LayerNorm only
  int64_t C = 0;
};
// The device operation's checks; messages name the tensor, the expected and the actual value.
Status norm_forward_validate(const NormForwardVariant& v, const NormForwardTensors& t);

// Output specs: y (and h, with a residual) like x; mean (LayerNorm) and rstd (RMSNorm: rrms)
// [rows, 1] fp32, padded to one tile per tile-row.
struct NormForwardDeviceOutputs {
  DeviceTensor y, mean, rstd, h;  // the order of NormForwardOutputs
};
NormForwardDeviceOutputs norm_forward_output_specs(const NormForwardVariant& v,
                                                   const NormForwardTensors& t);

// force_path: "fit" or "block" to override the rule (TileOpConfig::force_path).
TilePlan norm_forward_plan(const NormForwardVariant& v, int64_t rows, int64_t C, DataFormat format,
                           const DeviceConfig& device, const std::string& force_path = {});

Status norm_forward_tile(const NormForwardArgs& args, const NormForwardOutputs& out,
                         const TileOpConfig& config, TileOpInfo* info = nullptr);

}  // namespace tilenorm::tile
