// The kernel JIT (jit.h).

#include "tile/tt/jit.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <unordered_map>

#include "tile/tt/jit_config.h"

namespace tilenorm::tt {

namespace fs = std::filesystem;

namespace {

// 128-bit FNV-1a (two 64-bit lanes with different offsets), as hex.
struct Hasher {
  uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;
  void add(std::string_view s) {
    for (unsigned char c : s) {
      a = (a ^ c) * 0x100000001b3ull;
      b = (b ^ c) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
    }
    a = (a ^ 0xff) * 0x100000001b3ull;  // field separator
  }
  std::string hex() const { return fmt::format("{:016x}{:016x}", a, b); }
};

bool read_file(const fs::path& p, std::string* out) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  *out = s.str();
  return true;
}

std::string file_hash(const fs::path& p) {
  std::string content;
  if (!read_file(p, &content)) return "missing";
  Hasher h;
  h.add(content);
  return h.hex();
}

std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  return fmt::format("{}.{}.{:x}", getpid(), counter++, rd());
}

// Writes `content` to `path` through a temporary file and rename (atomic on POSIX).
bool write_atomically(const fs::path& path, std::string_view content) {
  const fs::path tmp = path.string() + ".tmp." + unique_suffix();
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return false;
    f << content;
    if (!f) return false;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fs::remove(tmp, ec);
  return !ec;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The dependency files of a make-style .d file (first rule only).
std::vector<std::string> parse_deps(const std::string& d) {
  std::vector<std::string> deps;
  const size_t colon = d.find(": ");
  std::string cur;
  for (size_t i = colon == std::string::npos ? 0 : colon + 2; i < d.size(); ++i) {
    const char c = d[i];
    if (c == '\\' && i + 1 < d.size() && d[i + 1] == '\n') {
      ++i;
    } else if (c == '\\' && i + 1 < d.size() && d[i + 1] == ' ') {
      cur += ' ';
      ++i;
    } else if (c == ' ' || c == '\n' || c == '\t') {
      if (!cur.empty()) deps.push_back(cur);
      cur.clear();
      if (c == '\n') break;
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) deps.push_back(cur);
  return deps;
}

// The compiler's first error lines (and the lines right after each, which carry the context).
std::string first_errors(const std::string& log) {
  std::istringstream in(log);
  std::string line, out;
  int kept = 0, after = 0;
  while (std::getline(in, line) && kept < 12) {
    if (line.find("error") != std::string::npos) {
      after = 2;
    }
    if (after > 0) {
      out += "  " + line + "\n";
      ++kept;
      --after;
    }
  }
  if (out.empty()) {
    std::istringstream all(log);
    while (std::getline(all, line) && kept++ < 12) out += "  " + line + "\n";
  }
  return out;
}

std::string demangle(const std::string& sym) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(
      abi::__cxa_demangle(sym.c_str(), nullptr, nullptr, &status), std::free);
  return status == 0 && d ? std::string(d.get()) : sym;
}

struct State {
  std::mutex mu;
  std::unordered_map<std::string, JitKernel> loaded;  // by the full key
  JitStats stats;
};
State& state() {
  static State* s = new State;  // never destroyed: loaded kernels stay mapped for the process
  return *s;
}

// The .so of a cache entry whose recorded dependencies all still hash the same; "" if none.
std::string valid_entry(const fs::path& dir, const std::string& key) {
  std::string manifest;
  if (!read_file(dir / (key + ".deps"), &manifest)) return "";
  std::istringstream in(manifest);
  std::string hash, path;
  while (in >> hash && std::getline(in >> std::ws, path)) {
    if (file_hash(path) != hash) return "";
  }
  Hasher h;
  h.add(manifest);
  const fs::path so = dir / (key + "-" + h.hex().substr(0, 16) + ".so");
  return fs::exists(so) ? so.string() : "";
}

Status load(const std::string& so_path, const std::string& kernel_path, JitKernel* out) {
  void* handle = dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const std::string err = dlerror();
    const std::string marker = "undefined symbol: ";
    const size_t at = err.find(marker);
    if (at != std::string::npos) {
      const std::string sym = err.substr(at + marker.size());
      return Status::invalid_argument(fmt::format(
          "kernel {} calls {}, which the tile machine does not model", kernel_path, demangle(sym)));
    }
    return Status::invalid_argument(
        fmt::format("kernel {}: loading its shared object failed: {}", kernel_path, err));
  }
  auto entry = reinterpret_cast<void (*)()>(dlsym(handle, "tilenorm_tt_entry"));
  if (entry == nullptr) {
    return Status::internal(fmt::format("kernel {}: no entry in {}", kernel_path, so_path));
  }
  out->entry = entry;
  out->so_path = so_path;
  return Status::ok_status();
}

}  // namespace

JitStats jit_stats() {
  std::lock_guard<std::mutex> lock(state().mu);
  return state().stats;
}

std::string jit_cache_dir() {
  if (const char* d = std::getenv("TILENORM_JIT_CACHE"); d != nullptr && *d != '\0') return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d != nullptr && *d != '\0') {
    return (fs::path(d) / "tilenorm").string();
  }
  const char* home = std::getenv("HOME");
  return (fs::path(home != nullptr ? home : "/tmp") / ".cache" / "tilenorm").string();
}

Status jit_compile(const JitSource& source, JitKernel* out) {
  std::error_code ec;
  const fs::path kernel = fs::absolute(source.path, ec);
  std::string content;
  if (ec || !read_file(kernel, &content)) {
    return Status::invalid_argument(fmt::format("kernel source {} not found", source.path));
  }
  const bool compute = source.kind == tile::KernelKind::kCompute;
  const bool kernel_main = content.find("kernel_main") != std::string::npos;

  Hasher key;
  key.add(kernel.string());
  key.add(content);
  key.add(compute ? "compute" : "dataflow");
  for (uint32_t a : source.compile_args) key.add(std::to_string(a));
  key.add("defines");
  for (const auto& [name, value] : source.defines) {
    std::string define = name;
    define.append("=").append(value);
    key.add(define);
  }
  key.add("includes");
  for (const std::string& d : source.include_dirs) key.add(d);
  key.add(config::kCompiler);
  key.add(config::kCompilerId);
  key.add(config::kFlags);
  key.add(config::kSourceDir);
  const std::string k = key.hex();
  const fs::path dir = jit_cache_dir();

  State& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  const std::string so = valid_entry(dir, k);
  if (!so.empty()) {
    if (auto it = st.loaded.find(so); it != st.loaded.end()) {
      ++st.stats.memory_hits;
      *out = it->second;
      out->compiled = false;
      return Status::ok_status();
    }
    JitKernel j;
    TN_RETURN_IF_ERROR(load(so, kernel.string(), &j));
    ++st.stats.disk_hits;
    st.loaded[so] = j;
    *out = j;
    return Status::ok_status();
  }

  fs::create_directories(dir, ec);
  if (ec) {
    return Status::io_error(fmt::format("kernel JIT cache folder {} cannot be created: {}",
                                        dir.string(), ec.message()));
  }
  const std::string tmp = (dir / (k + "." + unique_suffix())).string();
  std::string wrapper;
  if (!source.compile_args.empty()) {
    wrapper += "#define KERNEL_COMPILE_TIME_ARGS ";
    for (size_t i = 0; i < source.compile_args.size(); ++i) {
      wrapper += fmt::format("{}{}u", i ? "," : "", source.compile_args[i]);
    }
    wrapper += "\n";
  }
  wrapper += fmt::format("#define TILENORM_TT_{}_KERNEL 1\n", compute ? "COMPUTE" : "DATAFLOW");
  wrapper += "#include \"tilenorm_tt/prelude.h\"\n";
  wrapper += fmt::format("#include \"{}\"\n", kernel.string());
  wrapper += fmt::format(
      "extern \"C\" __attribute__((visibility(\"default\"))) void tilenorm_tt_entry() {{ {}; }}\n",
      kernel_main ? "::kernel_main()" : "NAMESPACE::MAIN");
  if (!write_atomically(tmp + ".cpp", wrapper)) {
    return Status::io_error(fmt::format("kernel JIT cannot write to {}", dir.string()));
  }
  std::string cmd = fmt::format("{} {} -I{} -I{} -I{}", shell_quote(config::kCompiler),
                                config::kFlags, shell_quote(config::kDialectDir),
                                shell_quote(config::kSourceDir), shell_quote(config::kIncludeDir));
  for (const std::string& d : source.include_dirs) cmd += " -I" + shell_quote(d);
  for (const auto& [name, value] : source.defines) {
    cmd += " " + shell_quote(value.empty() ? fmt::format("-D{}", name)
                                           : fmt::format("-D{}={}", name, value));
  }
  cmd += fmt::format(" -MD -MF {0}.d {0}.cpp -o {0}.so > {0}.log 2>&1", shell_quote(tmp));
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = std::system(cmd.c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string log, deps;
  read_file(tmp + ".log", &log);
  read_file(tmp + ".d", &deps);
  auto cleanup = [&] {
    for (const char* ext : {".cpp", ".log", ".d", ".so"}) fs::remove(tmp + ext, ec);
  };
  if (rc != 0) {
    cleanup();
    return Status::invalid_argument(fmt::format("kernel {} does not compile ({}):\n{}",
                                                kernel.string(), config::kCompiler,
                                                first_errors(log)));
  }
  std::string manifest;
  for (const std::string& d : parse_deps(deps)) {
    if (d == tmp + ".cpp") continue;
    manifest += file_hash(d) + " " + fs::absolute(d, ec).string() + "\n";
  }
  Hasher mh;
  mh.add(manifest);
  const fs::path final_so = dir / (k + "-" + mh.hex().substr(0, 16) + ".so");
  fs::rename(tmp + ".so", final_so, ec);
  if (ec || !write_atomically(dir / (k + ".deps"), manifest)) {
    cleanup();
    return Status::io_error(
        fmt::format("kernel JIT cannot write its cache entry in {}", dir.string()));
  }
  cleanup();
  JitKernel j;
  TN_RETURN_IF_ERROR(load(final_so.string(), kernel.string(), &j));
  j.compiled = true;
  j.compile_seconds = seconds;
  ++st.stats.compiles;
  st.stats.compile_seconds += seconds;
  st.loaded[final_so.string()] = j;
  *out = j;
  return Status::ok_status();
}

}  // namespace tilenorm::tt
