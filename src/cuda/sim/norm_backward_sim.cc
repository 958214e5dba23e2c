// norm_backward.cu compiled as host C++ for the simulated device (instrumented: see exec.cc),
// with the definition of its dynamic shared memory (`extern __shared__ float acc[]`): 48 KiB,
// what a block may have without cudaFuncAttributeMaxDynamicSharedMemorySize. Defined before the
// kernels, so that their extern declaration names a variable known to need no dynamic
// initialization.
#include <cuda_runtime.h>

namespace tilenorm::cuda {
namespace {

alignas(16) thread_local float acc[48 * 1024 / sizeof(float)];
[[maybe_unused]] const bool acc_registered = sim::register_dynamic_smem(acc, sizeof acc);

}  // namespace
}  // namespace tilenorm::cuda

#include "cuda/norm_backward.cu"
