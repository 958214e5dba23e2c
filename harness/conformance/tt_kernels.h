// tt-train's norm kernels, read from a tt-metal source tree, as the conformance registry's
// external ops (`tilenorm verify --tt-kernels DIR`): forward LayerNorm (layernorm_fw), forward
// RMSNorm (rmsnorm_fw), backward LayerNorm (layernorm_bw) and backward RMSNorm (rmsnorm_bw)
// through their ported program factories on the tile machine.
#pragma once

#include <string>

#include "harness/conformance/conformance.h"

namespace tilenorm::conformance {

// OK when `root` holds the reader, compute kernel and writer of all four ops; else
// InvalidArgument naming the first missing path.
Status check_tt_kernels(const std::string& root);

// The ops, on the case's machine (L1, grid) with the sanitizer collecting findings. They take
// bf16 only and have no residual form: other cases answer Unsupported. RMSNorm's statistic is
// the kernels' rms = sqrt(mean(x^2) + eps), handed to and from the registry as rrms = 1 / rms
// (computed on the host in double, then rounded to the statistic's dtype). JIT counters of
// every run are added to *compiled / *cached when given.
ExternalOps tt_kernel_ops(const std::string& root, uint32_t* compiled = nullptr,
                          uint32_t* cached = nullptr);

}  // namespace tilenorm::conformance
