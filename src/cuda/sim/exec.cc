// The simulated device's execution and checks.
//
// Execution: a launch runs cluster by cluster (a block is a cluster of one). Every block of the
// running cluster has an OS thread of its own, so that its __shared__ variables (thread_local)
// are private to it; a cluster-of-one block runs on the launching thread. Every CUDA thread is a
// fiber on its block's OS thread. Only one simulated thread runs at any time: a block runs its
// fibers until none can go on (all finished, or waiting at a barrier, shuffle or cluster sync),
// then the cluster's next block runs; when every block waits at the cluster barrier it opens.
// The order threads run in between synchronization points, and the order of blocks, come from
// the schedule seed.
//
// Checks: the kernel translation units are compiled with -fsanitize=thread, and the hooks that
// instrumentation calls at every load and store (__tsan_read4, ...) are defined here; libtsan is
// never linked. Each access of a running kernel is classified by address: device allocations
// (memcheck bounds and alignment, initcheck), shared memory of this block or a cluster peer
// (racecheck, initcheck, bounds of dynamic shared memory, peer lifetime), anything else (the
// thread's stack, the launch's arguments) unchecked.
#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cuda/sim/sim_internal.h"
#include "tile/machine/fiber.h"

// The built-in variables: set by the scheduler before it resumes a simulated thread.
uint3 threadIdx{0, 0, 0}, blockIdx{0, 0, 0};
dim3 blockDim, gridDim;

namespace tilenorm::cuda::sim {

int max_dynamic_smem(const void* kernel);  // runtime.cc

namespace detail {
bool valid_stream(cudaStream_t s);  // runtime.cc
}  // namespace detail

namespace {

using tile::detail::Fiber;
using tile::detail::FiberStack;
using namespace detail;  // NOLINT(google-build-using-namespace)

constexpr size_t kStackBytes = 64 << 10;
constexpr int kMaxReportsPerLaunch = 64;

// ---- state ---------------------------------------------------------------------------------

enum class State { kRunnable, kBarrier, kShuffle, kWarpSync, kCluster, kDone };

struct Thread {
  Fiber fiber;
  uint3 idx{};
  int linear = 0;
  State state = State::kDone;
  std::source_location where;  // of the sync it waits at
  // Shuffle operands and result.
  uint64_t value = 0, result = 0;
  int arg = 0;
};

// A warp shuffle or __syncwarp some lanes of a warp wait at.
struct WarpOp {
  bool syncwarp = false;
  ShuffleOp op = ShuffleOp::kIdx;
  unsigned mask = 0;     // as the lanes gave it
  unsigned need = 0;     // lanes still to arrive or arrived (exited ones taken out)
  unsigned arrived = 0;  // lanes waiting at it
  int width = 32;
  std::source_location where;
};

struct Warp {
  unsigned alive = 0;  // lanes that exist and have not exited
  uint32_t epoch = 0;  // completed __syncwarp calls (they order shared accesses in the warp)
  std::vector<WarpOp> ops;
};

// One access of a shared-memory byte, for racecheck.
struct Access {
  uint32_t thread = UINT32_MAX;  // rank << 16 | linear thread index; UINT32_MAX: none
  uint32_t bar = 0, clu = 0, wep = 0;
  const void* pc = nullptr;
};

struct Cell {
  uint32_t gen = 0;      // the block run that wrote it; another value: never written by this block
  bool readers = false;  // more than one unordered reader since the last write
  Access w, r;
};

struct Block {
  uintptr_t tp = 0;  // thread pointer of the OS thread it runs on
  uint3 idx{};
  int rank = 0, linear = 0;
  int nthreads = 0, live = 0, at_barrier = 0, at_cluster = 0;
  uint32_t bar_epoch = 0;
  uint32_t gen = 0;
  bool finished = false;
  uint64_t rng = 0;
  std::unique_ptr<Thread[]> threads;
  int capacity = 0;
  std::vector<std::unique_ptr<FiberStack>> stacks;
  std::vector<Warp> warps;
  std::vector<Cell> shadow;  // one cell per byte of the program's static TLS
  std::vector<int> order;
};

struct Pending {
  ReportKind kind;
  std::string text;  // "@0", "@1" stand for the code locations of pcs
  std::vector<const void*> pcs;
};

struct Launch {
  const void* kernel = nullptr;
  void (*thunk)(void*) = nullptr;
  void* payload = nullptr;
  dim3 grid, block, cluster;
  int cluster_size = 1;
  size_t dyn_smem = 0;
  uint32_t cluster_epoch = 0;
  std::vector<Block*> blocks;  // of the running cluster, by rank
  std::vector<Pending> pending;
  std::set<std::tuple<int, const void*, const void*>> seen;
  bool abort = false;
};

Launch* g_launch = nullptr;
Block* g_block = nullptr;
Thread* g_thread = nullptr;
uint64_t g_seed = [] {
  const char* s = std::getenv("TILENORM_CUDA_SIM_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : 0;
}();
uint64_t g_launch_count = 0;
std::mutex g_launch_mu;
std::mutex g_reports_mu;
std::vector<Report> g_reports;
Stats g_stats;

uintptr_t g_tls_bytes = 0;
// The dynamic shared-memory arrays (extern __shared__) of the kernel files: at tp - offset.
struct DynamicSmem {
  uintptr_t offset, bytes;
};
std::vector<DynamicSmem>& dynamic_smem() {
  static std::vector<DynamicSmem> v;
  return v;
}
size_t g_dyn_bytes = 0;  // the largest of them: what a launch may ask for

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A permutation of 0..n-1: index order for seed 0.
void order(std::vector<int>& v, int n, uint64_t& rng) {
  v.resize(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  if (g_seed == 0) return;
  for (int i = n - 1; i > 0; --i) std::swap(v[i], v[splitmix(rng) % (i + 1)]);
}

// ---- reports -------------------------------------------------------------------------------

std::string idx3(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

std::string where(const std::source_location& l) {
  std::string f = l.file_name();
  if (auto p = f.rfind("/src/"); p != std::string::npos) f = f.substr(p + 1);
  return f + ":" + std::to_string(l.line());
}

std::string block_name(const Block& b) {
  std::string s = "block " + idx3(b.idx);
  if (g_launch != nullptr && g_launch->cluster_size > 1)
    s += " (cluster rank " + std::to_string(b.rank) + ")";
  return s;
}

// "threads (0,0,0), (1,0,0) and 30 more of block (3,0,0)"
std::string threads_of(const Block& b, const std::vector<int>& linear) {
  std::string s = linear.size() == 1 ? "thread " : "threads ";
  for (size_t i = 0; i < linear.size() && i < 4; ++i) {
    if (i > 0) s += ", ";
    s += idx3(b.threads[linear[i]].idx);
  }
  if (linear.size() > 4) s += " and " + std::to_string(linear.size() - 4) + " more";
  return s + " of " + block_name(b);
}

void add_report(ReportKind kind, std::string text, std::vector<const void*> pcs = {}) {
  Launch* L = g_launch;
  if (L == nullptr) {
    std::lock_guard lock(g_reports_mu);
    std::fprintf(stderr, "cuda-sim: %s: %s\n", report_kind_name(kind), text.c_str());
    g_reports.push_back({kind, "", std::move(text)});
    return;
  }
  if (static_cast<int>(L->pending.size()) >= kMaxReportsPerLaunch) return;
  L->pending.push_back({kind, std::move(text), std::move(pcs)});
}

// Once per launch for a kind and pair of code addresses.
bool first_time(ReportKind kind, const void* a, const void* b = nullptr) {
  return g_launch->seen.emplace(static_cast<int>(kind), a, b).second;
}

std::string hex(uintptr_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%zx", static_cast<size_t>(v));
  return buf;
}

// A fault the device stops the kernel at (an illegal or misaligned address): the access must not
// happen (a misaligned vector access would fault on the host too), so the thread leaves the
// kernel here and the launch ends.
void fatal() {
  g_launch->abort = true;
  g_thread->state = State::kDone;
  Fiber::yield();  // never resumed: the launch is over
}

// ---- TLS and shared memory -----------------------------------------------------------------

int find_tls(dl_phdr_info* info, size_t, void* out) {
  if (info->dlpi_name != nullptr && info->dlpi_name[0] != '\0') return 0;  // the program only
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_TLS) continue;
    const uintptr_t align = ph.p_align > 0 ? ph.p_align : 1;
    *static_cast<uintptr_t*>(out) = (ph.p_memsz + align - 1) / align * align;
  }
  return 1;
}

thread_local int t_tls_probe = 0;

void init_tls() {
  if (g_tls_bytes != 0) return;
  uintptr_t bytes = 0;
  dl_iterate_phdr(find_tls, &bytes);
  const uintptr_t tp = thread_pointer(), probe = reinterpret_cast<uintptr_t>(&t_tls_probe);
  if (bytes == 0 || probe < tp - bytes || probe >= tp) {
    std::fprintf(stderr,
                 "cuda-sim: the program's static TLS was not found below the thread pointer; "
                 "the simulator must be linked into the executable\n");
    std::abort();
  }
  g_tls_bytes = bytes;
}

// The block whose shared memory holds a (this block first, then cluster peers), or null.
Block* smem_owner(uintptr_t a) {
  Block* b = g_block;
  if (a < b->tp && a >= b->tp - g_tls_bytes) return b;
  if (g_launch->cluster_size > 1)
    for (Block* p : g_launch->blocks)
      if (p != b && a < p->tp && a >= p->tp - g_tls_bytes) return p;
  return nullptr;
}

Access me(const void* pc) {
  const Thread& t = *g_thread;
  const Block& b = *g_block;
  return {static_cast<uint32_t>(b.rank) << 16 | static_cast<uint32_t>(t.linear), b.bar_epoch,
          g_launch->cluster_epoch, b.warps[t.linear >> 5].epoch, pc};
}

// Whether a recorded access happens before the current one (or is the same thread's).
bool ordered(const Access& prev, const Access& now) {
  if (prev.thread == UINT32_MAX || prev.thread == now.thread) return true;
  if ((prev.thread >> 16) != (now.thread >> 16)) return prev.clu != now.clu;
  if (prev.bar != now.bar) return true;
  return ((prev.thread & 0xffff) >> 5) == ((now.thread & 0xffff) >> 5) && prev.wep != now.wep;
}

std::string thread_name(uint32_t id) {
  const int rank = static_cast<int>(id >> 16), linear = static_cast<int>(id & 0xffff);
  const Block* b = g_launch->blocks.empty() ? g_block : g_launch->blocks[rank];
  return "thread " + idx3(b->threads[linear].idx) + " of " + block_name(*b);
}

void race(const char* what, const Access& prev, const char* prev_op, const Access& now,
          const char* now_op, const Block& owner, uintptr_t a) {
  if (!first_time(ReportKind::kRace, prev.pc, now.pc)) return;
  add_report(ReportKind::kRace,
             std::string(what) + " hazard on shared memory (byte " +
                 std::to_string(a - (owner.tp - g_tls_bytes)) + " of " + block_name(owner) +
                 "'s): " + prev_op + " by " + thread_name(prev.thread) + " at @0, " + now_op +
                 " by " + thread_name(now.thread) + " at @1 with no barrier between them",
             {prev.pc, now.pc});
}

void smem_access(Block& owner, uintptr_t a, size_t n, bool write, bool aligned, const void* pc) {
  if (owner.finished) {
    add_report(ReportKind::kMemory,
               std::string(write ? "write" : "read") + " of shared memory of " + block_name(owner) +
                   ", which has exited, by " + threads_of(*g_block, {g_thread->linear}) + " at @0",
               {pc});
    return fatal();
  }
  if (aligned && a % n != 0) {
    add_report(ReportKind::kMemory,
               "misaligned " + std::to_string(n) + "-byte shared memory access at @0 by " +
                   threads_of(*g_block, {g_thread->linear}),
               {pc});
    return fatal();
  }
  for (const DynamicSmem& d : dynamic_smem()) {
    const uintptr_t dyn_lo = owner.tp - d.offset;
    if (a + n <= dyn_lo || a >= dyn_lo + d.bytes || a + n <= dyn_lo + g_launch->dyn_smem) continue;
    add_report(ReportKind::kMemory,
               "out-of-bounds " + std::string(write ? "write" : "read") + " of " +
                   std::to_string(n) + " bytes at byte " + std::to_string(a - dyn_lo) +
                   " of dynamic shared memory (" + std::to_string(g_launch->dyn_smem) +
                   " bytes launched) at @0 by " + threads_of(*g_block, {g_thread->linear}),
               {pc});
    return fatal();
  }
  const Access now = me(pc);
  const size_t first = a - (owner.tp - g_tls_bytes);
  bool uninit = false;
  for (size_t i = 0; i < n; ++i) {
    Cell& c = owner.shadow[first + i];
    if (c.gen != owner.gen) {
      c = Cell{};
      if (!write) {
        uninit = true;
        continue;
      }
      c.gen = owner.gen;
    }
    if (write) {
      if (!ordered(c.w, now)) race("write-after-write", c.w, "write", now, "write", owner, a);
      if (c.r.thread != UINT32_MAX && (!ordered(c.r, now) || (c.readers && c.r.bar == now.bar)))
        race("write-after-read", c.r, "read", now, "write", owner, a);
      c.w = now;
      c.r = Access{};
      c.readers = false;
    } else {
      if (!ordered(c.w, now)) race("read-after-write", c.w, "write", now, "read", owner, a);
      if (c.r.thread != UINT32_MAX && c.r.thread != now.thread && !ordered(c.r, now))
        c.readers = true;
      else if (ordered(c.r, now))
        c.readers = false;
      c.r = now;
    }
  }
  if (uninit && first_time(ReportKind::kUninit, pc))
    add_report(ReportKind::kUninit,
               "read of " + std::to_string(n) + " bytes of shared memory of " + block_name(owner) +
                   " never written by it, at @0 by " + threads_of(*g_block, {g_thread->linear}),
               {pc});
}

void global_access(uintptr_t a, size_t n, bool write, bool aligned, const void* pc) {
  Allocation* al = find_allocation(a);
  const char* op = write ? "write" : "read";
  if (al == nullptr || a + n > al->base + al->bytes) {
    // The allocation it overruns: the one holding a, or the nearest below within a page.
    Allocation* near = al;
    for (uintptr_t d = 1; near == nullptr && d <= 4096; d <<= 1) near = find_allocation(a - d);
    const std::string where_in = near == nullptr
                                     ? std::string("in no allocation")
                                     : std::to_string(a + n - (near->base + near->bytes)) +
                                           " bytes past the end of a " +
                                           std::to_string(near->bytes) + "-byte allocation";
    add_report(ReportKind::kMemory,
               "invalid global " + std::string(op) + " of " + std::to_string(n) + " bytes at " +
                   hex(a) + " (" + where_in + ") at @0 by " +
                   threads_of(*g_block, {g_thread->linear}),
               {pc});
    return fatal();
  }
  if (aligned && a % n != 0) {
    add_report(ReportKind::kMemory,
               "misaligned " + std::to_string(n) + "-byte global " + op + " at " + hex(a) +
                   " at @0 by " + threads_of(*g_block, {g_thread->linear}),
               {pc});
    return fatal();
  }
  uint8_t* w = al->written.data() + (a - al->base);
  if (write) {
    std::memset(w, 1, n);
  } else if (std::memchr(w, 0, n) != nullptr && first_time(ReportKind::kUninit, pc)) {
    add_report(ReportKind::kUninit,
               "read of " + std::to_string(n) + " bytes of global memory never written (byte " +
                   std::to_string(a - al->base) + " of a " + std::to_string(al->bytes) +
                   "-byte allocation) at @0 by " + threads_of(*g_block, {g_thread->linear}),
               {pc});
  }
}

inline void access(void* p, size_t n, bool write, bool aligned, const void* pc) {
  if (g_thread == nullptr) return;  // host code of a kernel file, or no kernel running
  const auto a = reinterpret_cast<uintptr_t>(p);
  ++g_stats.checked_accesses;
  if (in_arena(a)) {
    global_access(a, n, write, aligned, pc);
  } else if (Block* owner = smem_owner(a); owner != nullptr) {
    smem_access(*owner, a, n, write, aligned, pc);
  }
}

// ---- scheduling ----------------------------------------------------------------------------

void thread_main(void* arg);

void prepare(Block& b, int nthreads) {
  init_tls();
  b.tp = thread_pointer();
  if (b.shadow.size() != g_tls_bytes) b.shadow.assign(g_tls_bytes, Cell{});
  if (b.capacity < nthreads) {
    b.threads = std::make_unique<Thread[]>(nthreads);
    b.capacity = nthreads;
  }
  while (static_cast<int>(b.stacks.size()) < nthreads)
    b.stacks.push_back(std::make_unique<FiberStack>(kStackBytes));
}

void start_block(Block& b, uint3 idx, int linear, int rank) {
  const Launch& L = *g_launch;
  const int n = static_cast<int>(L.block.x * L.block.y * L.block.z);
  prepare(b, n);
  b.idx = idx;
  b.linear = linear;
  b.rank = rank;
  b.nthreads = b.live = n;
  b.at_barrier = b.at_cluster = 0;
  b.finished = false;
  ++b.gen;
  ++b.bar_epoch;
  b.rng = g_seed ^ (g_launch_count * 0x100000001b3ull) ^
          (uint64_t{static_cast<unsigned>(linear)} << 20);
  b.warps.resize((n + 31) / 32);
  for (Warp& w : b.warps) {
    w.alive = 0;
    w.ops.clear();
  }
  for (int i = 0; i < n; ++i) {
    b.warps[i >> 5].alive |= 1u << (i & 31);
    Thread& t = b.threads[i];
    t.linear = i;
    t.idx = {static_cast<unsigned>(i % L.block.x), static_cast<unsigned>(i / L.block.x % L.block.y),
             static_cast<unsigned>(i / (L.block.x * L.block.y))};
    t.state = State::kRunnable;
    t.fiber.start(b.stacks[i].get(), thread_main, &t);
  }
  g_stats.threads += n;
}

// Runs the block's threads until none can go on.
void run_block(Block& b) {
  g_block = &b;
  bool progress = true;
  while (progress && !g_launch->abort) {
    progress = false;
    if (g_seed != 0) order(b.order, b.nthreads, b.rng);
    for (int k = 0; k < b.nthreads; ++k) {
      Thread& t = b.threads[g_seed != 0 ? b.order[k] : k];
      if (t.state != State::kRunnable) continue;
      threadIdx = t.idx;
      blockIdx = b.idx;
      g_block = &b;
      g_thread = &t;
      t.fiber.resume();
      g_thread = nullptr;
      progress = true;
      if (g_launch->abort) break;
    }
  }
  g_block = nullptr;
}

std::vector<int> threads_in(const Block& b, State s) {
  std::vector<int> v;
  for (int i = 0; i < b.nthreads; ++i)
    if (b.threads[i].state == s) v.push_back(i);
  return v;
}

// Groups threads by the source location they wait at.
std::vector<std::pair<std::string, std::vector<int>>> by_site(const Block& b,
                                                              const std::vector<int>& ids) {
  std::vector<std::pair<std::string, std::vector<int>>> out;
  for (int i : ids) {
    const std::string w = where(b.threads[i].where);
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == w; });
    if (it == out.end())
      out.push_back({w, {i}});
    else
      it->second.push_back(i);
  }
  return out;
}

bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() &&
         (a.file_name() == b.file_name() || std::strcmp(a.file_name(), b.file_name()) == 0);
}

void complete_barrier(Block& b) {
  const std::source_location* site = nullptr;
  bool divergent = false;
  for (int i = 0; i < b.nthreads; ++i) {
    Thread& t = b.threads[i];
    if (t.state != State::kBarrier) continue;
    if (site == nullptr)
      site = &t.where;
    else if (!same_site(*site, t.where))
      divergent = true;
  }
  if (divergent) {
    std::string s = "divergent __syncthreads:";
    for (const auto& [w, ids] : by_site(b, threads_in(b, State::kBarrier)))
      s += " " + threads_of(b, ids) + " at " + w + ";";
    add_report(ReportKind::kSync, s);
  }
  if (b.live < b.nthreads) {
    add_report(ReportKind::kSync, "__syncthreads at " + where(*site) + " waited on " +
                                      threads_of(b, threads_in(b, State::kDone)) +
                                      ", which exited without reaching it");
  }
  for (int i = 0; i < b.nthreads; ++i)
    if (b.threads[i].state == State::kBarrier) b.threads[i].state = State::kRunnable;
  b.at_barrier = 0;
  ++b.bar_epoch;
}

void complete_warp_op(Block& b, int w, size_t k) {
  Warp& wp = b.warps[w];
  const WarpOp op = wp.ops[k];
  wp.ops.erase(wp.ops.begin() + static_cast<std::ptrdiff_t>(k));
  const char* name = op.syncwarp                 ? "__syncwarp"
                     : op.op == ShuffleOp::kXor  ? "__shfl_xor_sync"
                     : op.op == ShuffleOp::kDown ? "__shfl_down_sync"
                     : op.op == ShuffleOp::kUp   ? "__shfl_up_sync"
                                                 : "__shfl_sync";
  for (int lane = 0; lane < 32; ++lane) {
    if ((op.arrived >> lane & 1u) == 0) continue;
    Thread& t = b.threads[w * 32 + lane];
    t.state = State::kRunnable;
    if (op.syncwarp) continue;
    const int seg = lane & ~(op.width - 1);
    int src = lane;
    switch (op.op) {
      case ShuffleOp::kIdx:
        src = seg + (t.arg % op.width + op.width) % op.width;
        break;
      case ShuffleOp::kUp:
        src = lane - t.arg >= seg ? lane - t.arg : lane;
        break;
      case ShuffleOp::kDown:
        src = lane + t.arg < seg + op.width ? lane + t.arg : lane;
        break;
      case ShuffleOp::kXor:
        src = (lane ^ t.arg) < seg + op.width ? (lane ^ t.arg) : lane;
        break;
    }
    if (src < 0 || src > 31 || (op.arrived >> src & 1u) == 0) {
      add_report(ReportKind::kSync, std::string(name) + " at " + where(op.where) + ": lane " +
                                        std::to_string(lane) + " reads lane " +
                                        std::to_string(src) + ", which is not in the mask " +
                                        hex(op.mask) + " (" + threads_of(b, {t.linear}) + ")");
      t.result = ~uint64_t{0};
    } else {
      t.result = b.threads[w * 32 + src].value;
    }
  }
  if (op.syncwarp) ++wp.epoch;
}

void check_warp_ops(Block& b, int w) {
  Warp& wp = b.warps[w];
  for (size_t k = 0; k < wp.ops.size();)
    if (wp.ops[k].arrived == wp.ops[k].need) {
      complete_warp_op(b, w, k);
      k = 0;
    } else {
      ++k;
    }
}

void on_exit(Thread& t) {
  Block& b = *g_block;
  t.state = State::kDone;
  --b.live;
  const int w = t.linear >> 5, lane = t.linear & 31;
  Warp& wp = b.warps[w];
  wp.alive &= ~(1u << lane);
  for (WarpOp& op : wp.ops)
    if ((op.need >> lane & 1u) != 0 && (op.arrived >> lane & 1u) == 0) {
      add_report(ReportKind::kSync, std::string(op.syncwarp ? "__syncwarp" : "shuffle") + " at " +
                                        where(op.where) + " with mask " + hex(op.mask) + ": lane " +
                                        std::to_string(lane) + " (" + threads_of(b, {t.linear}) +
                                        ") exited while named in it");
      op.need &= ~(1u << lane);
    }
  check_warp_ops(b, w);
  if (b.at_barrier > 0 && b.at_barrier == b.live) complete_barrier(b);
  if (b.live == 0) b.finished = true;
}

void thread_main(void* arg) {
  auto* t = static_cast<Thread*>(arg);
  g_launch->thunk(g_launch->payload);
  on_exit(*t);
}

// A report for a block none of whose threads can go on, naming what each waits at.
void report_hang(const Block& b) {
  std::string s = "the kernel can never finish: in " + block_name(b) + ",";
  auto waits = [&](State st, const char* what) {
    for (const auto& [w, ids] : by_site(b, threads_in(b, st)))
      s += " " + threads_of(b, ids) + " wait at " + what + " " + w + ";";
  };
  waits(State::kBarrier, "__syncthreads");
  waits(State::kShuffle, "a shuffle at");
  waits(State::kWarpSync, "__syncwarp");
  waits(State::kCluster, "cluster.sync");
  const auto done = threads_in(b, State::kDone);
  if (!done.empty()) s += " " + threads_of(b, done) + " exited";
  add_report(ReportKind::kHang, s);
}

// ---- the cluster -------------------------------------------------------------------------

// An OS thread that runs the blocks of one cluster rank.
class Worker {
 public:
  Worker() {
    std::thread([this] { loop(); }).detach();
  }
  void run(const std::function<void()>& f) {
    std::unique_lock lock(mu_);
    job_ = &f;
    cv_.notify_all();
    cv_.wait(lock, [&] { return job_ == nullptr; });
  }
  Block block;

 private:
  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return job_ != nullptr; });
      (*job_)();
      job_ = nullptr;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* job_ = nullptr;
};

Worker& worker(int rank) {
  static std::vector<Worker*> workers;  // threads of the process's lifetime
  while (static_cast<int>(workers.size()) <= rank) workers.push_back(new Worker());
  return *workers[rank];
}

uint3 block_index(unsigned linear, const dim3& g) {
  return {linear % g.x, linear / g.x % g.y, linear / (g.x * g.y)};
}

void run_cluster(const std::vector<unsigned>& members, uint64_t& rng) {
  Launch& L = *g_launch;
  const int n = static_cast<int>(members.size());
  L.blocks.assign(n, nullptr);
  for (int r = 0; r < n; ++r) L.blocks[r] = &worker(r).block;
  for (int r = 0; r < n; ++r)
    worker(r).run([&, r] {
      start_block(*L.blocks[r], block_index(members[r], L.grid), static_cast<int>(members[r]), r);
    });
  std::vector<int> ranks;
  for (;;) {
    order(ranks, n, rng);
    for (int r : ranks) {
      Block& b = *L.blocks[r];
      if (b.finished || b.at_cluster == b.live) continue;
      worker(r).run([&] { run_block(b); });
      if (L.abort) return;
    }
    int finished = 0, waiting = 0;
    for (Block* b : L.blocks) {
      if (b->finished) {
        ++finished;
      } else if (b->at_cluster == b->live) {
        ++waiting;
      } else {
        report_hang(*b);
        L.abort = true;
        return;
      }
    }
    if (finished == n) return;
    // Every block still running waits at the cluster barrier: it opens.
    std::vector<std::string> sites;
    for (Block* b : L.blocks)
      for (int i : threads_in(*b, State::kCluster)) {
        const std::string w = where(b->threads[i].where);
        if (std::find(sites.begin(), sites.end(), w) == sites.end()) sites.push_back(w);
      }
    if (finished > 0) {
      std::string gone;
      for (Block* b : L.blocks)
        if (b->finished) gone += (gone.empty() ? "" : ", ") + std::to_string(b->rank);
      add_report(ReportKind::kSync, "cluster.sync at " + sites.front() + ": cluster rank(s) " +
                                        gone + " finished while the others wait there (" +
                                        block_name(*L.blocks[0]) + "'s cluster)");
    }
    if (sites.size() > 1) {
      std::string s = "divergent cluster.sync: the cluster's threads wait at";
      for (const auto& w : sites) s += " " + w;
      add_report(ReportKind::kSync, s);
    }
    ++L.cluster_epoch;
    for (Block* b : L.blocks) {
      if (b->finished) continue;
      for (int i : threads_in(*b, State::kCluster)) b->threads[i].state = State::kRunnable;
      b->at_cluster = 0;
      ++b->bar_epoch;
    }
  }
}

thread_local std::unique_ptr<Block> t_inline_block;

void run_launch(Launch& L) {
  const unsigned blocks = L.grid.x * L.grid.y * L.grid.z;
  uint64_t rng = g_seed * 0x9e3779b97f4a7c15ull ^ g_launch_count;
  if (L.cluster_size == 1) {
    if (!t_inline_block) t_inline_block = std::make_unique<Block>();
    Block& b = *t_inline_block;
    L.blocks.assign(1, &b);
    std::vector<int> ord;
    order(ord, static_cast<int>(blocks), rng);
    for (int i : ord) {
      start_block(b, block_index(static_cast<unsigned>(i), L.grid), i, 0);
      for (;;) {
        run_block(b);
        if (L.abort) return;
        if (b.finished) break;
        if (b.at_cluster != b.live) {
          report_hang(b);
          L.abort = true;
          return;
        }
        // cluster.sync in a cluster of one: every thread of the block is there.
        ++L.cluster_epoch;
        for (int t : threads_in(b, State::kCluster)) b.threads[t].state = State::kRunnable;
        b.at_cluster = 0;
        ++b.bar_epoch;
      }
    }
    return;
  }
  // Clusters in order of their first block; a cluster's blocks are contiguous in each dimension.
  const dim3 c = L.cluster;
  const dim3 cg(L.grid.x / c.x, L.grid.y / c.y, L.grid.z / c.z);
  std::vector<int> ord;
  order(ord, static_cast<int>(cg.x * cg.y * cg.z), rng);
  std::vector<unsigned> members;
  for (int ci : ord) {
    const uint3 cidx = block_index(static_cast<unsigned>(ci), cg);
    members.clear();
    for (unsigned z = 0; z < c.z; ++z)
      for (unsigned y = 0; y < c.y; ++y)
        for (unsigned x = 0; x < c.x; ++x)
          members.push_back((cidx.x * c.x + x) +
                            L.grid.x * ((cidx.y * c.y + y) + L.grid.y * (cidx.z * c.z + z)));
    run_cluster(members, rng);
    if (L.abort) return;
  }
}

// Symbolizes a code address with addr2line (reports only).
std::string symbolize(const void* pc, bool function) {
  Dl_info info{};
  if (pc == nullptr || dladdr(pc, &info) == 0) return hex(reinterpret_cast<uintptr_t>(pc));
  const uintptr_t off = reinterpret_cast<uintptr_t>(pc) -
                        reinterpret_cast<uintptr_t>(info.dli_fbase) - (function ? 0 : 1);
  const std::string cmd =
      "addr2line -f -C -e /proc/" + std::to_string(getpid()) + "/exe " + hex(off) + " 2>/dev/null";
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r"); f != nullptr) {
    char buf[4096];
    while (std::fgets(buf, sizeof buf, f) != nullptr) out += buf;
    pclose(f);
  }
  const auto nl = out.find('\n');
  if (nl == std::string::npos) return hex(reinterpret_cast<uintptr_t>(pc));
  if (function) return out.substr(0, nl);
  std::string line = out.substr(nl + 1);
  if (auto e = line.find_first_of(" \n"); e != std::string::npos) line.resize(e);
  if (auto p = line.rfind("/src/"); p != std::string::npos) line = line.substr(p + 1);
  return line;
}

}  // namespace

// ---- entry points ------------------------------------------------------------------------

namespace detail {

uintptr_t thread_pointer() {
  uintptr_t tp = 0;
  asm volatile("mov %%fs:0, %0" : "=r"(tp));
  return tp;
}
size_t tls_bytes() {
  init_tls();
  return g_tls_bytes;
}
std::string code_location(const void* pc) { return symbolize(pc, false); }
std::string function_name(const void* fn) { return symbolize(fn, true); }
void report(ReportKind kind, const std::string& message) { add_report(kind, message); }

}  // namespace detail

bool register_dynamic_smem(const void* p, size_t bytes) {
  dynamic_smem().push_back({detail::thread_pointer() - reinterpret_cast<uintptr_t>(p), bytes});
  g_dyn_bytes = std::max(g_dyn_bytes, bytes);
  return true;
}

uint64_t shuffle(ShuffleOp op, unsigned mask, uint64_t bits, int lane_arg, int width,
                 const std::source_location& loc) {
  Thread& t = *g_thread;
  Block& b = *g_block;
  const int w = t.linear >> 5, lane = t.linear & 31;
  Warp& wp = b.warps[w];
  if ((mask >> lane & 1u) == 0) {
    add_report(ReportKind::kSync, "shuffle at " + where(loc) + " with mask " + hex(mask) +
                                      " that does not name the calling lane " +
                                      std::to_string(lane) + " (" + threads_of(b, {t.linear}) +
                                      ")");
    return bits;
  }
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    add_report(ReportKind::kSync, "shuffle at " + where(loc) + " with width " +
                                      std::to_string(width) + ", not a power of 2 up to 32");
    return bits;
  }
  const unsigned absent = mask & ~wp.alive & ~(1u << lane);
  if (absent != 0)
    add_report(ReportKind::kSync, "shuffle at " + where(loc) + " with mask " + hex(mask) + " by " +
                                      threads_of(b, {t.linear}) + ": lanes " + hex(absent) +
                                      " it names do not exist or have exited");
  size_t k = 0;
  for (; k < wp.ops.size(); ++k) {
    const WarpOp& o = wp.ops[k];
    if (o.syncwarp || (o.mask & mask) == 0) continue;
    if (o.mask == mask && o.op == op && o.width == width) break;
    add_report(ReportKind::kSync, "shuffle masks disagree: lane " + std::to_string(lane) + " at " +
                                      where(loc) + " with mask " + hex(mask) + ", lanes " +
                                      hex(o.arrived) + " at " + where(o.where) + " with mask " +
                                      hex(o.mask) + " (warp " + std::to_string(w) + " of " +
                                      block_name(b) + ")");
  }
  if (k == wp.ops.size()) {
    WarpOp o;
    o.op = op;
    o.mask = mask;
    o.need = mask & wp.alive;
    o.width = width;
    o.where = loc;
    wp.ops.push_back(o);
  }
  wp.ops[k].arrived |= 1u << lane;
  t.value = bits;
  t.arg = lane_arg;
  t.where = loc;
  t.state = State::kShuffle;
  if (wp.ops[k].arrived == wp.ops[k].need) {
    complete_warp_op(b, w, k);
  } else {
    Fiber::yield();
  }
  return t.result;
}

void sync_warp(unsigned mask, const std::source_location& loc) {
  Thread& t = *g_thread;
  Block& b = *g_block;
  const int w = t.linear >> 5, lane = t.linear & 31;
  Warp& wp = b.warps[w];
  if ((mask >> lane & 1u) == 0) {
    add_report(ReportKind::kSync, "__syncwarp at " + where(loc) + " with mask " + hex(mask) +
                                      " that does not name the calling lane (" +
                                      threads_of(b, {t.linear}) + ")");
    return;
  }
  size_t k = 0;
  for (; k < wp.ops.size(); ++k)
    if (wp.ops[k].syncwarp && wp.ops[k].mask == mask) break;
  if (k == wp.ops.size()) {
    WarpOp o;
    o.syncwarp = true;
    o.mask = mask;
    o.need = mask & wp.alive;
    o.where = loc;
    wp.ops.push_back(o);
  }
  wp.ops[k].arrived |= 1u << lane;
  t.where = loc;
  t.state = State::kWarpSync;
  if (wp.ops[k].arrived == wp.ops[k].need)
    complete_warp_op(b, w, k);
  else
    Fiber::yield();
}

void sync_threads(const std::source_location& loc) {
  Thread& t = *g_thread;
  Block& b = *g_block;
  t.state = State::kBarrier;
  t.where = loc;
  if (++b.at_barrier == b.live)
    complete_barrier(b);
  else
    Fiber::yield();
}

void cluster_sync(const std::source_location& loc) {
  Thread& t = *g_thread;
  Block& b = *g_block;
  t.state = State::kCluster;
  t.where = loc;
  ++b.at_cluster;
  Fiber::yield();  // the cluster's scheduler opens the barrier
}

void* map_shared_rank(const void* p, unsigned rank, const std::source_location& loc) {
  Block& b = *g_block;
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (static_cast<int>(rank) >= g_launch->cluster_size) {
    add_report(ReportKind::kMemory, "map_shared_rank at " + where(loc) + " to rank " +
                                        std::to_string(rank) + " of a cluster of " +
                                        std::to_string(g_launch->cluster_size));
    return const_cast<void*>(p);
  }
  if (a >= b.tp || a < b.tp - g_tls_bytes) {
    add_report(ReportKind::kMemory,
               "map_shared_rank at " + where(loc) + " of an address not in shared memory");
    return const_cast<void*>(p);
  }
  return reinterpret_cast<void*>(g_launch->blocks[rank]->tp - (b.tp - a));
}

dim3 cluster_dims() { return g_launch != nullptr ? g_launch->cluster : dim3(1); }
unsigned block_rank() { return g_block != nullptr ? static_cast<unsigned>(g_block->rank) : 0; }

cudaError_t launch(const cudaLaunchConfig_t* config, const void* kernel, void (*thunk)(void*),
                   void* payload) {
  std::lock_guard lock(g_launch_mu);
  auto refuse = [&](cudaError_t e, const std::string& why) {
    add_report(ReportKind::kLaunch, function_name(kernel) + ": " + why);
    detail::set_last_error(e);
    return e;
  };
  if (config == nullptr || kernel == nullptr)
    return refuse(cudaErrorInvalidValue, "no configuration or kernel");
  if (!detail::valid_stream(config->stream))
    return refuse(cudaErrorInvalidResourceHandle, "the stream is not a live stream");
  const dim3 g = config->gridDim, bl = config->blockDim;
  const uint64_t threads = uint64_t{bl.x} * bl.y * bl.z;
  if (bl.x == 0 || bl.y == 0 || bl.z == 0 || bl.x > 1024 || bl.y > 1024 || bl.z > 64 ||
      threads > 1024)
    return refuse(cudaErrorInvalidConfiguration,
                  "block (" + std::to_string(bl.x) + "," + std::to_string(bl.y) + "," +
                      std::to_string(bl.z) + "): at most 1024 threads, (1024,1024,64)");
  if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
    return refuse(cudaErrorInvalidConfiguration,
                  "grid (" + std::to_string(g.x) + "," + std::to_string(g.y) + "," +
                      std::to_string(g.z) + "): x up to 2^31-1, y and z up to 65535");
  if (config->dynamicSmemBytes > static_cast<size_t>(max_dynamic_smem(kernel)))
    return refuse(cudaErrorInvalidValue,
                  std::to_string(config->dynamicSmemBytes) +
                      " bytes of dynamic shared memory: more than 48 KiB needs "
                      "cudaFuncAttributeMaxDynamicSharedMemorySize");
  if (config->dynamicSmemBytes > g_dyn_bytes && config->dynamicSmemBytes > 0)
    return refuse(cudaErrorNotSupported, "the simulator holds " + std::to_string(g_dyn_bytes) +
                                             " bytes of dynamic shared memory a block");
  dim3 cl(1, 1, 1);
  for (unsigned i = 0; i < config->numAttrs; ++i)
    if (config->attrs[i].id == cudaLaunchAttributeClusterDimension)
      cl = dim3(config->attrs[i].val.clusterDim.x, config->attrs[i].val.clusterDim.y,
                config->attrs[i].val.clusterDim.z);
  const uint64_t csize = uint64_t{cl.x} * cl.y * cl.z;
  if (cl.x == 0 || cl.y == 0 || cl.z == 0 || csize > 8 || g.x % cl.x != 0 || g.y % cl.y != 0 ||
      g.z % cl.z != 0)
    return refuse(cudaErrorInvalidClusterSize,
                  "cluster (" + std::to_string(cl.x) + "," + std::to_string(cl.y) + "," +
                      std::to_string(cl.z) + "): at most 8 blocks, dividing the grid");

  Launch L;
  L.kernel = kernel;
  L.thunk = thunk;
  L.payload = payload;
  L.grid = g;
  L.block = bl;
  L.cluster = cl;
  L.cluster_size = static_cast<int>(csize);
  L.dyn_smem = config->dynamicSmemBytes;
  gridDim = g;
  blockDim = bl;
  g_launch = &L;
  ++g_launch_count;
  ++g_stats.launches;
  run_launch(L);
  g_launch = nullptr;
  g_block = nullptr;
  g_thread = nullptr;

  if (L.pending.empty()) return cudaSuccess;
  const std::string name = function_name(kernel);
  {
    std::lock_guard rl(g_reports_mu);
    for (Pending& p : L.pending) {
      for (size_t i = 0; i < p.pcs.size(); ++i) {
        const std::string key = "@" + std::to_string(i), loc = code_location(p.pcs[i]);
        for (size_t at; (at = p.text.find(key)) != std::string::npos;)
          p.text.replace(at, key.size(), loc);
      }
      std::fprintf(stderr, "cuda-sim: %s: kernel %s: %s\n", report_kind_name(p.kind), name.c_str(),
                   p.text.c_str());
      g_reports.push_back({p.kind, name, p.text});
    }
  }
  detail::set_last_error(cudaErrorLaunchFailure);
  return cudaErrorLaunchFailure;
}

std::vector<Report> take_reports() {
  std::lock_guard lock(g_reports_mu);
  std::vector<Report> r;
  r.swap(g_reports);
  return r;
}

void set_schedule_seed(uint64_t seed) { g_seed = seed; }
uint64_t schedule_seed() { return g_seed; }
Stats stats() { return g_stats; }

}  // namespace tilenorm::cuda::sim

// ---- instrumentation hooks -----------------------------------------------------------------
// The calls -fsanitize=thread places in the kernel translation units.

namespace tsim = tilenorm::cuda::sim;

#define TN_SIM_HOOK(n)                                             \
  extern "C" void __tsan_read##n(void* p) {                        \
    tsim::access(p, n, false, true, __builtin_return_address(0));  \
  }                                                                \
  extern "C" void __tsan_write##n(void* p) {                       \
    tsim::access(p, n, true, true, __builtin_return_address(0));   \
  }                                                                \
  extern "C" void __tsan_unaligned_read##n(void* p) {              \
    tsim::access(p, n, false, false, __builtin_return_address(0)); \
  }                                                                \
  extern "C" void __tsan_unaligned_write##n(void* p) {             \
    tsim::access(p, n, true, false, __builtin_return_address(0));  \
  }
TN_SIM_HOOK(1)
TN_SIM_HOOK(2)
TN_SIM_HOOK(4)
TN_SIM_HOOK(8)
TN_SIM_HOOK(16)
#undef TN_SIM_HOOK

extern "C" void __tsan_read_range(void* p, unsigned long n) {
  tsim::access(p, n, false, false, __builtin_return_address(0));
}
extern "C" void __tsan_write_range(void* p, unsigned long n) {
  tsim::access(p, n, true, false, __builtin_return_address(0));
}
extern "C" void __tsan_func_entry(void*) {}
extern "C" void __tsan_func_exit() {}
extern "C" void __tsan_init() {}
extern "C" void __tsan_vptr_update(void*, void*) {}
extern "C" void __tsan_vptr_read(void*) {}
