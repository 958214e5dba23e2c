// Placeholder until the CUDA kernels lands: reports Unsupported.
#include "backends.h"

namespace tilenorm::cuda {

Status layernorm_forward(const LayerNormForwardArgs&, const LayerNormForwardOutputs&,
                         const LayerNormOptions&) {
  return Status::unsupported("backend 'cuda' is not implemented yet");
}
Status layernorm_backward(const LayerNormBackwardArgs&, const LayerNormBackwardOutputs&,
                          const LayerNormOptions&) {
  return Status::unsupported("backend 'cuda' is not implemented yet");
}

}  // namespace tilenorm::cuda
