// Dispatch policy of the CPU backend (dispatch.h).
#include "cpu/dispatch.h"

#include <algorithm>
#include <fstream>

#include "common/thread_pool.h"
#include "cpu/norm_cpu.h"

namespace tilenorm::cpu {
namespace {

// Rows of a row-split group: their x (and dy) stay in the L3 between the two phases.
constexpr int64_t kGroupBytes = int64_t{8} << 20;
// Row bytes up to which a row's re-read in the second pass comes from the core's L2.
constexpr int64_t kCachedRowBytes = int64_t{512} << 10;
// Backward splits rows only below this many rows (see plan_backward).
constexpr int64_t kRowSplitRows = 16;

}  // namespace

// When the tensors of a call do not fit 7/8 of the last-level cache, the output goes around the
// caches: kept, it would only evict inputs still to be read, and its write-allocate reads cost
// bandwidth. Smaller outputs stay cached for the next layer.
bool stream_output(int64_t footprint_bytes) {
  // sysfs, not sysconf: under KVM glibc's cpuid answer can be the host's whole L3.
  static const int64_t llc = [] {
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index3/size");
    int64_t kib = 0;
    return f >> kib && kib > 0 ? kib << 10 : int64_t{32} << 20;
  }();
  return footprint_bytes >= llc / 8 * 7;
}

ThreadPool& call_pool(const NormOptions& opt, int64_t elements) {
  return ThreadPool::shared(elements < kInlineElements ? 1 : opt.num_threads);
}

// Split rows when whole rows would idle cores.
ForwardPlan plan_forward(int64_t rows, int64_t C, int64_t row_bytes, int threads) {
  const int64_t nck = ceil_div(C, kColChunk);
  if (rows >= 4 * threads || nck < 2 * threads)
    return {false, 0, row_bytes <= kCachedRowBytes ? "cached-row" : "streamed"};
  return {true, std::clamp<int64_t>(kGroupBytes / row_bytes, 1, rows), "row-split"};
}

// Row-split only below 16 rows of >= 16 column chunks: with more rows, the row chunks share out
// well and read x and dy once; on 32x65536 they measured as fast at 2 threads and up to 1.2x
// faster at 1 thread. Otherwise chunks of whole rows, one dgamma/dbeta partial per chunk; small
// row counts still get 8 chunks to share out.
BackwardPlan plan_backward(int64_t rows, int64_t C, int64_t elem_size) {
  if (rows < kRowSplitRows && ceil_div(C, kColChunk) >= 16)
    return {true, std::clamp<int64_t>(kGroupBytes / 2 / (2 * C * elem_size), 1, rows), 0, 0,
            "row-split"};
  const int64_t per_chunk = std::clamp<int64_t>(ceil_div(rows, 8), 1, kRowChunk);
  return {false, 0, per_chunk, ceil_div(rows, per_chunk),
          C * elem_size * 2 <= kCachedRowBytes ? "cached-row" : "streamed"};
}

void set_report(const NormOptions& opt, const char* path, int threads,
                std::vector<std::pair<std::string, double>> extra) {
  if (opt.report == nullptr) return;
  opt.report->path = path;
  opt.report->metrics = {{"threads", threads}};
  opt.report->metrics.insert(opt.report->metrics.end(), extra.begin(), extra.end());
}

}  // namespace tilenorm::cpu
