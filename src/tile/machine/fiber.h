// Stackful cooperative fibers for kernels: a hand-written x86-64 context switch (callee-saved
// registers and the stack pointer only), so a switch costs a few nanoseconds, not a syscall.
#pragma once

#include <cstddef>

namespace tilenorm::tile::detail {

// One fiber stack with a guard page below it; reused for many kernels.
class FiberStack {
 public:
  explicit FiberStack(size_t size);
  ~FiberStack();
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  char* bottom() const { return base_ + guard_; }
  size_t size() const { return size_; }

 private:
  char* base_ = nullptr;
  size_t guard_ = 0;
  size_t size_ = 0;
  size_t mapped_ = 0;
};

// A fiber runs entry(arg) on its stack. The scheduler (the thread's own stack) calls resume();
// the fiber calls yield() to return to it. When entry returns the fiber is finished.
class Fiber {
 public:
  Fiber() = default;
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  void start(FiberStack* stack, void (*entry)(void*), void* arg);
  void resume();        // from the scheduler; returns when the fiber yields or finishes
  static void yield();  // from inside a fiber
  bool finished() const { return finished_; }

  // Internal: first code run on the fiber's stack.
  static void run(Fiber* fiber);

 private:
  void* sp_ = nullptr;
  FiberStack* stack_ = nullptr;
  void (*entry_)(void*) = nullptr;
  void* arg_ = nullptr;
  bool finished_ = true;
  void* tsan_fiber_ = nullptr;  // ThreadSanitizer's context for this fiber, when built with it
};

}  // namespace tilenorm::tile::detail
