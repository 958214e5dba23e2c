// `tilenorm forward` and `tilenorm backward` for LayerNorm and RMSNorm: .npy in, .npy out.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <initializer_list>
#include <memory>

#include "cli_common.h"
#include "common/npy.h"
#include "tilenorm/rmsnorm.h"

namespace tilenorm::cli {
namespace {

struct CommonArgs {
  std::string norm = "layernorm";
  std::string backend = "cpu";
  std::string dtype = "f32";
  std::string eps;  // empty: kDefaultEps
  std::string out;
  int threads = 0;
  bool json = false;
};

void add_common(CLI::App* cmd, CommonArgs* a, bool with_eps_help_for_backward) {
  cmd->add_option("--norm", a->norm, "layernorm | rmsnorm")->capture_default_str();
  cmd->add_option("--backend", a->backend, "reference | cpu | tile | cuda")->capture_default_str();
  cmd->add_option("--dtype", a->dtype,
                  "f32 | bf16 | f64: compute dtype; inputs (<f4, <f8 or <f2) are rounded to it "
                  "first; f64 (reference and cpu backends) also makes the statistics f64")
      ->capture_default_str();
  cmd->add_option("--eps", a->eps,
                  with_eps_help_for_backward
                      ? "epsilon of the forward used to compute mean/rstd (rrms) when they are not "
                        "given "
                        "(default 1e-5)"
                      : "epsilon added to the variance, finite and > 0 (default 1e-5)");
  cmd->add_option("--out", a->out, "output directory (created if missing)")->required();
  cmd->add_option("--threads", a->threads,
                  fmt::format("cpu backend threads, 0 = all, at most {}", kMaxThreads))
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "print a JSON summary on stdout");
}

struct Parsed {
  Norm norm = Norm::kLayerNorm;
  Backend backend;
  DType dtype;
  double eps = kDefaultEps;
};

Status parse_common(const CommonArgs& a, Parsed* p) {
  if (auto n = parse_norm(a.norm))
    p->norm = *n;
  else
    return Status::invalid_argument(
        fmt::format("--norm '{}' is unknown (choose layernorm or rmsnorm)", a.norm));
  TN_RETURN_IF_ERROR(parse_backend_arg(a.backend, &p->backend));
  TN_RETURN_IF_ERROR(parse_dtype_arg(a.dtype, &p->dtype, /*allow_f64=*/true));
  if (p->dtype == DType::kF64 && p->backend != Backend::kReference && p->backend != Backend::kCpu)
    return Status::invalid_argument(fmt::format(
        "--dtype f64 runs on the reference and cpu backends only (got --backend {})", a.backend));
  if (!a.eps.empty()) TN_RETURN_IF_ERROR(parse_eps_arg(a.eps, &p->eps));
  if (a.threads < 0 || a.threads > kMaxThreads)
    return Status::invalid_argument(
        fmt::format("--threads must be between 0 and {}, got {}", kMaxThreads, a.threads));
  return {};
}

Status read_input(const char* flag, const std::string& path, DType dtype, Tensor* t) {
  Status s = npy_read(path, dtype, t);
  if (!s.ok()) return Status(s.code(), fmt::format("{} {}", flag, s.message()));
  return {};
}

// Named results of one run; an undefined tensor is an output this norm or run does not have.
using Named = std::vector<std::pair<std::string, Tensor>>;

Named collect(std::initializer_list<std::pair<const char*, Tensor*>> list) {
  Named named;
  for (auto [name, t] : list) named.emplace_back(name, std::move(*t));
  return named;
}

// The API names the residual-stream gradient dh_in; the CLI calls it --dresidual.
Status name_cli_args(Status s) {
  if (!s.ok() && s.message().rfind("dh_in ", 0) == 0)
    return Status(s.code(), "--dresidual: " + s.message());
  return s;
}

// One forward of `p.norm`: y, the statistics (mean and rstd, or rrms) and h with a residual.
Status run_forward(const Parsed& p, const ConstTensorView& x, const ConstTensorView& residual,
                   const ConstTensorView& gamma, const ConstTensorView& beta,
                   const NormOptions& opt, Named* out) {
  if (p.norm == Norm::kRmsNorm) {
    RmsNormForwardResult r;
    TN_RETURN_IF_ERROR(rmsnorm_forward(
        p.backend, {.x = x, .gamma = gamma, .eps = p.eps, .residual = residual}, &r, opt));
    *out = collect({{"y", &r.y}, {"rrms", &r.rrms}, {"h", &r.h}});
    return {};
  }
  LayerNormForwardResult r;
  TN_RETURN_IF_ERROR(layernorm_forward(
      p.backend, {.x = x, .gamma = gamma, .beta = beta, .eps = p.eps, .residual = residual}, &r,
      opt));
  *out = collect({{"y", &r.y}, {"mean", &r.mean}, {"rstd", &r.rstd}, {"h", &r.h}});
  return {};
}

Tensor take(Named& named, const std::string& name) {
  for (auto& [n, t] : named)
    if (n == name) return std::move(t);
  return {};
}

// Writes the defined outputs all-or-nothing and prints the summary.
int finish(const char* command, const CommonArgs& a, const Parsed& p, const Named& named,
           const RunReport& report, double seconds) {
  std::vector<std::pair<std::string, ConstTensorView>> outputs;
  outputs.reserve(named.size());
  for (const auto& [name, t] : named)
    if (t.defined()) outputs.emplace_back(name, t.cview());
  if (Status s = ensure_dir(a.out); !s.ok()) return report_error(s);
  std::vector<std::pair<std::string, ConstTensorView>> files;
  files.reserve(outputs.size());
  for (const auto& [name, t] : outputs) files.emplace_back(a.out + "/" + name + ".npy", t);
  if (Status s = npy_write_all(files); !s.ok()) return report_error(s);
  if (a.json) {
    nlohmann::json j;
    j["command"] = command;
    j["norm"] = norm_name(p.norm);
    j["backend"] = backend_name(p.backend);
    j["dtype"] = dtype_name(p.dtype);
    j["eps"] = p.eps;
    j["seconds"] = seconds;
    j["report"] = report_json(report);
    for (size_t i = 0; i < outputs.size(); ++i) {
      nlohmann::json o = tensor_summary(outputs[i].second);
      o["file"] = files[i].first;
      j["outputs"][outputs[i].first] = o;
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (size_t i = 0; i < outputs.size(); ++i)
      std::printf("wrote %s  %s\n", files[i].first.c_str(),
                  tensor_summary_line(outputs[i].second).c_str());
    std::printf("%s on backend %s, path %s, %.3f s\n", norm_name(p.norm), backend_name(p.backend),
                report.path.empty() ? "-" : report.path.c_str(), seconds);
  }
  return kExitOk;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

ConstTensorView view_or_empty(const Tensor& t) {
  return t.defined() ? t.cview() : ConstTensorView{};
}

}  // namespace

void add_forward_command(CLI::App& app) {
  struct Args : CommonArgs {
    std::string x, gamma, beta, residual;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "forward",
      "Norm forward over the last dim: writes DIR/y.npy and DIR/mean.npy, DIR/rstd.npy "
      "(layernorm) or DIR/rrms.npy (rmsnorm); with --residual also DIR/h.npy");
  cmd->add_option("--x", args->x, "input [..., C] (.npy, <f4 or <f8)")->required();
  cmd->add_option("--gamma", args->gamma, "scale [C]")->required();
  cmd->add_option("--beta", args->beta, "shift [C] (default 0; layernorm only)");
  cmd->add_option("--residual", args->residual,
                  "residual stream, same shape as x: h = x + residual is normalized and written "
                  "to DIR/h.npy");
  add_common(cmd, args.get(), false);
  cmd->callback([args] {
    Parsed p;
    if (Status s = parse_common(*args, &p); !s.ok()) throw CLI::RuntimeError(report_error(s));
    if (p.norm == Norm::kRmsNorm && !args->beta.empty())
      throw CLI::RuntimeError(report_error(fmt::format(
          "--beta '{}' is not taken by --norm rmsnorm (RMSNorm has no shift)", args->beta)));
    Tensor x, gamma, beta, residual;
    for (auto [flag, path, t] : {std::tuple{"--x", &args->x, &x},
                                 {"--gamma", &args->gamma, &gamma},
                                 {"--beta", &args->beta, &beta},
                                 {"--residual", &args->residual, &residual}}) {
      if (path->empty()) continue;
      if (Status s = read_input(flag, *path, p.dtype, t); !s.ok())
        throw CLI::RuntimeError(report_error(s));
    }
    RunReport report;
    NormOptions opt{args->threads, &report};
    Named r;
    const auto t0 = std::chrono::steady_clock::now();
    Status s = run_forward(p, x.cview(), view_or_empty(residual), gamma.cview(),
                           view_or_empty(beta), opt, &r);
    if (!s.ok()) throw CLI::RuntimeError(report_error(s));
    const int rc = finish("forward", *args, p, r, report, seconds_since(t0));
    if (rc != kExitOk) throw CLI::RuntimeError(rc);
  });
}

void add_backward_command(CLI::App& app) {
  struct Args : CommonArgs {
    std::string x, dy, gamma, mean, rstd, rrms, dresidual;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "backward",
      "Norm backward: writes DIR/dx.npy, DIR/dgamma.npy and DIR/dbeta.npy (layernorm only); "
      "without --mean/--rstd (--rrms) the same backend's forward computes them");
  cmd->add_option("--x", args->x, "forward input [..., C] (h when the forward took a residual)")
      ->required();
  cmd->add_option("--dy", args->dy, "upstream gradient, same shape as x")->required();
  cmd->add_option("--gamma", args->gamma, "scale [C]")->required();
  cmd->add_option("--mean", args->mean, "saved mean [...] (with --rstd; layernorm)");
  cmd->add_option("--rstd", args->rstd, "saved 1/sqrt(var + eps) [...] (with --mean; layernorm)");
  cmd->add_option("--rrms", args->rrms, "saved 1/sqrt(mean(x^2) + eps) [...] (rmsnorm)");
  cmd->add_option("--dresidual", args->dresidual,
                  "gradient arriving on the residual stream (the API's dh_in), same shape as x; "
                  "added to dx");
  add_common(cmd, args.get(), true);
  cmd->callback([args] {
    Parsed p;
    if (Status s = parse_common(*args, &p); !s.ok()) throw CLI::RuntimeError(report_error(s));
    const bool has_mean = norm_traits(p.norm).has_mean;
    if (!has_mean && (!args->mean.empty() || !args->rstd.empty()))
      throw CLI::RuntimeError(
          report_error("--mean/--rstd are not taken by --norm rmsnorm (its statistic is --rrms)"));
    if (has_mean && !args->rrms.empty())
      throw CLI::RuntimeError(report_error(fmt::format(
          "--rrms '{}' is not taken by --norm layernorm (its statistics are --mean and --rstd)",
          args->rrms)));
    if (args->mean.empty() != args->rstd.empty())
      throw CLI::RuntimeError(report_error(fmt::format(
          "--mean and --rstd go together (got --mean '{}', --rstd '{}')", args->mean, args->rstd)));
    Tensor x, dy, gamma, dh_in, mean, rstd;
    for (auto [flag, path, t] : {std::tuple{"--x", &args->x, &x},
                                 {"--dy", &args->dy, &dy},
                                 {"--gamma", &args->gamma, &gamma},
                                 {"--dresidual", &args->dresidual, &dh_in}}) {
      if (path->empty()) continue;
      if (Status s = read_input(flag, *path, p.dtype, t); !s.ok())
        throw CLI::RuntimeError(report_error(s));
    }
    RunReport report;
    NormOptions opt{args->threads, &report};
    const auto t0 = std::chrono::steady_clock::now();
    const bool given = !args->mean.empty() || !args->rrms.empty();
    if (given) {
      for (auto [flag, path, t] : {std::tuple{"--mean", &args->mean, &mean},
                                   {"--rstd", &args->rstd, &rstd},
                                   {"--rrms", &args->rrms, &rstd}}) {
        if (path->empty()) continue;
        if (Status s = read_input(flag, *path, norm_stat_dtype(p.dtype), t); !s.ok())
          throw CLI::RuntimeError(report_error(s));
      }
    } else {
      // A rank-1 x has one row; its statistics have shape [1].
      Named f;
      Status s = run_forward(p, x.cview(), {}, gamma.cview(), {}, opt, &f);
      if (!s.ok()) throw CLI::RuntimeError(report_error(s));
      mean = take(f, "mean");
      rstd = take(f, has_mean ? "rstd" : "rrms");
    }
    Named r;
    Status s;
    if (p.norm == Norm::kRmsNorm) {
      RmsNormBackwardResult b;
      s = rmsnorm_backward(p.backend,
                           {.x = x.cview(),
                            .dy = dy.cview(),
                            .gamma = gamma.cview(),
                            .rrms = rstd.cview(),
                            .dh_in = view_or_empty(dh_in)},
                           &b, opt);
      r = collect({{"dx", &b.dx}, {"dgamma", &b.dgamma}});
    } else {
      LayerNormBackwardResult b;
      s = layernorm_backward(p.backend,
                             {.x = x.cview(),
                              .dy = dy.cview(),
                              .gamma = gamma.cview(),
                              .mean = mean.cview(),
                              .rstd = rstd.cview(),
                              .dh_in = view_or_empty(dh_in)},
                             &b, opt);
      r = collect({{"dx", &b.dx}, {"dgamma", &b.dgamma}, {"dbeta", &b.dbeta}});
    }
    if (!s.ok()) throw CLI::RuntimeError(report_error(name_cli_args(s)));
    const int rc = finish("backward", *args, p, r, report, seconds_since(t0));
    if (rc != kExitOk) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tilenorm::cli
