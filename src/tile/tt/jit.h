// The kernel JIT: a kernel source in tt-metal's dialect, its compile-time args and defines ->
// a shared object built with the host compiler recorded at configure time, cached on disk and
// loaded with dlopen. The kernel calls the tile machine's API, which the executable exports.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tile/machine/device.h"
#include "tilenorm/status.h"

namespace tilenorm::tt {

struct JitSource {
  std::string path;  // the kernel file (absolute or relative to cwd)
  tile::KernelKind kind = tile::KernelKind::kReader;
  std::vector<uint32_t> compile_args;          // get_compile_time_arg_val(i)
  std::map<std::string, std::string> defines;  // -DNAME=VALUE
  std::vector<std::string> include_dirs;       // e.g. the tt-metal tree the kernel includes from
};

struct JitKernel {
  void (*entry)() = nullptr;  // runs the kernel (kernel_main, or MAIN of the older dialect)
  std::string so_path;
  bool compiled = false;  // false: found in the in-process or the on-disk cache
  double compile_seconds = 0.0;
};

// Counters of this process's JIT use (tests: a warm run compiles nothing).
struct JitStats {
  uint64_t compiles = 0;
  uint64_t disk_hits = 0;
  uint64_t memory_hits = 0;
  double compile_seconds = 0.0;
};
JitStats jit_stats();

// The cache folder: $TILENORM_JIT_CACHE, else $XDG_CACHE_HOME/tilenorm, else ~/.cache/tilenorm.
std::string jit_cache_dir();

// Compiles (or finds in the cache) and loads `source`. The cache key hashes the source and
// every header it includes, the args, defines, include dirs, compiler and flags; an entry is
// written by rename, so processes compiling the same kernel at once both succeed.
// InvalidArgument: a missing file, a compile error (the compiler's first error lines, naming
// the kernel's path) or a kernel that calls API the tile machine does not model (named).
Status jit_compile(const JitSource& source, JitKernel* out);

}  // namespace tilenorm::tt
