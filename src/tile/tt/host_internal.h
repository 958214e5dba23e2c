// The tt-metal style host API's state (include/tilenorm/tt/host.h), for its implementation and
// for tilenorm's own code that runs a tt program next to the tile machine.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "tile/machine/device.h"
#include "tilenorm/tt/host.h"

namespace tilenorm::tt {

struct Program::Impl {
  struct Cb {
    CoreRangeSet cores;
    CircularBufferConfig config;
  };
  struct Kernel {
    std::string path;
    CoreRangeSet cores;
    tile::KernelKind kind = tile::KernelKind::kReader;
    std::vector<uint32_t> compile_args;
    Defines defines;
    tile::ComputeConfig compute;
    std::map<std::pair<uint32_t, uint32_t>, std::vector<uint32_t>> args;  // per core (x, y)
    std::vector<uint32_t> common_args;
  };
  std::vector<Cb> cbs;
  std::vector<Kernel> kernels;
  Status status;
  void fail(Status s);  // keeps the first error
};

struct Device::Impl {
  explicit Impl(const tile::DeviceConfig& config) : machine(config) {}
  tile::Device machine;
};

// The tile machine under a Device (its last_run() holds the sanitizer reports of RunProgram).
tile::Device& machine(Device& device);

}  // namespace tilenorm::tt
