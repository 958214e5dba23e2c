// Control of the simulated CUDA device (a build with TILENORM_CUDA_SIM): its checks' reports,
// the schedule seed and the device profile. Free of CUDA headers; for tests and tools.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tilenorm::cuda::sim {

// What a report is about; each check has its own kind.
enum class ReportKind {
  kRace,    // racecheck: shared-memory accesses of two threads with no barrier between them
  kMemory,  // memcheck: an access outside its allocation, misaligned, or to an exited peer
  kUninit,  // initcheck: a read of shared or global memory never written
  kSync,    // synccheck: divergent barrier, shuffle mask violation, thread exited while awaited
  kHang,    // a barrier or shuffle that can never complete (a deadlock), named with its waiters
  kLaunch,  // a launch the device refuses (block, grid, cluster or shared-memory limits)
};
const char* report_kind_name(ReportKind k);  // "racecheck", "memcheck", ...

struct Report {
  ReportKind kind;
  std::string kernel;   // the kernel's name
  std::string message;  // where (source line), which threads, what
};

// Reports since the last call, oldest first (at most 64 are kept per launch). A launch with a
// report returns cudaErrorLaunchFailure (not sticky) and prints the reports to stderr.
std::vector<Report> take_reports();

// The order threads run in between synchronization points and the order blocks (clusters) run
// in: seed 0 runs them in index order, any other seed in a permutation drawn from it. Read from
// TILENORM_CUDA_SIM_SEED at start.
void set_schedule_seed(uint64_t seed);
uint64_t schedule_seed();

// The simulated device: "h100" (H100 SXM, the default) or "h200"; TILENORM_CUDA_SIM_DEVICE at
// start. Returns false for another name.
bool set_device_profile(const std::string& name);

// Counts of what ran, for tests: launches, simulated threads, bytes the checks inspected.
struct Stats {
  int64_t launches = 0;
  int64_t threads = 0;
  int64_t checked_accesses = 0;
};
Stats stats();

}  // namespace tilenorm::cuda::sim
