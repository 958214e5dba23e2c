#include "harness/bench/bench_core.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/thread_pool.h"
#include "reference/norm.h"
#include "tilenorm/layernorm.h"
#include "tilenorm/rmsnorm.h"

namespace tilenorm::bench {

const char* direction_name(Direction dir) { return dir == Direction::kForward ? "fwd" : "bwd"; }

const std::vector<BenchShape>& default_shapes() {
  static const std::vector<BenchShape> shapes = {{4096, 768},  {8192, 1024}, {2048, 4096},
                                                 {1024, 8192}, {256, 8462},  {32, 65536},
                                                 {4, 1048576}};
  return shapes;
}

std::string op_name(const NormOp& op) {
  return std::string(op.norm == Norm::kRmsNorm ? "RMSNorm" : "LayerNorm") +
         (op.residual ? "Residual" : "");
}

double bytes_moved(const BenchShape& s, DType dtype, Direction dir, const NormOp& op) {
  const double es = static_cast<double>(dtype_size(dtype));
  const double R = static_cast<double>(s.rows), C = static_cast<double>(s.C);
  const double stats = op.norm == Norm::kRmsNorm ? 1 : 2;  // per-row statistics, per-column params
  if (dir == Direction::kForward)
    return (op.residual ? 4 : 2) * R * C * es + stats * C * es + stats * R * 4;
  return (op.residual ? 4 : 3) * R * C * es + (stats + 1) * C * es + stats * R * 4;
}

namespace {

// splitmix64 of (stream, i) mapped to [-0.5, 0.5).
float hash_uniform(uint64_t stream, uint64_t i) {
  uint64_t z = stream * 0x9e3779b97f4a7c15ull + i + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f) - 0.5f;
}

}  // namespace

BenchInputs make_bench_inputs(const BenchShape& s, DType dtype, const NormOp& op) {
  BenchInputs in{s, dtype, {}, {}, {}, {}, op};
  const size_t n = static_cast<size_t>(s.rows * s.C);
  in.x.resize(n);
  in.dy.resize(n);
  in.gamma.resize(static_cast<size_t>(s.C));
  in.beta.resize(static_cast<size_t>(s.C));
  for (size_t i = 0; i < n; ++i) {
    in.x[i] = 0.5f + 2.0f * hash_uniform(1, i);
    in.dy[i] = hash_uniform(2, i);
  }
  for (size_t i = 0; i < in.gamma.size(); ++i) {
    in.gamma[i] = 1.0f + 0.25f * hash_uniform(3, i);
    in.beta[i] = 0.1f * hash_uniform(4, i);
  }
  if (op.residual) {
    in.residual.resize(n);
    in.dh_in.resize(n);
    for (size_t i = 0; i < n; ++i) {
      in.residual[i] = hash_uniform(5, i);
      in.dh_in[i] = 0.5f * hash_uniform(6, i);
    }
  }
  if (dtype == DType::kBF16) {
    for (auto* v : {&in.x, &in.dy, &in.gamma, &in.beta, &in.residual, &in.dh_in})
      for (float& f : *v) f = round_to_bf16(f);
  }
  return in;
}

namespace {

Tensor to_tensor(const std::vector<float>& v, const Shape& shape, DType dtype) {
  Tensor t(shape, dtype);
  if (dtype == DType::kF32) {
    std::memcpy(t.raw(), v.data(), v.size() * sizeof(float));
  } else {
    for (size_t i = 0; i < v.size(); ++i) t.data<bf16>()[i] = float_to_bf16(v[i]);
  }
  return t;
}

std::vector<double> to_doubles(const Tensor& t) {
  if (t.raw() == nullptr) return {};  // an output this norm does not have
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = t.get(static_cast<int64_t>(i));
  return v;
}

// tilenorm's native CPU backend through the public API.
class TilenormImpl : public Impl {
 public:
  std::string name() const override { return "tilenorm"; }
  bool prepare(const BenchInputs& in, int threads, std::string*) override {
    const Shape s{in.shape.rows, in.shape.C}, c{in.shape.C}, r{in.shape.rows};
    op_ = in.op;
    const bool layer = op_.norm == Norm::kLayerNorm;
    x_ = to_tensor(in.x, s, in.dtype);
    dy_ = to_tensor(in.dy, s, in.dtype);
    gamma_ = to_tensor(in.gamma, c, in.dtype);
    if (layer) beta_ = to_tensor(in.beta, c, in.dtype);
    if (op_.residual) {
      residual_ = to_tensor(in.residual, s, in.dtype);
      dh_in_ = to_tensor(in.dh_in, s, in.dtype);
      h_ = Tensor(s, in.dtype);
    }
    y_ = Tensor(s, in.dtype);
    dx_ = Tensor(s, in.dtype);
    if (layer) mean_ = Tensor(r, DType::kF32);
    rstd_ = Tensor(r, DType::kF32);
    dgamma_ = Tensor(c, DType::kF32);
    if (layer) dbeta_ = Tensor(c, DType::kF32);
    opt_.num_threads = threads;
    opt_.report = &report_;
    run(Direction::kForward);
    return true;
  }
  void run(Direction dir) override {
    const ConstTensorView x = op_.residual ? h_.cview() : x_.cview();
    Status st;
    if (op_.norm == Norm::kRmsNorm) {
      st = dir == Direction::kForward
               ? rmsnorm_forward(Backend::kCpu,
                                 {.x = x_.view(),
                                  .gamma = gamma_.view(),
                                  .eps = 1e-5,
                                  .residual = residual_.view()},
                                 {.y = y_.view(), .rrms = rstd_.view(), .h = h_.view()}, opt_)
               : rmsnorm_backward(Backend::kCpu,
                                  {.x = x,
                                   .dy = dy_.view(),
                                   .gamma = gamma_.view(),
                                   .rrms = rstd_.view(),
                                   .dh_in = dh_in_.view()},
                                  {.dx = dx_.view(), .dgamma = dgamma_.view()}, opt_);
    } else if (dir == Direction::kForward) {
      st = layernorm_forward(
          Backend::kCpu,
          {.x = x_.view(),
           .gamma = gamma_.view(),
           .beta = beta_.view(),
           .eps = 1e-5,
           .residual = residual_.view()},
          {.y = y_.view(), .mean = mean_.view(), .rstd = rstd_.view(), .h = h_.view()}, opt_);
    } else {
      st = layernorm_backward(Backend::kCpu,
                              {.x = x,
                               .dy = dy_.view(),
                               .gamma = gamma_.view(),
                               .mean = mean_.view(),
                               .rstd = rstd_.view(),
                               .dh_in = dh_in_.view()},
                              {.dx = dx_.view(), .dgamma = dgamma_.view(), .dbeta = dbeta_.view()},
                              opt_);
    }
    if (!st.ok()) {
      std::fprintf(stderr, "tilenorm: %s\n", st.to_string().c_str());
      std::abort();
    }
  }
  BenchOutputs outputs() override {
    run(Direction::kForward);
    run(Direction::kBackward);
    return {to_doubles(y_),      to_doubles(mean_),  to_doubles(rstd_), to_doubles(dx_),
            to_doubles(dgamma_), to_doubles(dbeta_), to_doubles(h_)};
  }
  void release() override { *this = TilenormImpl(); }

 private:
  NormOp op_;
  Tensor x_, dy_, gamma_, beta_, residual_, dh_in_, y_, h_, dx_, mean_, rstd_, dgamma_, dbeta_;
  NormOptions opt_;
  RunReport report_;
};

}  // namespace

namespace {

struct Peer {
  std::string name, version;
  ImplFactory make;
};

std::vector<Peer>& peers() {
  static std::vector<Peer> list;
  return list;
}

void register_peer(const char* name, ImplFactory make, const char* version) {
  peers().push_back({name, version, make});
}

// Loads the peers plugin once. Its path is fixed at configure time; TILENORM_BENCH_PEERS
// overrides it (an empty value disables the peers).
const std::string& load_peers() {
  static const std::string status = []() -> std::string {
    const char* env = std::getenv("TILENORM_BENCH_PEERS");
#ifdef TILENORM_BENCH_PEERS_PLUGIN
    const std::string path = env ? env : TILENORM_BENCH_PEERS_PLUGIN;
#else
    const std::string path = env ? env : "";
#endif
    if (path.empty()) return "";
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return std::string("peers plugin not loaded: ") + dlerror();
    auto* entry =
        reinterpret_cast<void (*)(RegisterPeer)>(dlsym(lib, "tilenorm_bench_register_peers"));
    if (entry == nullptr) return "peers plugin " + path + " has no tilenorm_bench_register_peers";
    entry(&register_peer);
    return "";
  }();
  return status;
}

}  // namespace

std::vector<std::string> impl_names() {
  load_peers();
  std::vector<std::string> names = {"tilenorm"};
  for (const Peer& p : peers()) names.push_back(p.name);
  return names;
}

std::unique_ptr<Impl> make_impl(const std::string& name) {
  if (name == "tilenorm") return std::make_unique<TilenormImpl>();
  load_peers();
  for (const Peer& p : peers())
    if (p.name == name) return std::unique_ptr<Impl>(p.make());
  return nullptr;
}

std::vector<std::string> peer_versions() {
  load_peers();
  std::vector<std::string> v;
  for (const Peer& p : peers()) v.push_back(p.version);
  return v;
}

std::string peers_status() { return load_peers(); }

std::string check_outputs(const BenchInputs& in, const BenchOutputs& got, double* max_err) {
  const int64_t R = in.shape.rows, C = in.shape.C;
  const bool layer = in.op.norm == Norm::kLayerNorm;
  std::vector<double> x(in.x.begin(), in.x.end()), h;
  const std::vector<double> dy(in.dy.begin(), in.dy.end()), g(in.gamma.begin(), in.gamma.end()),
      b(in.beta.begin(), in.beta.end()), dh(in.dh_in.begin(), in.dh_in.end());
  if (in.op.residual) {
    // h as stored in the data dtype, which the backward then reads.
    for (size_t i = 0; i < x.size(); ++i) {
      const float v = static_cast<float>(x[i] + in.residual[i]);
      x[i] = in.dtype == DType::kBF16 ? round_to_bf16(v) : v;
    }
    h = x;
  }
  const size_t stats = layer ? static_cast<size_t>(R) : 0,
               shifts = layer ? static_cast<size_t>(C) : 0;
  BenchOutputs ref{std::vector<double>(x.size()),
                   std::vector<double>(stats),
                   std::vector<double>(R),
                   std::vector<double>(x.size()),
                   std::vector<double>(C),
                   std::vector<double>(shifts),
                   h};
  reference::norm_forward_f64(in.op.norm, x.data(), g.data(), layer ? b.data() : nullptr, R, C,
                              1e-5, ref.y.data(), layer ? ref.mean.data() : nullptr,
                              ref.rstd.data());
  reference::norm_backward_f64(in.op.norm, x.data(), dy.data(), g.data(),
                               layer ? ref.mean.data() : nullptr, ref.rstd.data(),
                               in.op.residual ? dh.data() : nullptr, R, C, ref.dx.data(),
                               ref.dgamma.data(), layer ? ref.dbeta.data() : nullptr);
  const double tol = in.dtype == DType::kF32 ? 1e-4 : 2e-2;
  std::string bad;
  *max_err = 0;
  const std::pair<const char*, std::pair<const std::vector<double>*, const std::vector<double>*>>
      pairs[] = {{"y", {&got.y, &ref.y}},
                 {"mean", {&got.mean, &ref.mean}},
                 {"rstd", {&got.rstd, &ref.rstd}},
                 {"dx", {&got.dx, &ref.dx}},
                 {"dgamma", {&got.dgamma, &ref.dgamma}},
                 {"dbeta", {&got.dbeta, &ref.dbeta}},
                 {"h", {&got.h, &ref.h}}};
  for (const auto& [name, p] : pairs) {
    const auto& [a, r] = p;
    double err = r->size() == a->size() ? 0 : INFINITY, mag = 0;
    for (size_t i = 0; i < std::min(r->size(), a->size()); ++i) {
      const double e = std::abs((*a)[i] - (*r)[i]);
      err = std::isnan(e) ? INFINITY : std::max(err, e);
      mag = std::max(mag, std::abs((*r)[i]));
    }
    const double rel = err / (mag > 0 ? mag : 1);
    *max_err = std::max(*max_err, rel);
    if (!(rel <= tol)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s=%.1e", bad.empty() ? "" : " ", name, rel);
      bad += buf;
    }
  }
  return bad.empty() ? "ok" : "FAIL (" + bad + ")";
}

void flush_caches() {
  // 96 MiB: three times the L3 of the machines this runs on.
  static std::vector<char> buf(size_t{96} << 20);
  static char v = 0;
  ++v;
  for (size_t i = 0; i < buf.size(); i += 64) buf[i] = v;
}

namespace {

constexpr size_t kCopyBytes = size_t{256} << 20, kCopyN = kCopyBytes / sizeof(double);

struct CopyArrays {
  std::unique_ptr<double[]> a{new double[kCopyN]}, c{new double[kCopyN]};
  int touched_by = 0;
};

CopyArrays& copy_arrays(int threads) {
  static CopyArrays arrays;
  if (arrays.touched_by != threads) {
    // First touch by the threads that copy, as STREAM does.
    ThreadPool::shared(threads).parallel_for(static_cast<int64_t>(kCopyN),
                                             [&](int64_t b, int64_t e, int) {
                                               for (int64_t i = b; i < e; ++i) {
                                                 arrays.a[i] = 1.0;
                                                 arrays.c[i] = 0.0;
                                               }
                                             });
    arrays.touched_by = threads;
  }
  return arrays;
}

}  // namespace

double copy_bytes() { return 2.0 * static_cast<double>(kCopyBytes); }

void copy_once(int threads) {
  CopyArrays& arr = copy_arrays(threads);
  ThreadPool::shared(threads).parallel_for(static_cast<int64_t>(kCopyN),
                                           [&](int64_t b, int64_t e, int) {
                                             double* __restrict dst = arr.c.get();
                                             const double* __restrict src = arr.a.get();
                                             for (int64_t i = b; i < e; ++i) dst[i] = src[i];
                                           });
  if (arr.c[kCopyN / 3] != 1.0) std::abort();  // keeps the copy observable
}

double copy_gbps(int threads, int reps) {
  copy_once(threads);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    copy_once(threads);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return copy_bytes() / best / 1e9;
}

Timing time_calls(const std::function<void()>& fn, int warmup, int reps, bool cold) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  t.reserve(static_cast<size_t>(reps));
  for (int i = 0; i < reps; ++i) {
    if (cold) flush_caches();
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  const size_t n = t.size();
  const double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  return {med, t.front(), t.back(), reps};
}

std::string machine_description() {
  std::ifstream f("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  bool bf16 = false, avx512 = false;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0 && model == "unknown CPU")
      model = line.substr(line.find(':') + 2);
    if (line.rfind("flags", 0) == 0) {
      bf16 = bf16 || line.find(" avx512_bf16") != std::string::npos;
      avx512 = avx512 || line.find(" avx512f") != std::string::npos;
    }
  }
  std::ostringstream os;
  os << model << ", " << hardware_threads() << " hardware threads" << (avx512 ? ", AVX-512" : "")
     << (bf16 ? " + avx512_bf16" : "");
  return os.str();
}

}  // namespace tilenorm::bench
