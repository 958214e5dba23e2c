// `tilenorm bench`: the measurement of bench/norm_bench through the same benchmark core
// (harness/bench/: implementations, inputs, accuracy check, byte model and copy ceiling) as a
// table, with a progress bar on stderr.
#include "bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "cli_common.h"
#include "common/thread_pool.h"
#include "harness/bench/bench_core.h"

namespace tilenorm::cli {

namespace {

using bench::BenchShape;
using bench::Direction;

struct BenchArgs {
  std::vector<std::string> impls, shapes, dtypes = {"f32", "bf16"}, dirs = {"bwd", "fwd"},
                                          norms = {"layernorm"};
  std::vector<int> threads = {1, 2};
  std::string cache = "warm", svg;
  int reps = 20, warmup = 3;
  bool json = false, csv = false, check = true, residual = false;
};

struct Row {
  std::string op, impl, dtype, dir, cache, check;
  BenchShape shape;
  int threads;
  bench::Timing t;
  double gbps = 0, pct_copy = 0, vs_best_peer = 0;  // vs_best_peer 0: no peer measured
};

Status parse_shape(const std::string& s, BenchShape* out) {
  long long r = 0, c = 0;
  char x = 0;
  std::istringstream is(s);
  if (!(is >> r >> x >> c) || x != 'x' || r < 1 || c < 1 || !is.eof())
    return Status::invalid_argument("--shapes: '" + s + "' is not ROWSxC (e.g. 4096x768)");
  *out = {r, c};
  return {};
}

class Progress {
 public:
  explicit Progress(int total) : total_(total) {}
  void step(const std::string& what) {
    ++done_;
    const int width = 30, filled = done_ * width / std::max(1, total_);
    std::fprintf(stderr, "\r[%s%s] %d/%d %-48s", std::string(filled, '#').c_str(),
                 std::string(width - filled, ' ').c_str(), done_, total_, what.c_str());
    std::fflush(stderr);
  }
  void finish() { std::fprintf(stderr, "\r%*s\r", 100, ""); }

 private:
  int total_, done_ = 0;
};

std::string shape_name(const BenchShape& s) {
  return std::to_string(s.rows) + "x" + std::to_string(s.C);
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Ratio of each row's GB/s to the best peer (not tilenorm) on the same case.
void fill_ratios(std::vector<Row>& rows) {
  std::map<std::string, double> best;
  auto key = [](const Row& r) {
    return r.op + shape_name(r.shape) + r.dtype + r.dir + r.cache + std::to_string(r.threads);
  };
  for (const Row& r : rows)
    if (r.impl != "tilenorm") best[key(r)] = std::max(best[key(r)], r.gbps);
  for (Row& r : rows) {
    auto it = best.find(key(r));
    r.vs_best_peer = it == best.end() || it->second <= 0 ? 0 : r.gbps / it->second;
  }
}

// GB/s against C, one line per implementation and dtype, for the first op, direction and cache
// state and the largest thread count measured.
std::string render_svg(const std::vector<Row>& rows, const BenchArgs& a) {
  const int tmax = *std::max_element(a.threads.begin(), a.threads.end());
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  double xmin = 1e300, xmax = 0, ymax = 0;
  for (const Row& r : rows) {
    if (r.threads != tmax || r.dir != a.dirs.front() || r.cache != rows.front().cache ||
        r.op != rows.front().op)
      continue;
    series[r.impl + " " + r.dtype].push_back({static_cast<double>(r.shape.C), r.gbps});
    xmin = std::min(xmin, static_cast<double>(r.shape.C));
    xmax = std::max(xmax, static_cast<double>(r.shape.C));
    ymax = std::max(ymax, r.gbps);
  }
  const double W = 720, H = 440, L = 60, R = 170, T = 40, B = 50;
  if (xmax <= xmin) xmax = xmin * 2;
  ymax = std::ceil(ymax / 10) * 10 + 10;
  auto px = [&](double c) {
    return L + (std::log2(c) - std::log2(xmin)) / (std::log2(xmax) - std::log2(xmin)) * (W - L - R);
  };
  auto py = [&](double g) { return H - B - g / ymax * (H - T - B); };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' "
       "fill='white'/>\n"
    << "<text x='" << L << "' y='20' font-size='14'>" << rows.front().op << " " << a.dirs.front()
    << ", " << tmax << " threads, " << rows.front().cache << " cache: GB/s vs C</text>\n";
  for (double g = 0; g <= ymax; g += 10)
    s << "<line x1='" << L << "' x2='" << W - R << "' y1='" << py(g) << "' y2='" << py(g)
      << "' stroke='#ddd'/><text x='" << L - 8 << "' y='" << py(g) + 4 << "' text-anchor='end'>"
      << g << "</text>\n";
  for (double c = std::exp2(std::ceil(std::log2(xmin))); c <= xmax; c *= 4)
    s << "<text x='" << px(c) << "' y='" << H - B + 18 << "' text-anchor='middle'>"
      << static_cast<long long>(c) << "</text>\n";
  s << "<text x='" << (L + W - R) / 2 << "' y='" << H - 10
    << "' text-anchor='middle'>C (log scale)</text>\n";
  const char* colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
  int i = 0;
  for (auto& [name, pts] : series) {
    std::sort(pts.begin(), pts.end());
    const char* col = colors[i % 6];
    s << "<polyline fill='none' stroke='" << col << "' stroke-width='2'"
      << (name.find("bf16") != std::string::npos ? " stroke-dasharray='6 3'" : "") << " points='";
    for (auto& [c, g] : pts) s << px(c) << "," << py(g) << " ";
    s << "'/>\n";
    for (auto& [c, g] : pts)
      s << "<circle cx='" << px(c) << "' cy='" << py(g) << "' r='3' fill='" << col << "'/>\n";
    s << "<text x='" << W - R + 10 << "' y='" << T + 18 * i + 10 << "' fill='" << col << "'>"
      << name << "</text>\n";
    ++i;
  }
  s << "</svg>\n";
  return s.str();
}

// Writes via a temporary name and a rename, so a failed run never leaves a partial file.
Status write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    if (!f) return Status::io_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Status::io_error("cannot rename " + tmp + " to " + path);
  return {};
}

int run_bench(const BenchArgs& a) {
  std::vector<BenchShape> shapes;
  if (a.shapes.empty()) shapes = bench::default_shapes();
  for (const std::string& s : a.shapes) {
    BenchShape sh{};
    if (Status st = parse_shape(s, &sh); !st.ok()) return report_error(st);
    shapes.push_back(sh);
  }
  std::vector<DType> dtypes;
  for (const std::string& d : a.dtypes) {
    DType dt{};
    if (Status st = parse_dtype_arg(d, &dt); !st.ok()) return report_error(st);
    if (dt == DType::kF64) return report_error("--dtypes: f32 or bf16 only");
    dtypes.push_back(dt);
  }
  std::vector<std::string> impls = a.impls.empty() ? bench::impl_names() : a.impls;
  for (const std::string& i : impls)
    if (!bench::make_impl(i))
      return report_error("--impls: '" + i + "' is not built into this binary");
  std::vector<NormOp> ops;
  for (const std::string& n : a.norms) {
    const std::optional<Norm> norm = parse_norm(n);
    if (!norm) return report_error("--norm '" + n + "' is unknown (choose layernorm or rmsnorm)");
    ops.push_back({*norm, a.residual});
  }
  std::vector<bool> colds;
  if (a.cache != "cold") colds.push_back(false);
  if (a.cache != "warm") colds.push_back(true);

  const int total = static_cast<int>(ops.size() * shapes.size() * dtypes.size() * impls.size() *
                                     a.threads.size() * a.dirs.size() * colds.size()) +
                    2;
  Progress progress(total);
  const int tmax = *std::max_element(a.threads.begin(), a.threads.end());
  progress.step("copy bandwidth");
  double copy_ceiling = bench::copy_gbps(tmax);
  std::vector<Row> rows;
  const auto started = std::chrono::steady_clock::now();
  for (const NormOp& op : ops) {
    for (const BenchShape& s : shapes) {
      for (DType dt : dtypes) {
        const bench::BenchInputs in = bench::make_bench_inputs(s, dt, op);
        for (int t : a.threads) {
          for (const std::string& name : impls) {
            auto impl = bench::make_impl(name);
            std::string why, verdict = "-";
            const bool ok = impl->prepare(in, t, &why);
            if (ok && a.check) {
              double err = 0;
              verdict = bench::check_outputs(in, impl->outputs(), &err);
            }
            for (const std::string& dir : a.dirs) {
              const Direction d = dir == "fwd" ? Direction::kForward : Direction::kBackward;
              for (bool cold : colds) {
                progress.step(fmt::format("{} {} {} {} {} t{}{}", bench::op_name(op), name, dir,
                                          dtype_name(dt), shape_name(s), t, cold ? " cold" : ""));
                Row r{bench::op_name(op),
                      name,
                      dtype_name(dt),
                      dir,
                      cold ? "cold" : "warm",
                      ok ? verdict : "unsupported: " + why,
                      s,
                      t,
                      {},
                      0,
                      0,
                      0};
                if (ok) {
                  r.t = bench::time_calls([&] { impl->run(d); }, a.warmup, a.reps, cold);
                  r.gbps = bench::bytes_moved(s, dt, d, op) / (r.t.median_ms * 1e-3) / 1e9;
                }
                rows.push_back(r);
              }
            }
            impl->release();
          }
        }
      }
    }
  }
  progress.step("copy bandwidth");
  copy_ceiling = std::max(copy_ceiling, bench::copy_gbps(tmax));
  progress.finish();
  for (Row& r : rows) r.pct_copy = 100 * r.gbps / copy_ceiling;
  fill_ratios(rows);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::string peers;
  for (const auto& v : bench::peer_versions()) peers += (peers.empty() ? "" : ", ") + v;
  if (peers.empty())
    peers = "none" + (bench::peers_status().empty() ? std::string(" built")
                                                    : " (" + bench::peers_status() + ")");

  if (a.json) {
    nlohmann::json j;
    j["date"] = date;
    j["machine"] = bench::machine_description();
    j["peers"] = peers;
    j["copy_gbps"] = copy_ceiling;
    j["copy_threads"] = tmax;
    j["reps"] = a.reps;
    j["results"] = nlohmann::json::array();
    for (const Row& r : rows)
      j["results"].push_back({{"op", r.op},
                              {"impl", r.impl},
                              {"rows", r.shape.rows},
                              {"C", r.shape.C},
                              {"dtype", r.dtype},
                              {"dir", r.dir},
                              {"threads", r.threads},
                              {"cache", r.cache},
                              {"median_ms", r.t.median_ms},
                              {"min_ms", r.t.min_ms},
                              {"max_ms", r.t.max_ms},
                              {"gbps", r.gbps},
                              {"pct_copy", r.pct_copy},
                              {"vs_best_peer", r.vs_best_peer},
                              {"check", r.check}});
    std::printf("%s\n", j.dump(2).c_str());
  } else if (a.csv) {
    std::printf(
        "op,shape,impl,dtype,dir,threads,cache,median_ms,min_ms,max_ms,gbps,pct_copy,vs_best_peer,"
        "check\n");
    for (const Row& r : rows)
      std::printf("%s,%s,%s,%s,%s,%d,%s,%.4f,%.4f,%.4f,%.2f,%.1f,%.3f,\"%s\"\n", r.op.c_str(),
                  shape_name(r.shape).c_str(), r.impl.c_str(), r.dtype.c_str(), r.dir.c_str(),
                  r.threads, r.cache.c_str(), r.t.median_ms, r.t.min_ms, r.t.max_ms, r.gbps,
                  r.pct_copy, r.vs_best_peer, r.check.c_str());
  } else {
    std::printf("# tilenorm bench, %s\n# machine: %s\n# peers: %s\n", date,
                bench::machine_description().c_str(), peers.c_str());
    std::printf("# copy (%d threads, STREAM-like, best of start and end of run): %.1f GB/s\n", tmax,
                copy_ceiling);
    std::printf("# median of %d calls after %d warm-ups; spread = (max - min) / median; %.0f s\n\n",
                a.reps, a.warmup, seconds);
    std::printf(
        "| op | shape | impl | dtype | dir | thr | cache | ms | spread | GB/s | %% copy | vs best "
        "peer "
        "| check |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const Row& r : rows) {
      const double spread = r.t.median_ms > 0 ? (r.t.max_ms - r.t.min_ms) / r.t.median_ms : 0;
      std::printf("| %s | %s | %s | %s | %s | %d | %s | %.3f | %.0f%% | %.1f | %.0f | %s | %s |\n",
                  r.op.c_str(), shape_name(r.shape).c_str(), r.impl.c_str(), r.dtype.c_str(),
                  r.dir.c_str(), r.threads, r.cache.c_str(), r.t.median_ms, 100 * spread, r.gbps,
                  r.pct_copy, r.vs_best_peer > 0 ? (fixed(r.vs_best_peer, 2) + "x").c_str() : "-",
                  r.check.c_str());
    }
  }
  if (!a.svg.empty()) {
    if (Status st = write_file(a.svg, render_svg(rows, a)); !st.ok()) return report_error(st);
  }
  return kExitOk;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Benchmark LayerNorm / RMSNorm forward/backward: GB/s (bytes: 3*R*C*es + small terms "
      "backward, "
      "2*R*C*es forward) of tilenorm's cpu backend and the peers built in (oneDNN, libtorch), "
      "with the STREAM-like copy bandwidth measured in the same run");
  // The peers plugin is loaded only when bench runs, not to print this help.
  cmd->add_option("--impls", a->impls,
                  "Implementations: tilenorm, and onednn, torch when the peers plugin was built "
                  "(default: all available)")
      ->delimiter(',');
  cmd->add_option("--shapes", a->shapes,
                  "ROWSxC list (default: the 7 shapes of docs/performance.md)")
      ->delimiter(',');
  cmd->add_option("--dtypes", a->dtypes, "f32,bf16")->delimiter(',');
  cmd->add_option("--norm", a->norms, "layernorm, rmsnorm (repeatable or comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("--residual", a->residual,
                "Measure the fused residual add: forward reads a residual and writes h, backward "
                "reads dh_in");
  cmd->add_option("--dirs", a->dirs, "bwd,fwd")
      ->delimiter(',')
      ->check(CLI::IsMember({"bwd", "fwd"}));
  cmd->add_option("--threads", a->threads, "Thread counts (default 1,2)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  cmd->add_option("--cache", a->cache, "warm, cold (caches flushed before each call) or both")
      ->check(CLI::IsMember({"warm", "cold", "both"}));
  cmd->add_option("--reps", a->reps, "Timed calls per case (median reported)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", a->warmup, "Untimed calls before timing")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", a->json, "Print JSON instead of the table");
  cmd->add_flag("--csv", a->csv, "Print CSV instead of the table");
  cmd->add_flag("!--no-check", a->check, "Skip the accuracy check against the float64 reference");
  cmd->add_option("--svg", a->svg, "Also draw GB/s vs C per implementation to this SVG file");
  cmd->callback([a] {
    const int rc = run_bench(*a);
    if (rc != kExitOk) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tilenorm::cli
