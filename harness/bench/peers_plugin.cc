// Entry point of libtilenorm_bench_peers.so: registers the peers compiled into it.
#include "bench_peers.h"

extern "C" __attribute__((visibility("default"))) void tilenorm_bench_register_peers(
    tilenorm::bench::RegisterPeer add) {
  using namespace tilenorm::bench;
#ifdef TILENORM_BENCH_ONEDNN
  static const std::string onednn = onednn_version();
  add("onednn", &make_onednn_impl, onednn.c_str());
#endif
#ifdef TILENORM_BENCH_TORCH
  static const std::string torch = torch_version();
  add("torch", &make_torch_impl, torch.c_str());
#endif
  (void)add;
}
