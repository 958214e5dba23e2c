// `tilenorm forward` and `tilenorm backward`: .npy in, .npy out.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "cli_common.h"
#include "common/npy.h"

namespace tilenorm::cli {
namespace {

struct CommonArgs {
  std::string backend = "cpu";
  std::string dtype = "f32";
  std::string eps;  // empty: kDefaultEps
  std::string out;
  int threads = 0;
  bool json = false;
};

void add_common(CLI::App* cmd, CommonArgs* a, bool with_eps_help_for_backward) {
  cmd->add_option("--backend", a->backend, "reference | cpu | tile | cuda")->capture_default_str();
  cmd->add_option("--dtype", a->dtype,
                  "f32 | bf16 | f64: compute dtype; inputs (<f4, <f8 or <f2) are rounded to it "
                  "first; f64 (reference backend only) also makes the statistics f64")
      ->capture_default_str();
  cmd->add_option("--eps", a->eps,
                  with_eps_help_for_backward
                      ? "epsilon of the forward used to compute mean/rstd when they are not given "
                        "(default 1e-5)"
                      : "epsilon added to the variance, finite and > 0 (default 1e-5)");
  cmd->add_option("--out", a->out, "output directory (created if missing)")->required();
  cmd->add_option("--threads", a->threads,
                  fmt::format("cpu backend threads, 0 = all, at most {}", kMaxThreads))
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "print a JSON summary on stdout");
}

struct Parsed {
  Backend backend;
  DType dtype;
  double eps = kDefaultEps;
};

Status parse_common(const CommonArgs& a, Parsed* p) {
  TN_RETURN_IF_ERROR(parse_backend_arg(a.backend, &p->backend));
  TN_RETURN_IF_ERROR(parse_dtype_arg(a.dtype, &p->dtype, /*allow_f64=*/true));
  if (p->dtype == DType::kF64 && p->backend != Backend::kReference)
    return Status::invalid_argument(fmt::format(
        "--dtype f64 runs on the reference backend only (got --backend {})", a.backend));
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

// Writes the named outputs all-or-nothing and prints the summary.
int finish(const char* command, const CommonArgs& a, const Parsed& p,
           const std::vector<std::pair<std::string, ConstTensorView>>& outputs,
           const RunReport& report, double seconds) {
  if (Status s = ensure_dir(a.out); !s.ok()) return report_error(s);
  std::vector<std::pair<std::string, ConstTensorView>> files;
  for (const auto& [name, t] : outputs) files.emplace_back(a.out + "/" + name + ".npy", t);
  if (Status s = npy_write_all(files); !s.ok()) return report_error(s);
  if (a.json) {
    nlohmann::json j;
    j["command"] = command;
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
    std::printf("backend %s, path %s, %.3f s\n", backend_name(p.backend),
                report.path.empty() ? "-" : report.path.c_str(), seconds);
  }
  return kExitOk;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void add_forward_command(CLI::App& app) {
  struct Args : CommonArgs {
    std::string x, gamma, beta;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "forward",
      "LayerNorm forward over the last dim: writes DIR/y.npy, DIR/mean.npy, DIR/rstd.npy");
  cmd->add_option("--x", args->x, "input [..., C] (.npy, <f4 or <f8)")->required();
  cmd->add_option("--gamma", args->gamma, "scale [C]")->required();
  cmd->add_option("--beta", args->beta, "shift [C] (default 0)");
  add_common(cmd, args.get(), false);
  cmd->callback([args] {
    Parsed p;
    if (Status s = parse_common(*args, &p); !s.ok()) throw CLI::RuntimeError(report_error(s));
    Tensor x, gamma, beta;
    for (auto [flag, path, t] : {std::tuple{"--x", &args->x, &x},
                                 {"--gamma", &args->gamma, &gamma},
                                 {"--beta", &args->beta, &beta}}) {
      if (path->empty()) continue;
      if (Status s = read_input(flag, *path, p.dtype, t); !s.ok())
        throw CLI::RuntimeError(report_error(s));
    }
    RunReport report;
    LayerNormOptions opt{args->threads, &report};
    LayerNormForwardResult r;
    const auto t0 = std::chrono::steady_clock::now();
    Status s = layernorm_forward(
        p.backend,
        {x.cview(), gamma.cview(), beta.defined() ? beta.cview() : ConstTensorView{}, p.eps}, &r,
        opt);
    if (!s.ok()) throw CLI::RuntimeError(report_error(s));
    const double secs = seconds_since(t0);
    const int rc = finish("forward", *args, p,
                          {{"y", r.y.cview()}, {"mean", r.mean.cview()}, {"rstd", r.rstd.cview()}},
                          report, secs);
    if (rc != kExitOk) throw CLI::RuntimeError(rc);
  });
}

void add_backward_command(CLI::App& app) {
  struct Args : CommonArgs {
    std::string x, dy, gamma, mean, rstd;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "backward",
      "LayerNorm backward: writes DIR/dx.npy, DIR/dgamma.npy, DIR/dbeta.npy; without --mean/--rstd "
      "the same backend's forward computes them");
  cmd->add_option("--x", args->x, "forward input [..., C]")->required();
  cmd->add_option("--dy", args->dy, "upstream gradient, same shape as x")->required();
  cmd->add_option("--gamma", args->gamma, "scale [C]")->required();
  cmd->add_option("--mean", args->mean, "saved mean [...] (with --rstd)");
  cmd->add_option("--rstd", args->rstd, "saved 1/sqrt(var + eps) [...] (with --mean)");
  add_common(cmd, args.get(), true);
  cmd->callback([args] {
    Parsed p;
    if (Status s = parse_common(*args, &p); !s.ok()) throw CLI::RuntimeError(report_error(s));
    if (args->mean.empty() != args->rstd.empty())
      throw CLI::RuntimeError(report_error(fmt::format(
          "--mean and --rstd go together (got --mean '{}', --rstd '{}')", args->mean, args->rstd)));
    Tensor x, dy, gamma, mean, rstd;
    for (auto [flag, path, t] : {std::tuple{"--x", &args->x, &x},
                                 {"--dy", &args->dy, &dy},
                                 {"--gamma", &args->gamma, &gamma}}) {
      if (Status s = read_input(flag, *path, p.dtype, t); !s.ok())
        throw CLI::RuntimeError(report_error(s));
    }
    RunReport report;
    LayerNormOptions opt{args->threads, &report};
    const auto t0 = std::chrono::steady_clock::now();
    if (!args->mean.empty()) {
      for (auto [flag, path, t] :
           {std::tuple{"--mean", &args->mean, &mean}, {"--rstd", &args->rstd, &rstd}}) {
        if (Status s = read_input(flag, *path, norm_stat_dtype(p.dtype), t); !s.ok())
          throw CLI::RuntimeError(report_error(s));
      }
    } else {
      // A rank-1 x has one row; its statistics have shape [1].
      LayerNormForwardResult f;
      Status s = layernorm_forward(p.backend, {x.cview(), gamma.cview(), {}, p.eps}, &f, opt);
      if (!s.ok()) throw CLI::RuntimeError(report_error(s));
      mean = std::move(f.mean);
      rstd = std::move(f.rstd);
    }
    LayerNormBackwardResult r;
    Status s = layernorm_backward(
        p.backend, {x.cview(), dy.cview(), gamma.cview(), mean.cview(), rstd.cview()}, &r, opt);
    if (!s.ok()) throw CLI::RuntimeError(report_error(s));
    const double secs = seconds_since(t0);
    const int rc =
        finish("backward", *args, p,
               {{"dx", r.dx.cview()}, {"dgamma", r.dgamma.cview()}, {"dbeta", r.dbeta.cview()}},
               report, secs);
    if (rc != kExitOk) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tilenorm::cli
