// Backends: where a call of the norm family (LayerNorm, RMSNorm) runs.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace tilenorm {

enum class Backend {
  kReference,  // float64 loops: the oracle
  kCpu,        // SIMD + threads, bitwise deterministic; the default
  kTile,       // the norm family's tile ops on the emulated Tensix-style tile machine
  kCuda,       // NVIDIA GPUs; built only when nvcc is found
};

const char* backend_name(Backend backend);  // "reference", "cpu", "tile", "cuda"
std::optional<Backend> parse_backend(std::string_view name);
// Built into this binary (cuda: compiled in; a device may still be missing at run time).
bool backend_built(Backend backend);
std::vector<Backend> all_backends();

}  // namespace tilenorm
