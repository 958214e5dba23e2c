// The CUDA backend below the public API: device-pointer entry points (no transfers; for
// benchmarks and callers that already hold device memory, fp16 included) and host-memory helpers.
// C++17 and free of CUDA headers: included by the .cu kernels, the C++20 glue and the tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

struct CUstream_st;  // cudaStream_t is CUstream_st*; nullptr is the default stream

namespace tilenorm::cuda {

enum class ElemType { kF32, kBF16, kF16 };  // x, dy, y, dx, gamma, beta share it

// A failed CUDA call: its cudaError_t value and the call's name. code 0 is success.
struct CudaError {
  int code = 0;
  const char* call = "";
  bool ok() const { return code == 0; }
};
// "cudaMalloc(x): out of memory (cudaErrorMemoryAllocation)"
std::string cuda_error_string(const CudaError& e);
// True when the device cannot run the kernels, which are built for sm_90 only (SASS and compute_90
// PTX): no image for its compute capability, or a driver that cannot compile the PTX.
bool cuda_error_is_no_kernel_image(const CudaError& e);
// True when no usable device, driver or kernel image is the cause (the above included): callers
// report it as Unsupported.
bool cuda_error_is_no_device(const CudaError& e);

// The current device, for messages and tests.
struct DeviceInfo {
  int index = -1;
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability
};
CudaError current_device(DeviceInfo* out);

// Whether the current device can run the kernels: compute capability 9.0 or newer (checked up
// front: cudaErrorNoKernelImageForDevice otherwise), and the kernels' image loads (a newer device
// needs a driver that compiles the compute_90 PTX; the load's error otherwise).
CudaError check_kernel_image();

// The norms of the family: LayerNorm, and RMSNorm (LayerNorm without centring: no mean, no
// beta; rstd holds rrms). The public API's Norm, for the C++17 kernels.
enum class NormKind { kLayerNorm, kRmsNorm };

// Device pointers, row-major [rows, cols]. Pointers must be aligned to their element size;
// rows >= 1, cols >= 1. beta may be null (0); it, mean and dbeta are null for RMSNorm, where
// rstd holds rrms. residual (forward) and dh_in (backward) may be null; with a residual the
// forward writes h = x + residual, and the backward takes h as x. mean/rstd/dgamma/dbeta are
// fp32; dgamma and dbeta are overwritten. Outputs must not alias inputs.
struct ForwardDeviceArgs {
  ElemType dtype = ElemType::kF32;
  NormKind norm = NormKind::kLayerNorm;
  const void* x = nullptr;
  const void* residual = nullptr;
  const void* gamma = nullptr;
  const void* beta = nullptr;
  void* y = nullptr;
  void* h = nullptr;  // [rows, cols] when residual is given
  float* mean = nullptr;
  float* rstd = nullptr;
  int64_t rows = 0, cols = 0;
  float eps = 1e-5f;
};

struct BackwardDeviceArgs {
  ElemType dtype = ElemType::kF32;
  NormKind norm = NormKind::kLayerNorm;
  const void* x = nullptr;
  const void* dy = nullptr;
  const void* gamma = nullptr;
  const float* mean = nullptr;
  const float* rstd = nullptr;
  const void* dh_in = nullptr;  // added to dx when given
  void* dx = nullptr;
  float* dgamma = nullptr;
  float* dbeta = nullptr;
  int64_t rows = 0, cols = 0;
};

// Which kernels a call ran (for RunReport and the benchmark).
struct PathInfo {
  const char* path = "";  // "rows" (row in registers), "cluster" (row over a cluster), "split"
  int cluster = 0;        // blocks per row ("rows"/"cluster") or segments per row ("split")
  int threads = 0;        // threads per block
  int64_t grid = 0;       // blocks of the main kernel (the persistent grid)
  int64_t batches = 1;    // row batches ("split"; each batch is one launch per kernel)
};

// Caps below the device's own figures, for tests: with them, small shapes run the code that
// otherwise only large shapes reach (groups looping over rows, several split batches). 0 keeps
// the device's figure.
struct Limits {
  // Blocks (clusters) of the register paths' persistent grid; blocks per segment, each carrying
  // a dgamma/dbeta partial row, of the split backward.
  int64_t max_groups = 0;
  // The L2 cache size that sizes the split path's row batches.
  int64_t l2_bytes = 0;
};

// The current device's properties, cached occupancy and a reusable workspace: what the ops
// share, with no op of its own (the ops are the free functions below). Not thread-safe; one per
// stream. Kernels run asynchronously on the caller's stream.
class Context {
 public:
  Context() = default;
  explicit Context(const Limits& limits) : limits_(limits) {}
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Binds to the current device (its properties, and check_kernel_image) on the first call and
  // whenever the current device changed; a no-op otherwise.
  CudaError init();
  // A workspace of at least `bytes`; growing it waits for `stream` (kernels queued may use it).
  CudaError reserve(size_t bytes, CUstream_st* stream);
  void* workspace() const { return workspace_; }
  // Co-resident blocks (cluster == 1) or clusters (cluster > 1) of a kernel, cached.
  CudaError capacity(const void* kernel, int threads, int cluster, size_t smem, int64_t* out);
  // A grid of `groups` blocks (clusters) or fewer under the Limits.
  int64_t cap_groups(int64_t groups) const;
  // The L2 bytes the split path may fill, under the Limits.
  int64_t l2_budget() const;
  int sms() const { return sms_; }

 private:
  Limits limits_;
  int device_ = -1;
  int sms_ = 0;
  int64_t l2_bytes_ = 0;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<std::tuple<const void*, int, int, size_t>, int64_t> capacity_cache_;
};

// The norms on device pointers, queued on `stream`; errors of the launches themselves are
// returned.
CudaError norm_forward(Context& ctx, const ForwardDeviceArgs& args, CUstream_st* stream,
                       PathInfo* info = nullptr);
CudaError norm_backward(Context& ctx, const BackwardDeviceArgs& args, CUstream_st* stream,
                        PathInfo* info = nullptr);

// Host-memory calls: copy inputs to the device, run, copy results back (used by the public API
// and by tests for fp16). Device outputs are filled with NaN bits before the run, so anything a
// kernel fails to write shows up. `misalign_elems` places every device tensor that many elements
// past a 256-byte boundary, to exercise the unaligned load paths in tests; `limits` go to the
// Context.
struct HostForward {
  ForwardDeviceArgs args;  // pointers are host pointers here
  int misalign_elems = 0;
  Limits limits;
};
struct HostBackward {
  BackwardDeviceArgs args;  // pointers are host pointers here
  int misalign_elems = 0;
  Limits limits;
};
CudaError norm_forward_host(const HostForward& call, PathInfo* info = nullptr);
CudaError norm_backward_host(const HostBackward& call, PathInfo* info = nullptr);

// Whether a CUDA device can be used (check_kernel_image included); when not, `why` names the
// device, its compute capability where the image is the cause, the failing call and its error.
bool device_available(std::string* why);

size_t elem_size(ElemType t);

}  // namespace tilenorm::cuda
