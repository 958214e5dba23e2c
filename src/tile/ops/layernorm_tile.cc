// The `tile` backend: LayerNorm forward/backward as tile ops on the emulated tile machine
// (faithful numerics, 8x8 cores, 1464 KiB L1).
#include <memory>

#include "backends.h"
#include "tile/ops/layernorm_backward/layernorm_backward.h"
#include "tile/ops/layernorm_forward/layernorm_forward.h"

namespace tilenorm::tile {

namespace {

// The backend keeps one device per host thread (rebuilt when the settings change), so a second
// call with the same shapes takes its program from the device's program cache.
TileOpConfig backend_config(const LayerNormOptions& options) {
  TileOpConfig config = default_tile_op_config(options);
  thread_local std::unique_ptr<Device> device;
  if (device == nullptr || !(device->config() == config.device))
    device = std::make_unique<Device>(config.device);
  config.on_device = device.get();
  return config;
}

}  // namespace

Status layernorm_forward(const LayerNormForwardArgs& args, const LayerNormForwardOutputs& out,
                         const LayerNormOptions& options) {
  TileOpInfo info;
  const Status s = layernorm_forward_tile(args, out, backend_config(options), &info);
  if (s.ok()) fill_run_report(info, options.report);
  return s;
}

Status layernorm_backward(const LayerNormBackwardArgs& args, const LayerNormBackwardOutputs& out,
                          const LayerNormOptions& options) {
  TileOpInfo info;
  const Status s = layernorm_backward_tile(args, out, backend_config(options), &info);
  if (s.ok()) fill_run_report(info, options.report);
  return s;
}

}  // namespace tilenorm::tile
