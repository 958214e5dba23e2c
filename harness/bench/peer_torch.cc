// libtorch (ATen, CPU) as a benchmark peer: at::native_layer_norm and
// at::native_layer_norm_backward with every output requested, f32 or bf16, at::set_num_threads.
// RMSNorm (1.13 has no fused one): the composed ops x * rsqrt(mean(x^2) + eps) * w and their
// autograd backward. The residual add: h = x + residual before the norm, dx = norm_bwd + dh_in.
// ATen allocates its outputs on every call; freed blocks are kept in the heap (mallopt, as a
// caching allocator would) so the timing is the kernel's, not page faults'.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <malloc.h>
#include <torch/csrc/autograd/autograd.h>
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
    // Only here: besides OpenMP it resizes ATen's other pools, far too slow for the timed loop.
    if (at::get_num_threads() != threads) at::set_num_threads(threads);
    const at::ScalarType st = in.dtype == DType::kBF16 ? at::kBFloat16 : at::kFloat;
    c10::InferenceMode guard(in.op.norm == Norm::kLayerNorm);
    op_ = in.op;
    x_ = to_tensor(in.x, {in.shape.rows, in.shape.C}, st);
    dy_ = to_tensor(in.dy, {in.shape.rows, in.shape.C}, st);
    gamma_ = to_tensor(in.gamma, {in.shape.C}, st);
    beta_ = to_tensor(in.beta, {in.shape.C}, st);
    if (op_.residual) {
      residual_ = to_tensor(in.residual, {in.shape.rows, in.shape.C}, st);
      dh_in_ = to_tensor(in.dh_in, {in.shape.rows, in.shape.C}, st);
    }
    C_ = in.shape.C;
    run(Direction::kForward);
    return true;
  }

  void run(Direction dir) override {
    if (op_.norm == Norm::kRmsNorm) return run_rms(dir);
    c10::InferenceMode guard;
    const std::vector<int64_t> nshape = {C_};
    if (dir == Direction::kForward) {
      if (op_.residual) h_ = at::add(x_, residual_);
      fwd_ = at::native_layer_norm(op_.residual ? h_ : x_, nshape, gamma_, beta_, 1e-5);
    } else {
      bwd_ = at::native_layer_norm_backward(dy_, op_.residual ? h_ : x_, nshape, std::get<1>(fwd_),
                                            std::get<2>(fwd_), gamma_, beta_, {true, true, true});
      if (op_.residual) std::get<0>(bwd_).add_(dh_in_);
    }
  }

  // Forward builds the autograd graph (h, rrms and y kept for backward); backward runs it with
  // the graph retained, so it can be timed again.
  void run_rms(Direction dir) {
    if (dir == Direction::kForward) {
      at::Tensor in = x_.detach().requires_grad_(!op_.residual);
      if (op_.residual) {
        h_ = at::add(x_, residual_);
        in = h_.detach().requires_grad_(true);
      }
      w_ = gamma_.detach().requires_grad_(true);
      rrms_ = at::rsqrt(in.pow(2).mean(-1, true) + 1e-5);
      y_ = in * rrms_ * w_;
      in_ = in;
      return;
    }
    auto grads = torch::autograd::grad({y_}, {in_, w_}, {dy_}, /*retain_graph=*/true);
    if (op_.residual) grads[0].add_(dh_in_);
    dx_ = grads[0];
    dw_ = grads[1];
  }

  BenchOutputs outputs() override {
    run(Direction::kForward);
    run(Direction::kBackward);
    const std::vector<double> h = op_.residual ? to_doubles(h_) : std::vector<double>{};
    if (op_.norm == Norm::kRmsNorm)
      return {to_doubles(y_.detach()),
              {},
              to_doubles(rrms_.detach()),
              to_doubles(dx_),
              to_doubles(dw_),
              {},
              h};
    return {to_doubles(std::get<0>(fwd_)),
            to_doubles(std::get<1>(fwd_)),
            to_doubles(std::get<2>(fwd_)),
            to_doubles(std::get<0>(bwd_)),
            to_doubles(std::get<1>(bwd_)),
            to_doubles(std::get<2>(bwd_)),
            h};
  }

  void release() override { *this = TorchImpl(); }

 private:
  NormOp op_;
  at::Tensor x_, dy_, gamma_, beta_, residual_, dh_in_, h_;
  std::tuple<at::Tensor, at::Tensor, at::Tensor> fwd_, bwd_;
  at::Tensor in_, w_, rrms_, y_, dx_, dw_;  // RMSNorm's graph and gradients
  int64_t C_ = 0;
};

}  // namespace

Impl* make_torch_impl() { return new TorchImpl(); }

std::string torch_version() { return std::string("libtorch ") + TORCH_VERSION; }

}  // namespace tilenorm::bench
