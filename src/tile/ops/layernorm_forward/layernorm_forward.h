// LayerNorm forward as a tile-machine op: the high-level op (host tensors in, y, mean, rstd out),
// its checks and the program factory (path from the CB bytes, blocks, mask, work split).
#pragma once

#include <cstdint>
#include <string>

#include "tile/machine/device.h"
#include "tile/ops/layernorm_common.h"
#include "tilenorm/layernorm.h"

namespace tilenorm::tile {

struct LayerNormForwardPlan {
  bool fit = false;
  uint32_t ht = 0, wt = 0, block = kBlockTiles, mask_w = 0, spans = 0;
  uint32_t l1_bytes = 0;
  WorkSplit split;
};
// force_path: "fit" or "block" to override the rule (TileOpConfig::force_path).
LayerNormForwardPlan layernorm_forward_plan(int64_t rows, int64_t C, DataFormat format,
                                            const DeviceConfig& device,
                                            const std::string& force_path = {});

Status layernorm_forward_tile(const LayerNormForwardArgs& args, const LayerNormForwardOutputs& out,
                              const TileOpConfig& config, TileOpInfo* info = nullptr);

}  // namespace tilenorm::tile
