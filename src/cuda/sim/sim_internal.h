// Internals of the simulated CUDA device shared by its runtime (runtime.cc), scheduler
// (scheduler.cc) and checks (checks.cc).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cuda/sim/sim.h"

namespace tilenorm::cuda::sim::detail {

// The device profile the runtime answers queries from.
struct DeviceProfile {
  const char* name;
  int sms;
  int l2_bytes;
  size_t global_bytes;
  int smem_per_sm, smem_per_block, smem_per_block_optin;
  int regs_per_sm, regs_per_block;
  int threads_per_sm, blocks_per_sm;
  int gpcs;  // clusters are scheduled within a GPC
};
const DeviceProfile& device();

// A cudaMalloc block: exactly `bytes` long, with a byte per byte saying whether it was written.
struct Allocation {
  uintptr_t base = 0;
  size_t bytes = 0;
  std::vector<uint8_t> written;
};
// Every device allocation lies in one reserved address range; an address in it but in no live
// allocation is out of bounds.
bool in_arena(uintptr_t a);
Allocation* find_allocation(uintptr_t a);  // the live allocation holding a, or null

void set_last_error(cudaError_t e);

// A report of the running launch (checks.cc, scheduler.cc); launches with one fail.
void report(ReportKind kind, const std::string& message);
// The source line of a code address in this program ("file.cu:123"), for reports.
std::string code_location(const void* pc);
// The name of a function by its address ("norm_forward_rows<...>").
std::string function_name(const void* fn);

// Checks (checks.cc), driven by the scheduler.
struct BlockShadow;
// The thread pointer of the calling OS thread and the extent of the program's static TLS below
// it, where __shared__ variables live.
uintptr_t thread_pointer();
size_t tls_bytes();
void register_dynamic_smem_default();

}  // namespace tilenorm::cuda::sim::detail
