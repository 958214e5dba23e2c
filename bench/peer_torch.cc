// libtorch (ATen, CPU) as a benchmark peer: at::native_layer_norm and
// at::native_layer_norm_backward with every output requested, f32 or bf16, at::set_num_threads.
// ATen allocates its outputs on every call; freed blocks are kept in the heap (mallopt, as a
// caching allocator would) so the timing is the kernel's, not page faults'.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <malloc.h>
#include <torch/version.h>

#include "bench_peers.h"

namespace tilenorm::bench {
namespace {

at::Tensor to_tensor(const std::vector<float>& v, at::IntArrayRef sizes, at::ScalarType st) {
  at::Tensor t =
      at::from_blob(const_cast<float*>(v.data()), sizes, at::TensorOptions().dtype(at::kFloat));
  return t.to(st).contiguous().clone();
}

std::vector<double> to_doubles(const at::Tensor& t) {
  const at::Tensor d = t.to(at::kDouble).contiguous().reshape({-1});
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

class TorchImpl : public Impl {
 public:
  std::string name() const override { return "torch"; }

  bool prepare(const BenchInputs& in, int threads, std::string*) override {
    static const bool heap_kept = [] {
      mallopt(M_MMAP_THRESHOLD, 1 << 30);
      mallopt(M_TRIM_THRESHOLD, 1 << 30);
      return true;
    }();
    (void)heap_kept;
    c10::InferenceMode guard;
    // Only here: besides OpenMP it resizes ATen's other pools, far too slow for the timed loop.
    if (at::get_num_threads() != threads) at::set_num_threads(threads);
    const at::ScalarType st = in.dtype == DType::kBF16 ? at::kBFloat16 : at::kFloat;
    x_ = to_tensor(in.x, {in.shape.rows, in.shape.C}, st);
    dy_ = to_tensor(in.dy, {in.shape.rows, in.shape.C}, st);
    gamma_ = to_tensor(in.gamma, {in.shape.C}, st);
    beta_ = to_tensor(in.beta, {in.shape.C}, st);
    C_ = in.shape.C;
    run(Direction::kForward);
    return true;
  }

  void run(Direction dir) override {
    c10::InferenceMode guard;
    const std::vector<int64_t> nshape = {C_};
    if (dir == Direction::kForward) {
      fwd_ = at::native_layer_norm(x_, nshape, gamma_, beta_, 1e-5);
    } else {
      bwd_ = at::native_layer_norm_backward(dy_, x_, nshape, std::get<1>(fwd_), std::get<2>(fwd_),
                                            gamma_, beta_, {true, true, true});
    }
  }

  BenchOutputs outputs() override {
    run(Direction::kForward);
    run(Direction::kBackward);
    return {to_doubles(std::get<0>(fwd_)), to_doubles(std::get<1>(fwd_)),
            to_doubles(std::get<2>(fwd_)), to_doubles(std::get<0>(bwd_)),
            to_doubles(std::get<1>(bwd_)), to_doubles(std::get<2>(bwd_))};
  }

  void release() override { *this = TorchImpl(); }

 private:
  at::Tensor x_, dy_, gamma_, beta_;
  std::tuple<at::Tensor, at::Tensor, at::Tensor> fwd_, bwd_;
  int64_t C_ = 0;
};

}  // namespace

Impl* make_torch_impl() { return new TorchImpl(); }

std::string torch_version() { return std::string("libtorch ") + TORCH_VERSION; }

}  // namespace tilenorm::bench
