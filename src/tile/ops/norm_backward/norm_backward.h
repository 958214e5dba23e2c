// The norm backward (LayerNorm or RMSNorm, with or without dh_in) as a tile-machine op: the
// high-level op (host tensors in, dx, dgamma, dbeta out), the device operation (validation,
// output specs) and the program factory (kernel variant, path, blocks, mask, work split, CBs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "norm_args.h"
#include "tile/machine/device.h"
#include "tile/ops/norm_backward/kernels.h"
#include "tile/ops/op_host.h"

namespace tilenorm::tile {

struct NormBackwardTensors {
  DeviceTensor x, dy;
  DeviceTensor dh_in;       // with dh_in: like x
  DeviceTensor gamma;       // dense: [32 * ceil(Wt / 32), 32], the C values in order
  DeviceTensor mean, rstd;  // [rows, 1] logical, replicated over 32 columns, fp32; mean:
                            // LayerNorm only, rstd: rrms for RMSNorm
  int64_t C = 0;            // the feature count (x's logical cols)
};

// The device operation's checks; messages name the tensor, the expected and the actual value.
Status norm_backward_validate(const NormBackwardVariant& v, const NormBackwardTensors& t);

// Output specs: dx like x; dgamma (and dbeta, LayerNorm) as `slots` dense fp32 partials (one per
// core, or one per tile-row on the streamed block path): [slots * 32 * ceil(Wt / 32), 32], slot
// k's C values start at element k * 1024 * spans.
struct NormBackwardDeviceOutputs {
  DeviceTensor dx, dgamma_partials, dbeta_partials;
};
NormBackwardDeviceOutputs norm_backward_output_specs(const NormBackwardVariant& v,
                                                     const NormBackwardTensors& t, uint32_t slots);

// The program factory's plan: path and sizes from the CB bytes (tile_plan).
// force_path: "fit" or "block" to override the rule (TileOpConfig::force_path).
TilePlan norm_backward_plan(const NormBackwardVariant& v, int64_t rows, int64_t C,
                            DataFormat format, const DeviceConfig& device,
                            const std::string& force_path = {});

// The high-level op. `info` (optional) receives the path, counters and sanitizer findings.
Status norm_backward_tile(const NormBackwardArgs& args, const NormBackwardOutputs& out,
                          const TileOpConfig& config, TileOpInfo* info = nullptr);

}  // namespace tilenorm::tile
