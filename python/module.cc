// tilenorm._C: LayerNorm and RMSNorm forward/backward on torch tensors, read through their Python
// attributes (data_ptr(), numel(), dtype), so no libtorch headers are needed. tilenorm/torch/
// checks devices, dtypes, shapes and contiguity first; this file maps tensors to views and Status
// to exceptions.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "tilenorm/cuda.h"
#include "tilenorm/layernorm.h"
#include "tilenorm/rmsnorm.h"

namespace py = pybind11;

namespace tilenorm {
namespace {

// The dtypes tilenorm takes, told apart by identity with torch's dtype objects (no string
// conversion per call).
enum class TorchDType { kOther, kF32, kBF16, kF64, kF16 };

// A torch dtype object, e.g. torch.float32, kept for the life of the process: torch keeps its
// dtype objects alive, and no destructor may run after the interpreter is gone.
PyObject* torch_attr(const char* name) {
  return py::object(py::module_::import("torch").attr(name)).release().ptr();
}

TorchDType torch_dtype(py::handle dtype) {
  static PyObject* const f32 = torch_attr("float32");
  static PyObject* const bf16 = torch_attr("bfloat16");
  static PyObject* const f64 = torch_attr("float64");
  static PyObject* const f16 = torch_attr("float16");
  const PyObject* d = dtype.ptr();
  if (d == f32) return TorchDType::kF32;
  if (d == bf16) return TorchDType::kBF16;
  if (d == f64) return TorchDType::kF64;
  if (d == f16) return TorchDType::kF16;
  return TorchDType::kOther;
}

// How a tensor's elements are laid out for the call, given C (the product of the normalized
// dims): x-like tensors as [rows, C], the per-column ones (gamma, beta, dgamma, dbeta) as [C],
// the per-row statistics as [rows]. tilenorm/torch/ passes contiguous tensors of those sizes;
// a tensor whose element count does not fit keeps its own shape, which the API then rejects.
enum class Layout { kRows, kColumns, kPerRow };

// A torch tensor's storage as seen by tilenorm; dtype is t.dtype.
struct Borrowed {
  void* data = nullptr;
  Shape shape;
  py::object dtype;
  TorchDType code = TorchDType::kOther;
};

// An interned attribute name, kept for the life of the process (as torch_attr's objects).
PyObject* interned(const char* name) { return PyUnicode_InternFromString(name); }

// t.name(), t.name: new references; a Python error becomes error_already_set.
py::object call_method(py::handle t, PyObject* name) {
  PyObject* r = PyObject_CallMethodNoArgs(t.ptr(), name);
  if (r == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(r);
}
py::object get_attr(py::handle t, PyObject* name) {
  PyObject* r = PyObject_GetAttr(t.ptr(), name);
  if (r == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(r);
}

Borrowed borrow(py::handle t, int64_t cols, Layout layout) {
  static PyObject* const data_ptr = interned("data_ptr");
  static PyObject* const numel_name = interned("numel");
  static PyObject* const dtype = interned("dtype");
  if (t.is_none()) return {};
  Borrowed b;
  b.data = reinterpret_cast<void*>(call_method(t, data_ptr).cast<uintptr_t>());
  b.dtype = get_attr(t, dtype);
  b.code = torch_dtype(b.dtype);
  const auto numel = call_method(t, numel_name).cast<int64_t>();
  if (layout == Layout::kRows && cols > 0 && numel % cols == 0)
    b.shape = Shape{numel / cols, cols};
  else if (layout == Layout::kColumns && numel == cols)
    b.shape = Shape{cols};
  else if (layout == Layout::kPerRow)
    b.shape = Shape{numel};
  else
    b.shape = Shape(t.attr("shape").cast<std::vector<int64_t>>());
  return b;
}

std::string dtype_string(const Borrowed& t) { return py::str(t.dtype); }

DType host_dtype(const char* name, const Borrowed& t) {
  switch (t.code) {
    case TorchDType::kF32:
      return DType::kF32;
    case TorchDType::kBF16:
      return DType::kBF16;
    case TorchDType::kF64:
      return DType::kF64;
    case TorchDType::kF16:
    case TorchDType::kOther:
      break;
  }
  throw py::type_error(std::string(name) + " has dtype " + dtype_string(t) +
                       ", which tilenorm's host backends do not take");
}

TensorView view(const char* name, const Borrowed& t) {
  if (t.data == nullptr) return {};
  return {t.data, t.shape, host_dtype(name, t)};
}

Backend backend_of(const std::string& name) {
  const auto b = parse_backend(name);
  if (!b) throw py::value_error("backend '" + name + "' is not one of reference, cpu, tile, cuda");
  return *b;
}

void raise_if_error(const Status& s) {
  if (s.ok()) return;
  if (s.code() == StatusCode::kInvalidArgument) throw py::value_error("tilenorm: " + s.message());
  throw std::runtime_error("tilenorm: " + s.to_string());
}

CudaDType cuda_dtype(const Borrowed& t) {
  switch (t.code) {
    case TorchDType::kF32:
      return CudaDType::kF32;
    case TorchDType::kBF16:
      return CudaDType::kBF16;
    case TorchDType::kF16:
      return CudaDType::kF16;
    case TorchDType::kF64:
    case TorchDType::kOther:
      break;
  }
  throw py::type_error("x has dtype " + dtype_string(t) + ", which the cuda backend does not take");
}

CudaConstTensor device(const Borrowed& t) { return {t.data, t.shape}; }

// One CudaContext per device and stream; a context is not thread-safe, so calls on it hold its
// mutex. Kernels are queued on the caller's stream; nothing waits for them.
struct StreamContext {
  std::mutex mu;
  CudaContext context;
};

StreamContext& stream_context(int device, uintptr_t stream) {
  static std::mutex mu;
  static std::map<std::tuple<int, uintptr_t>, std::unique_ptr<StreamContext>> contexts;
  std::lock_guard<std::mutex> lock(mu);
  auto& c = contexts[{device, stream}];
  if (!c) c = std::make_unique<StreamContext>();
  return *c;
}

// Runs call(context, stream) on the device's and stream's context, without the GIL.
template <typename Call>
void run_cuda(int device, uintptr_t stream, const Call& call) {
  StreamContext& sc = stream_context(device, stream);
  Status s;
  {
    py::gil_scoped_release unlocked;
    std::lock_guard<std::mutex> lock(sc.mu);
    s = call(sc.context, reinterpret_cast<CUstream_st*>(stream));
  }
  raise_if_error(s);
}

// Runs call(options) on a host backend, without the GIL.
template <typename Call>
void run_host(int num_threads, const Call& call) {
  LayerNormOptions options;
  options.num_threads = num_threads;
  Status s;
  {
    py::gil_scoped_release unlocked;
    s = call(options);
  }
  raise_if_error(s);
}

Norm norm_of(const std::string& name) {
  const auto n = parse_norm(name);
  if (!n) throw py::value_error("norm '" + name + "' is not one of layernorm, rmsnorm");
  return *n;
}

// norm: "layernorm" or "rmsnorm" (beta and mean are None for RMSNorm; rstd is then rrms).
// residual and h: both None, or the fused add h = x + residual.
void forward(const std::string& norm_name, const std::string& backend, int64_t cols, py::handle x,
             py::handle residual, py::handle gamma, py::handle beta, double eps, py::handle y,
             py::handle h, py::handle mean, py::handle rstd, int num_threads, int device_index,
             uintptr_t stream) {
  const Backend b = backend_of(backend);
  const Norm norm = norm_of(norm_name);
  const Borrowed bx = borrow(x, cols, Layout::kRows), bres = borrow(residual, cols, Layout::kRows),
                 bg = borrow(gamma, cols, Layout::kColumns),
                 bb = borrow(beta, cols, Layout::kColumns), by = borrow(y, cols, Layout::kRows),
                 bh = borrow(h, cols, Layout::kRows), bm = borrow(mean, cols, Layout::kPerRow),
                 br = borrow(rstd, cols, Layout::kPerRow);
  if (b == Backend::kCuda) {
    const CudaNormForwardArgs a{.norm = norm,
                                .dtype = cuda_dtype(bx),
                                .x = device(bx),
                                .residual = device(bres),
                                .gamma = device(bg),
                                .beta = device(bb),
                                .eps = eps};
    const CudaNormForwardOutputs o{.y = {by.data, by.shape},
                                   .mean = {bm.data, bm.shape},
                                   .rstd = {br.data, br.shape},
                                   .h = {bh.data, bh.shape}};
    return run_cuda(device_index, stream,
                    [&](CudaContext& c, CUstream_st* s) { return cuda_norm_forward(c, a, o, s); });
  }
  if (norm == Norm::kRmsNorm) {
    const RmsNormForwardArgs args{.x = view("x", bx),
                                  .gamma = view("gamma", bg),
                                  .eps = eps,
                                  .residual = view("residual", bres)};
    const RmsNormForwardOutputs out{
        .y = view("y", by), .rrms = view("rrms", br), .h = view("h", bh)};
    return run_host(num_threads,
                    [&](const NormOptions& o) { return rmsnorm_forward(b, args, out, o); });
  }
  const LayerNormForwardArgs args{.x = view("x", bx),
                                  .gamma = view("gamma", bg),
                                  .beta = view("beta", bb),
                                  .eps = eps,
                                  .residual = view("residual", bres)};
  const LayerNormForwardOutputs out{
      .y = view("y", by), .mean = view("mean", bm), .rstd = view("rstd", br), .h = view("h", bh)};
  run_host(num_threads,
           [&](const LayerNormOptions& o) { return layernorm_forward(b, args, out, o); });
}

// dh_in: None, or the gradient arriving on the residual stream (added to dx).
void backward(const std::string& norm_name, const std::string& backend, int64_t cols, py::handle x,
              py::handle dy, py::handle gamma, py::handle mean, py::handle rstd, py::handle dh_in,
              py::handle dx, py::handle dgamma, py::handle dbeta, int num_threads, int device_index,
              uintptr_t stream) {
  const Backend b = backend_of(backend);
  const Norm norm = norm_of(norm_name);
  const Borrowed bx = borrow(x, cols, Layout::kRows), bdy = borrow(dy, cols, Layout::kRows),
                 bg = borrow(gamma, cols, Layout::kColumns),
                 bm = borrow(mean, cols, Layout::kPerRow), br = borrow(rstd, cols, Layout::kPerRow),
                 bdh = borrow(dh_in, cols, Layout::kRows), bdx = borrow(dx, cols, Layout::kRows),
                 bdg = borrow(dgamma, cols, Layout::kColumns),
                 bdb = borrow(dbeta, cols, Layout::kColumns);
  if (b == Backend::kCuda) {
    const CudaNormBackwardArgs a{.norm = norm,
                                 .dtype = cuda_dtype(bx),
                                 .x = device(bx),
                                 .dy = device(bdy),
                                 .gamma = device(bg),
                                 .mean = device(bm),
                                 .rstd = device(br),
                                 .dh_in = device(bdh)};
    const CudaNormBackwardOutputs o{.dx = {bdx.data, bdx.shape},
                                    .dgamma = {bdg.data, bdg.shape},
                                    .dbeta = {bdb.data, bdb.shape}};
    return run_cuda(device_index, stream,
                    [&](CudaContext& c, CUstream_st* s) { return cuda_norm_backward(c, a, o, s); });
  }
  if (norm == Norm::kRmsNorm) {
    const RmsNormBackwardArgs args{.x = view("x", bx),
                                   .dy = view("dy", bdy),
                                   .gamma = view("gamma", bg),
                                   .rrms = view("rrms", br),
                                   .dh_in = view("dh_in", bdh)};
    const RmsNormBackwardOutputs out{.dx = view("dx", bdx), .dgamma = view("dgamma", bdg)};
    return run_host(num_threads,
                    [&](const NormOptions& o) { return rmsnorm_backward(b, args, out, o); });
  }
  const LayerNormBackwardArgs args{.x = view("x", bx),
                                   .dy = view("dy", bdy),
                                   .gamma = view("gamma", bg),
                                   .mean = view("mean", bm),
                                   .rstd = view("rstd", br),
                                   .dh_in = view("dh_in", bdh)};
  const LayerNormBackwardOutputs out{
      .dx = view("dx", bdx), .dgamma = view("dgamma", bdg), .dbeta = view("dbeta", bdb)};
  run_host(num_threads,
           [&](const LayerNormOptions& o) { return layernorm_backward(b, args, out, o); });
}

// Empty when the backend can run here; otherwise why not.
std::string backend_unavailable(const std::string& backend) {
  const Backend b = backend_of(backend);
  if (b != Backend::kCuda) return {};
  const Status s = cuda_available();
  return s.ok() ? std::string() : s.message();
}

}  // namespace
}  // namespace tilenorm

PYBIND11_MODULE(_C, m) {
  m.doc() = "tilenorm LayerNorm / RMSNorm kernels on torch tensors (use tilenorm.torch)";
  m.def("norm_forward", &tilenorm::forward, py::arg("norm"), py::arg("backend"), py::arg("cols"),
        py::arg("x"), py::arg("residual"), py::arg("gamma"), py::arg("beta"), py::arg("eps"),
        py::arg("y"), py::arg("h"), py::arg("mean"), py::arg("rstd"), py::arg("num_threads"),
        py::arg("device"), py::arg("stream"));
  m.def("norm_backward", &tilenorm::backward, py::arg("norm"), py::arg("backend"), py::arg("cols"),
        py::arg("x"), py::arg("dy"), py::arg("gamma"), py::arg("mean"), py::arg("rstd"),
        py::arg("dh_in"), py::arg("dx"), py::arg("dgamma"), py::arg("dbeta"),
        py::arg("num_threads"), py::arg("device"), py::arg("stream"));
  m.def("backend_unavailable", &tilenorm::backend_unavailable, py::arg("backend"));
}
