#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>

namespace tilenorm {
namespace {

TEST(ThreadPool, StaticPartitionCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::vector<std::pair<int64_t, int64_t>> ranges(static_cast<size_t>(threads), {-1, -1});
      pool.parallel_for(n, [&](int64_t b, int64_t e, int w) {
        ranges[static_cast<size_t>(w)] = {b, e};
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)], 1);
      // Worker w owns [w*n/T, (w+1)*n/T) whenever that range is non-empty.
      for (int w = 0; w < threads && n > 1; ++w) {
        const int64_t b = n * w / threads, e = n * (w + 1) / threads;
        if (b < e) {
          EXPECT_EQ(ranges[static_cast<size_t>(w)], std::make_pair(b, e));
        }
      }
    }
  }
}

}  // namespace
}  // namespace tilenorm
