// Placeholder until the tile ops lands: reports Unsupported.
#include "backends.h"

namespace tilenorm::tile {

Status layernorm_forward(const LayerNormForwardArgs&, const LayerNormForwardOutputs&,
                         const LayerNormOptions&) {
  return Status::unsupported("backend 'tile' is not implemented yet");
}
Status layernorm_backward(const LayerNormBackwardArgs&, const LayerNormBackwardOutputs&,
                          const LayerNormOptions&) {
  return Status::unsupported("backend 'tile' is not implemented yet");
}

}  // namespace tilenorm::tile
