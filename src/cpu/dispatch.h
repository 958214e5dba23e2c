// Dispatch policy of the CPU backend: which path a call takes (whole rows per thread or rows
// split across threads), how rows are grouped and chunked, when outputs go around the caches,
// and the per-thread scratch. Shapes decide; the SIMD kernels only carry the plan out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tilenorm/norm.h"

namespace tilenorm {
class ThreadPool;
}  // namespace tilenorm

namespace tilenorm::cpu {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whether the outputs of a call whose tensors (inputs and outputs) total footprint_bytes are
// written with non-temporal stores.
bool stream_output(int64_t footprint_bytes);

// A call of fewer elements (x's) runs on the calling thread: waking the pool's workers costs
// more than their share of it (torch's CPU kernels draw the line at the same size). Results do
// not depend on the thread count, so this changes no bits.
inline constexpr int64_t kInlineElements = 32768;
// The pool a call of `elements` runs on: opt.num_threads' shared pool, or one thread below
// kInlineElements.
ThreadPool& call_pool(const NormOptions& opt, int64_t elements);

// A growing per-calling-thread scratch buffer: steady-state calls allocate nothing.
template <typename T>
T* scratch(std::unique_ptr<T[]>& buf, size_t& cap, size_t n) {
  if (n > cap) {
    buf.reset(new T[n]);
    cap = n;
  }
  return buf.get();
}

// bf16 gamma/beta are widened to f32 once per call when enough rows share them: the kernels
// then skip a conversion per element and pass. The values are exact either way.
inline bool widen_params(bool bf16, int64_t rows) { return bf16 && rows >= 16; }

struct ForwardPlan {
  bool row_split;  // every thread takes a column range of the same rows
  int64_t group;   // row-split: rows per group (their x stays in the L3 between the phases)
  const char* path;
};
// row_bytes: the bytes of one row that the second pass reads again. Forward results do not
// depend on the path (the same chunks merge in the same order), so the choice may look at the
// thread count.
ForwardPlan plan_forward(int64_t rows, int64_t C, int64_t row_bytes, int threads);

struct BackwardPlan {
  bool row_split;
  int64_t group;           // row-split: rows per group
  int64_t rows_per_chunk;  // whole rows: rows per dgamma/dbeta partial
  int64_t row_chunks;      // whole rows: number of partials
  const char* path;
};
// A function of the shape only, never of the thread count, so dgamma/dbeta are summed in the
// same order however many threads run.
BackwardPlan plan_backward(int64_t rows, int64_t C, int64_t elem_size);

// Columns per task when the dgamma/dbeta partials are combined.
inline constexpr int64_t kCombineCols = 256;

void set_report(const NormOptions& opt, const char* path, int threads,
                std::vector<std::pair<std::string, double>> extra = {});

}  // namespace tilenorm::cpu
