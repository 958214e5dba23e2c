// Placeholder until the SIMD backend lands: reports Unsupported.
#include "backends.h"

namespace tilenorm::cpu {

Status layernorm_forward(const LayerNormForwardArgs&, const LayerNormForwardOutputs&,
                         const LayerNormOptions&) {
  return Status::unsupported("backend 'cpu' is not implemented yet");
}
Status layernorm_backward(const LayerNormBackwardArgs&, const LayerNormBackwardOutputs&,
                          const LayerNormOptions&) {
  return Status::unsupported("backend 'cpu' is not implemented yet");
}

}  // namespace tilenorm::cpu
