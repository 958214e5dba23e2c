// LayerNorm forward as a tile-machine op: the high-level op (host tensors in, y, mean, rstd out),
// the device operation (validation, output specs) and the program factory (path from the CB bytes,
// blocks, mask, work split).
#pragma once

#include <cstdint>
#include <string>

#include "tile/machine/device.h"
#include "tile/ops/op_host.h"
#include "tilenorm/layernorm.h"

namespace tilenorm::tile {

struct LayerNormForwardTensors {
  DeviceTensor x;
  DeviceTensor gamma, beta;  // dense: [32 * ceil(Wt / 32), 32], the C values in order
  int64_t C = 0;
};
// The device operation's checks; messages name the tensor, the expected and the actual value.
Status layernorm_forward_validate(const LayerNormForwardTensors& t);

// Output specs: y like x; mean and rstd [rows, 1] fp32, padded to one tile per tile-row.
struct LayerNormForwardDeviceOutputs {
  DeviceTensor y, mean, rstd;
};
LayerNormForwardDeviceOutputs layernorm_forward_output_specs(const LayerNormForwardTensors& t);

using LayerNormForwardPlan = TilePlan;
// force_path: "fit" or "block" to override the rule (TileOpConfig::force_path).
LayerNormForwardPlan layernorm_forward_plan(int64_t rows, int64_t C, DataFormat format,
                                            const DeviceConfig& device,
                                            const std::string& force_path = {});

Status layernorm_forward_tile(const LayerNormForwardArgs& args, const LayerNormForwardOutputs& out,
                              const TileOpConfig& config, TileOpInfo* info = nullptr);

}  // namespace tilenorm::tile
