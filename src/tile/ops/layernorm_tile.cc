// The `tile` backend: LayerNorm forward/backward as tile ops on the emulated tile machine
// (faithful numerics, 8x8 cores, 1464 KiB L1).
#include "backends.h"
#include "tile/ops/layernorm_backward/layernorm_backward.h"
#include "tile/ops/layernorm_forward/layernorm_forward.h"

namespace tilenorm::tile {

Status layernorm_forward(const LayerNormForwardArgs& args, const LayerNormForwardOutputs& out,
                         const LayerNormOptions& options) {
  TileOpInfo info;
  const Status s = layernorm_forward_tile(args, out, default_tile_op_config(options), &info);
  if (s.ok()) fill_run_report(info, options.report);
  return s;
}

Status layernorm_backward(const LayerNormBackwardArgs& args, const LayerNormBackwardOutputs& out,
                          const LayerNormOptions& options) {
  TileOpInfo info;
  const Status s = layernorm_backward_tile(args, out, default_tile_op_config(options), &info);
  if (s.ok()) fill_run_report(info, options.report);
  return s;
}

}  // namespace tilenorm::tile
