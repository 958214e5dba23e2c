#include "harness/conformance/tt_kernels.h"

#include <fmt/format.h>

#include <map>
#include <tuple>
#include <utility>

#include "reference/norm.h"
#include "tile/tt/norm_family.h"

namespace tilenorm::conformance {

namespace {

std::vector<float> floats(const ConstTensorView& t) {
  const std::vector<double> d = reference::load_f64(t);
  return {d.begin(), d.end()};
}

void store(const TensorView& t, const std::vector<float>& v) {
  reference::store_f64(t, std::vector<double>(v.begin(), v.end()));
}

// 1 / v per element, in double (rms <-> rrms).
std::vector<float> reciprocal(const std::vector<float>& v) {
  std::vector<float> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = float(1.0 / double(v[i]));
  return r;
}

Status supported(const ConstTensorView& x, bool residual) {
  if (x.dtype != DType::kBF16)
    return Status::unsupported(
        fmt::format("tt-train's norm kernels take bf16 only (case: {})", dtype_name(x.dtype)));
  if (residual) return Status::unsupported("tt-train has no fused residual-add norm op");
  return {};
}

struct Runner {
  std::string root;
  uint32_t* compiled;
  uint32_t* cached;

  Status run(const Case& c, tt::TtNormOp op, const tt::TtNormInputs& in, tt::TtNormOutputs* out,
             std::string* path, std::vector<std::string>* findings) const {
    tt::DeviceConfig config{.sanitizer = tt::SanitizerMode::kWarn, .kernel_root = root};
    if (c.tile_l1_kib != 0) config.l1_size = c.tile_l1_kib * 1024;
    if (c.tile_grid != 0) config.grid_x = config.grid_y = c.tile_grid;
    tt::Device device(config);
    Status s = tt::run_tt_norm_op(device, op, in, out);
    *path = out->plan.everything_fits_in_l1                ? "fit"
            : out->plan.everything_except_gamma_fits_in_l1 ? "fit-x"
                                                           : "block";
    if (compiled != nullptr) *compiled += out->report.kernels_compiled;
    if (cached != nullptr) *cached += out->report.kernels_cached;
    // One line per distinct (kind, file, line), with the number of cores that raised it.
    std::map<std::tuple<std::string, std::string, uint32_t>, std::pair<int, std::string>> seen;
    std::vector<std::tuple<std::string, std::string, uint32_t>> order;
    for (const tt::Finding& f : out->report.findings) {
      std::string file = f.file;
      if (file.rfind(root, 0) == 0) file = file.substr(root.size() + (root.back() == '/' ? 0 : 1));
      const auto key = std::make_tuple(f.kind, file, f.line);
      auto [it, fresh] = seen.try_emplace(key, 0, f.message);
      if (fresh) order.push_back(key);
      ++it->second.first;
    }
    for (const auto& key : order) {
      const auto& [kind, file, line] = key;
      const auto& [n, message] = seen.at(key);
      findings->push_back(fmt::format("{} at {}:{} ({}x): {}", kind, file, line, n, message));
    }
    return s;
  }
};

}  // namespace

Status check_tt_kernels(const std::string& root) {
  for (tt::TtNormOp op : {tt::TtNormOp::kLayerNormFw, tt::TtNormOp::kLayerNormBw,
                          tt::TtNormOp::kRmsNormFw, tt::TtNormOp::kRmsNormBw})
    if (Status s = tt::check_tt_norm_kernels(root, op); !s.ok()) return s;
  return {};
}

ExternalOps tt_kernel_ops(const std::string& root, uint32_t* compiled, uint32_t* cached) {
  const Runner runner{root, compiled, cached};
  ExternalOps ops;
  ops.forward = [runner](const Case& c, const NormForwardArgs& a, const NormForwardOutputs& out,
                         std::string* path, std::vector<std::string>* findings) -> Status {
    if (Status s = supported(a.x, !a.residual.empty()); !s.ok()) return s;
    const bool layer = a.norm == Norm::kLayerNorm;
    const std::vector<float> x = floats(a.x), gamma = floats(a.gamma),
                             beta = layer ? floats(a.beta) : std::vector<float>();
    tt::TtNormOutputs o;
    Status s = runner.run(c, layer ? tt::TtNormOp::kLayerNormFw : tt::TtNormOp::kRmsNormFw,
                          {.rows = a.x.shape.rows(),
                           .C = a.x.shape.cols(),
                           .eps = float(a.eps),
                           .x = x.data(),
                           .gamma = gamma.data(),
                           .beta = layer ? beta.data() : nullptr},
                          &o, path, findings);
    if (!s.ok()) return s;
    store(out.y, o.y);
    if (layer) {
      store(out.mean, o.mean);
      store(out.rstd, o.rstd);
    } else {
      store(out.rstd, reciprocal(o.rms));
    }
    return s;
  };
  ops.backward = [runner](const Case& c, const NormBackwardArgs& a, const NormBackwardOutputs& out,
                          std::string* path, std::vector<std::string>* findings) -> Status {
    if (Status s = supported(a.x, !a.dh_in.empty()); !s.ok()) return s;
    const bool layer = a.norm == Norm::kLayerNorm;
    const std::vector<float> x = floats(a.x), dy = floats(a.dy), gamma = floats(a.gamma),
                             stat = floats(a.rstd);
    const std::vector<float> mean = layer ? floats(a.mean) : std::vector<float>(),
                             rms = layer ? std::vector<float>() : reciprocal(stat);
    tt::TtNormOutputs o;
    Status s = runner.run(c, layer ? tt::TtNormOp::kLayerNormBw : tt::TtNormOp::kRmsNormBw,
                          {.rows = a.x.shape.rows(),
                           .C = a.x.shape.cols(),
                           .x = x.data(),
                           .dy = dy.data(),
                           .gamma = gamma.data(),
                           .mean = layer ? mean.data() : nullptr,
                           .rstd = layer ? stat.data() : nullptr,
                           .rms = layer ? nullptr : rms.data()},
                          &o, path, findings);
    if (!s.ok()) return s;
    store(out.dx, o.dx);
    reference::store_f64(out.dgamma, o.dgamma);
    if (layer) reference::store_f64(out.dbeta, o.dbeta);
    return s;
  };
  return ops;
}

}  // namespace tilenorm::conformance
