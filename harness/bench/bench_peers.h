// Peer implementations, compiled into the peers plugin (libtilenorm_bench_peers.so) when CMake
// finds the library.
#pragma once

#include <memory>
#include <string>

#include "harness/bench/bench_core.h"

namespace tilenorm::bench {

#ifdef TILENORM_BENCH_ONEDNN
Impl* make_onednn_impl();
std::string onednn_version();
#endif
#ifdef TILENORM_BENCH_TORCH
Impl* make_torch_impl();
std::string torch_version();
#endif

}  // namespace tilenorm::bench
