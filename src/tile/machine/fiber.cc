// x86-64 System V context switch for the kernel fibers, with AddressSanitizer annotations.
#include "tile/machine/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include "tilenorm/status.h"

#if defined(__SANITIZE_ADDRESS__)
#define TN_ASAN_FIBERS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TN_ASAN_FIBERS 1
#endif
#endif
#ifdef TN_ASAN_FIBERS
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define TN_TSAN_FIBERS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TN_TSAN_FIBERS 1
#endif
#endif
#ifdef TN_TSAN_FIBERS
#include <sanitizer/tsan_interface.h>
#endif

#if !defined(__x86_64__)
#error "the tile machine's fibers are written for x86-64"
#endif

extern "C" {
void tn_fiber_switch(void** save_sp, void* new_sp);
void tn_fiber_trampoline();
__attribute__((visibility("hidden"), used)) void tn_fiber_run(void* fiber) {
  tilenorm::tile::detail::Fiber::run(static_cast<tilenorm::tile::detail::Fiber*>(fiber));
}
}

// Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp,
// switches to new_sp and restores the registers saved there. The trampoline is the first return
// address of a new fiber; it receives the Fiber* in r12.
asm(R"(
  .text
  .globl tn_fiber_switch
  .hidden tn_fiber_switch
  .type tn_fiber_switch,@function
tn_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size tn_fiber_switch, .-tn_fiber_switch

  .globl tn_fiber_trampoline
  .hidden tn_fiber_trampoline
  .type tn_fiber_trampoline,@function
tn_fiber_trampoline:
  movq %r12, %rdi
  call tn_fiber_run
  ud2
  .size tn_fiber_trampoline, .-tn_fiber_trampoline
)");

namespace tilenorm::tile::detail {
namespace {

thread_local void* t_scheduler_sp = nullptr;
thread_local Fiber* t_current = nullptr;
#ifdef TN_TSAN_FIBERS
thread_local void* t_tsan_scheduler = nullptr;
#endif
#ifdef TN_ASAN_FIBERS
thread_local const void* t_thread_stack_bottom = nullptr;
thread_local size_t t_thread_stack_size = 0;
#endif

}  // namespace

FiberStack::FiberStack(size_t size) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  guard_ = page;
  size_ = (size + page - 1) / page * page;
  mapped_ = size_ + guard_;
  void* p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  TN_CHECK(p != MAP_FAILED, "mmap of a fiber stack failed");
  base_ = static_cast<char*>(p);
  // A stack overflow faults on the guard page instead of corrupting the neighbour.
  TN_CHECK(mprotect(base_, guard_, PROT_NONE) == 0, "mprotect of a fiber guard page failed");
}

FiberStack::~FiberStack() { munmap(base_, mapped_); }

Fiber::~Fiber() {
#ifdef TN_TSAN_FIBERS
  if (tsan_fiber_ != nullptr) __tsan_destroy_fiber(tsan_fiber_);
#endif
}

void Fiber::start(FiberStack* stack, void (*entry)(void*), void* arg) {
  stack_ = stack;
  entry_ = entry;
  arg_ = arg;
  finished_ = false;
#ifdef TN_TSAN_FIBERS
  if (tsan_fiber_ == nullptr) tsan_fiber_ = __tsan_create_fiber(0);
#endif
  auto top = reinterpret_cast<uintptr_t>(stack->bottom() + stack->size()) & ~uintptr_t{15};
  auto* frame = reinterpret_cast<void**>(top - 16 - 56);
  for (int i = 0; i < 6; ++i) frame[i] = nullptr;  // r15 r14 r13 r12 rbx rbp
  frame[3] = this;                                 // r12: the Fiber* for the trampoline
  frame[6] = reinterpret_cast<void*>(&tn_fiber_trampoline);
  sp_ = frame;
}

void Fiber::resume() {
  TN_CHECK(!finished_ && t_current == nullptr, "resume of a finished fiber or from a fiber");
  t_current = this;
#ifdef TN_TSAN_FIBERS
  t_tsan_scheduler = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(tsan_fiber_, 0);
#endif
#ifdef TN_ASAN_FIBERS
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, stack_->bottom(), stack_->size());
  tn_fiber_switch(&t_scheduler_sp, sp_);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  tn_fiber_switch(&t_scheduler_sp, sp_);
#endif
  t_current = nullptr;
}

void Fiber::yield() {
  Fiber* self = t_current;
#ifdef TN_TSAN_FIBERS
  __tsan_switch_to_fiber(t_tsan_scheduler, 0);
#endif
#ifdef TN_ASAN_FIBERS
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, t_thread_stack_bottom, t_thread_stack_size);
  tn_fiber_switch(&self->sp_, t_scheduler_sp);
  // Resumed: by the scheduler of this thread, whose stack bounds the next yield switches to.
  __sanitizer_finish_switch_fiber(fake, &t_thread_stack_bottom, &t_thread_stack_size);
#else
  tn_fiber_switch(&self->sp_, t_scheduler_sp);
#endif
}

void Fiber::run(Fiber* fiber) {
#ifdef TN_ASAN_FIBERS
  __sanitizer_finish_switch_fiber(nullptr, &t_thread_stack_bottom, &t_thread_stack_size);
#endif
  fiber->entry_(fiber->arg_);  // must not throw: the entry catches everything
  fiber->finished_ = true;
#ifdef TN_TSAN_FIBERS
  __tsan_switch_to_fiber(t_tsan_scheduler, 0);
#endif
#ifdef TN_ASAN_FIBERS
  __sanitizer_start_switch_fiber(nullptr, t_thread_stack_bottom, t_thread_stack_size);
#endif
  void* unused = nullptr;
  tn_fiber_switch(&unused, t_scheduler_sp);
}

}  // namespace tilenorm::tile::detail
