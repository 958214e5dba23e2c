// oneDNN 2.x layer normalization as a benchmark peer: forward_training and backward
// (diff_src, diff_scale, diff_shift), f32 or bf16 data, f32 scale/shift and statistics (2.6
// offers nothing else). Debian's libdnnl uses OpenMP: the thread count is omp_set_num_threads.
#include <omp.h>
#include <oneapi/dnnl/dnnl_version.h>

#include <cmath>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "bench_peers.h"

namespace tilenorm::bench {
namespace {

using dnnl::memory;

class OnednnImpl : public Impl {
 public:
  std::string name() const override { return "onednn"; }

  bool prepare(const BenchInputs& in, int threads, std::string* why) override {
    // 2.6 has layer normalization only: RMS normalization (dnnl_rms_norm) came in 3.1, and no
    // version fuses a residual add into it.
    if (in.op.norm != Norm::kLayerNorm || in.op.residual) {
      *why = in.op.residual ? "oneDNN has no fused residual add"
                            : onednn_version() + " has no RMS normalization";
      return false;
    }
    try {
      threads_ = threads;
      omp_set_num_threads(threads);
      bf16_ = in.dtype == DType::kBF16;
      const memory::data_type ddt = bf16_ ? memory::data_type::bf16 : memory::data_type::f32;
      const memory::desc data_md({in.shape.rows, in.shape.C}, ddt, memory::format_tag::ab);
      const memory::desc stat_md({in.shape.rows}, memory::data_type::f32, memory::format_tag::a);
      const memory::desc ss_md({in.shape.C}, memory::data_type::f32, memory::format_tag::a);
      const auto flags =
          dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
      const dnnl::layer_normalization_forward::desc fd(dnnl::prop_kind::forward_training, data_md,
                                                       stat_md, 1e-5f, flags);
      const dnnl::layer_normalization_forward::primitive_desc fpd(fd, eng_);
      const dnnl::layer_normalization_backward::desc bd(dnnl::prop_kind::backward, data_md, data_md,
                                                        stat_md, 1e-5f, flags);
      const dnnl::layer_normalization_backward::primitive_desc bpd(bd, eng_, fpd);
      fwd_ = dnnl::layer_normalization_forward(fpd);
      bwd_ = dnnl::layer_normalization_backward(bpd);
      src_ = memory(data_md, eng_);
      dst_ = memory(data_md, eng_);
      dy_ = memory(data_md, eng_);
      dx_ = memory(data_md, eng_);
      mean_ = memory(stat_md, eng_);
      var_ = memory(stat_md, eng_);
      scale_ = memory(ss_md, eng_);
      shift_ = memory(ss_md, eng_);
      dscale_ = memory(ss_md, eng_);
      dshift_ = memory(ss_md, eng_);
      fill(src_, in.x, bf16_);
      fill(dy_, in.dy, bf16_);
      fill(scale_, in.gamma, false);
      fill(shift_, in.beta, false);
      fargs_ = {{DNNL_ARG_SRC, src_},      {DNNL_ARG_DST, dst_},     {DNNL_ARG_MEAN, mean_},
                {DNNL_ARG_VARIANCE, var_}, {DNNL_ARG_SCALE, scale_}, {DNNL_ARG_SHIFT, shift_}};
      // 2.6 refuses to execute backward unless shift is passed too, although it is not read.
      bargs_ = {{DNNL_ARG_SRC, src_},          {DNNL_ARG_DIFF_DST, dy_},
                {DNNL_ARG_MEAN, mean_},        {DNNL_ARG_VARIANCE, var_},
                {DNNL_ARG_SCALE, scale_},      {DNNL_ARG_SHIFT, shift_},
                {DNNL_ARG_DIFF_SRC, dx_},      {DNNL_ARG_DIFF_SCALE, dscale_},
                {DNNL_ARG_DIFF_SHIFT, dshift_}};
      if (fpd.workspace_desc().get_size() != 0) {
        ws_ = memory(fpd.workspace_desc(), eng_);
        fargs_[DNNL_ARG_WORKSPACE] = ws_;
        bargs_[DNNL_ARG_WORKSPACE] = ws_;
      }
      run(Direction::kForward);
      return true;
    } catch (const dnnl::error& e) {
      *why = e.what();
      return false;
    }
  }

  void run(Direction dir) override {
    omp_set_num_threads(threads_);
    if (dir == Direction::kForward) {
      fwd_.execute(strm_, fargs_);
    } else {
      bwd_.execute(strm_, bargs_);
    }
    strm_.wait();
  }

  BenchOutputs outputs() override {
    run(Direction::kForward);
    run(Direction::kBackward);
    BenchOutputs o{get(dst_, bf16_), get(mean_, false),   get(var_, false),
                   get(dx_, bf16_),  get(dscale_, false), get(dshift_, false)};
    for (double& v : o.rstd) v = 1.0 / std::sqrt(v + 1e-5);  // oneDNN returns the variance
    return o;
  }

  void release() override {
    src_ = dst_ = dy_ = dx_ = mean_ = var_ = scale_ = shift_ = dscale_ = dshift_ = ws_ = memory();
    fargs_.clear();
    bargs_.clear();
  }

 private:
  static void fill(memory& m, const std::vector<float>& v, bool bf16_data) {
    if (bf16_data) {
      auto* p = static_cast<uint16_t*>(m.get_data_handle());
      for (size_t i = 0; i < v.size(); ++i) p[i] = float_to_bf16(v[i]).bits;
    } else {
      std::memcpy(m.get_data_handle(), v.data(), v.size() * sizeof(float));
    }
  }
  static std::vector<double> get(const memory& m, bool bf16_data) {
    const size_t n = m.get_desc().get_size() / (bf16_data ? 2 : 4);
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i) {
      v[i] = bf16_data ? bf16_to_float(bf16{static_cast<const uint16_t*>(m.get_data_handle())[i]})
                       : static_cast<const float*>(m.get_data_handle())[i];
    }
    return v;
  }

  dnnl::engine eng_{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm_{eng_};
  dnnl::layer_normalization_forward fwd_;
  dnnl::layer_normalization_backward bwd_;
  memory src_, dst_, dy_, dx_, mean_, var_, scale_, shift_, dscale_, dshift_, ws_;
  std::unordered_map<int, memory> fargs_, bargs_;
  int threads_ = 1;
  bool bf16_ = false;
};

}  // namespace

Impl* make_onednn_impl() { return new OnednnImpl(); }

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch);
}

}  // namespace tilenorm::bench
