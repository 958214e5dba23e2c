// Peer implementations, each compiled only when CMake found the library.
#pragma once

#include <memory>
#include <string>

#include "bench_core.h"

namespace tilenorm::bench {

#ifdef TILENORM_BENCH_ONEDNN
std::unique_ptr<Impl> make_onednn_impl();
std::string onednn_version();
#endif
#ifdef TILENORM_BENCH_TORCH
std::unique_ptr<Impl> make_torch_impl();
std::string torch_version();
#endif

}  // namespace tilenorm::bench
