// A small fixed-size thread pool with a static partition: parallel_for(n, fn) calls fn(i) for
// i in [0, n), giving worker w the contiguous range [w*n/T, (w+1)*n/T). The same n and T always
// give the same partition, so per-task results can be combined deterministically by the caller.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tilenorm {

class ThreadPool {
 public:
  // Total threads including the caller; >= 1. Throws std::system_error when a thread cannot
  // start (the ones already started are joined first).
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }
  // Runs fn(begin, end, worker) once per worker over its contiguous share of [0, n).
  // Blocks until all are done. Safe to call from several threads (calls are serialised);
  // fn must not call parallel_for on the same pool.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

  // A process-wide pool of `num_threads` threads (0 = hardware concurrency), created on first use
  // of that size.
  static ThreadPool& shared(int num_threads);

 private:
  void worker_loop(int worker);
  void stop_workers();

  int num_threads_;
  std::vector<std::thread> threads_;
  std::mutex call_mu_;  // one parallel_for at a time
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  // Workers and the caller spin briefly on these before sleeping: a multi-phase kernel issues
  // several parallel_for calls back to back, and a futex wake-up per phase would cost more than
  // a phase of a small shape.
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;
};

int hardware_threads();

}  // namespace tilenorm
