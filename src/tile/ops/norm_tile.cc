// The `tile` backend: the norm family's forward/backward as tile ops on the emulated tile machine
// (faithful numerics, 8x8 cores, 1464 KiB L1).
#include <memory>

#include "backends.h"
#include "tile/ops/norm_backward/norm_backward.h"
#include "tile/ops/norm_forward/norm_forward.h"

namespace tilenorm::tile {

namespace {

// The backend keeps one device per host thread (rebuilt when the settings change), so a second
// call with the same shapes takes its program from the device's program cache.
TileOpConfig backend_config(const NormOptions& options) {
  TileOpConfig config = default_tile_op_config(options);
  thread_local std::unique_ptr<Device> device;
  if (device == nullptr || !(device->config() == config.device))
    device = std::make_unique<Device>(config.device);
  config.on_device = device.get();
  return config;
}

// The op on the backend's device; its path and counters into the run report.
template <typename Args, typename Outputs>
Status run_op(Status (*op)(const Args&, const Outputs&, const TileOpConfig&, TileOpInfo*),
              const Args& args, const Outputs& out, const NormOptions& options) {
  TileOpInfo info;
  Status s = op(args, out, backend_config(options), &info);
  if (s.ok()) fill_run_report(info, options.report);
  return s;
}

}  // namespace

Status norm_forward(const NormForwardArgs& args, const NormForwardOutputs& out,
                    const NormOptions& options) {
  return run_op(norm_forward_tile, args, out, options);
}

Status norm_backward(const NormBackwardArgs& args, const NormBackwardOutputs& out,
                     const NormOptions& options) {
  return run_op(norm_backward_tile, args, out, options);
}

}  // namespace tilenorm::tile
