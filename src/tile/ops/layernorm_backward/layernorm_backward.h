// LayerNorm backward as a tile-machine op: the high-level op (host tensors in, dx, dgamma, dbeta
// out), the device operation (validation, output specs) and the program factory (path, blocks,
// mask, work split, CBs, kernels).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tile/machine/device.h"
#include "tile/ops/op_host.h"
#include "tilenorm/layernorm.h"

namespace tilenorm::tile {

struct LayerNormBackwardTensors {
  DeviceTensor x, dy;
  DeviceTensor gamma;       // dense: [32 * ceil(Wt / 32), 32], the C values in order
  DeviceTensor mean, rstd;  // [rows, 1] logical, replicated over 32 columns, fp32
  int64_t C = 0;            // the feature count (x's logical cols)
};

// The device operation's checks; messages name the tensor, the expected and the actual value.
Status layernorm_backward_validate(const LayerNormBackwardTensors& t);

// Output specs: dx like x; dgamma and dbeta as `slots` dense fp32 partials (one per core, or one
// per tile-row on the streamed block path): [slots * 32 * ceil(Wt / 32), 32], slot k's C values
// start at element k * 1024 * spans.
struct LayerNormBackwardDeviceOutputs {
  DeviceTensor dx, dgamma_partials, dbeta_partials;
};
LayerNormBackwardDeviceOutputs layernorm_backward_output_specs(const LayerNormBackwardTensors& t,
                                                               uint32_t slots);

// The program factory's plan: path and sizes from the CB bytes (tile_plan).
using LayerNormBackwardPlan = TilePlan;
// force_path: "fit" or "block" to override the rule (TileOpConfig::force_path).
LayerNormBackwardPlan layernorm_backward_plan(int64_t rows, int64_t C, DataFormat format,
                                              const DeviceConfig& device,
                                              const std::string& force_path = {});

// The high-level op. `info` (optional) receives the path, counters and sanitizer findings.
Status layernorm_backward_tile(const LayerNormBackwardArgs& args,
                               const LayerNormBackwardOutputs& out, const TileOpConfig& config,
                               TileOpInfo* info = nullptr);

}  // namespace tilenorm::tile
