// The kernel fibers under the compiler's sanitizers (built only by the presets `dev` and `tsan`):
// a use-after-return planted on a fiber stack is reported by AddressSanitizer, a data race planted
// between two cores on two host threads by ThreadSanitizer, and clean runs that switch stacks,
// throw across fibers and spread cores over threads report nothing. Each planted bug runs in a
// child process (a death test) whose report text is checked.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/device.h"
#include "tile/machine/machine_test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define TN_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TN_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TN_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TN_TEST_TSAN 1
#endif
#endif

namespace tilenorm::tile {
namespace {

using test_util::small_grid;

// Adds `extra` to the sanitizer options the child process of a death test starts with (it
// inherits this environment), after whatever the caller set.
void add_options(const char* variable, const std::string& extra) {
  const char* old = std::getenv(variable);
  const std::string value =
      (old != nullptr && *old != '\0') ? std::string(old) + ":" + extra : extra;
  setenv(variable, value.c_str(), 1);
}

// Runs `reader` (no args) as the reader kernel on every core of a `cores` x 1 grid, with one host
// thread per core.
Status run_on_cores(uint32_t cores, void (*reader)()) {
  DeviceConfig config = small_grid(cores, 1);
  config.host_threads = static_cast<int>(cores);
  Device device(config);
  Program p(device);
  const CoreRange all({0, 0}, {cores - 1, 0});
  TN_RETURN_IF_ERROR(p.create_circular_buffer(all, test_util::kIn0, DataFormat::Float16_b, 2));
  p.create_kernel(KernelKind::kReader, all, reader, "planted");
  return device.run(p);
}

// ---------------------------------------------------------------------------------------------
// AddressSanitizer.

// Leaves in *out the address of a local of this frame, which then returns (through an out
// parameter: a returned local address the compiler may replace by null).
[[maybe_unused]] __attribute__((noinline)) void dangling_local(volatile int** out) {
  volatile int local[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  *out = &local[3];
}

int g_sink = 0;

[[maybe_unused]] void use_after_return_reader() {
  volatile int* p = nullptr;
  dangling_local(&p);
  g_sink = *p;  // reads the returned frame's local
}

// A kernel whose frames go deep and then unwind by exception on every resume (the blocking
// calls throw when a core stops): the sanitizer must know which stack each fiber runs on.
__attribute__((noinline)) int deep(int n) {
  volatile char pad[256];
  pad[n % 256] = static_cast<char>(n);
  return n == 0 ? pad[0] : deep(n - 1) + pad[n % 256];
}

void deep_then_deadlock_reader() {
  g_sink = deep(200);
  cb_wait_front(test_util::kIn0, 1);  // never pushed: a deadlock, the fiber unwinds
}

TEST(FiberAsan, UseAfterReturnOnAFiberStackIsReported) {
#ifndef TN_TEST_ASAN
  GTEST_SKIP() << "needs AddressSanitizer (preset dev)";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  add_options("ASAN_OPTIONS", "detect_stack_use_after_return=1:halt_on_error=1");
  EXPECT_DEATH((void)run_on_cores(1, &use_after_return_reader),
               "AddressSanitizer: stack-use-after-return(.|\n)*use_after_return_reader(.|\n)*"
               "dangling_local");
#endif
}

TEST(FiberAsan, DeepFramesAndUnwindingOnFiberStacksAreClean) {
#ifndef TN_TEST_ASAN
  GTEST_SKIP() << "needs AddressSanitizer (preset dev)";
#else
  // A throw unwinds the fiber's frames; ASan unpoisons them only if it knows the fiber's stack,
  // and says so once per process otherwise (no other test of this binary runs a kernel here).
  ::testing::internal::CaptureStderr();
  for (int run = 0; run < 3; ++run) {
    const Status st = run_on_cores(2, &deep_then_deadlock_reader);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("deadlock"), std::string::npos) << st.message();
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("ASan is ignoring requested __asan_handle_no_return"), std::string::npos)
      << err;
#endif
}

// ---------------------------------------------------------------------------------------------
// ThreadSanitizer.

// Both cores' readers wait (relaxed atomics: no happens-before for the sanitizer) until both run,
// so that each runs on its own host thread at the same time.
std::atomic<int> g_arrived{0};
void meet_the_other_core() {
  g_arrived.fetch_add(1, std::memory_order_relaxed);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (g_arrived.load(std::memory_order_relaxed) < 2) {
    if (std::chrono::steady_clock::now() > deadline) std::abort();  // never both: no race
    std::this_thread::yield();
  }
}

// Then both write one plain int without synchronization.
int g_shared = 0;
[[maybe_unused]] void racing_reader() {
  meet_the_other_core();
  g_shared = g_shared + 1;
}

// Then each writes its own slot: no race.
struct SlotArgs {
  uint32_t slot;
};
int g_slots[2] = {0, 0};
[[maybe_unused]] void own_slot_reader(const SlotArgs& a) {
  meet_the_other_core();
  g_slots[a.slot] += 1;
}

TEST(FiberTsan, DataRaceBetweenTwoCoresIsReported) {
#ifndef TN_TEST_TSAN
  GTEST_SKIP() << "needs ThreadSanitizer (preset tsan)";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  add_options("TSAN_OPTIONS", "halt_on_error=1");
  g_arrived = 0;
  EXPECT_DEATH((void)run_on_cores(2, &racing_reader),
               "ThreadSanitizer: data race(.|\n)*racing_reader");
#endif
}

TEST(FiberTsan, CoresOnTwoThreadsWithoutSharedWritesAreClean) {
#ifndef TN_TEST_TSAN
  GTEST_SKIP() << "needs ThreadSanitizer (preset tsan)";
#else
  // A report here fails the process: ThreadSanitizer exits with 66 after reporting.
  for (int run = 0; run < 3; ++run) {
    g_arrived = 0;
    DeviceConfig config = small_grid(2, 1);
    config.host_threads = 2;
    Device device(config);
    Program p(device);
    auto k = p.create_kernel(KernelKind::kReader, CoreRange({0, 0}, {1, 0}), &own_slot_reader);
    p.set_runtime_args(k, {0, 0}, SlotArgs{0});
    p.set_runtime_args(k, {1, 0}, SlotArgs{1});
    ASSERT_TRUE(device.run(p).ok());
    EXPECT_EQ(g_slots[0], run + 1);
    EXPECT_EQ(g_slots[1], run + 1);
    const Status st = run_on_cores(2, &deep_then_deadlock_reader);
    EXPECT_NE(st.message().find("deadlock"), std::string::npos) << st.message();
  }
#endif
}

}  // namespace
}  // namespace tilenorm::tile
