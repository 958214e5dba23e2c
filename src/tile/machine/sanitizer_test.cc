// Each sanitizer rule: a small kernel that breaks it and the report it must produce (kind, core,
// kernel, op, CB or slot, source line), plus clean kernels that raise nothing.
#include "tile/machine/api/compute/sanitizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tile/machine/api/compute/bcast.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/mask.h"
#include "tile/machine/api/compute/matmul.h"
#include "tile/machine/api/compute/reduce.h"
#include "tile/machine/machine_test_util.h"

namespace tilenorm::tile {
namespace {

using namespace test_util;  // NOLINT: the shared test kernels

constexpr uint32_t kIn2 = 2;

// Kernels here take no args; what they need comes from these (host_threads = 1).
uint32_t g_addr = 0;    // a 4-page bf16 DRAM buffer
uint32_t g_line = 0;    // source line of the offending call, set by the kernel
uint32_t g_slot = 0;    // dst slot for parameterised kernels
float g_out_value = 0;  // a value a kernel observed
float g_out_value2 = 0;

struct Kernels {
  std::vector<std::pair<uint32_t, uint32_t>> cbs = {{kIn0, 2}, {kIn1, 2}, {kOut, 2}};  // bf16
  void (*reader)() = nullptr;
  void (*compute)() = nullptr;
  void (*writer)() = nullptr;
  ComputeConfig cc;
  CoreCoord core{0, 0};
};

struct Machine {
  explicit Machine(SanitizerMode mode) : Machine(config(mode)) {}
  explicit Machine(const DeviceConfig& cfg) : device(cfg) {
    EXPECT_TRUE(device.create_buffer(4, DataFormat::Float16_b, &buffer).ok());
    std::vector<float> ones(4 * kTileElems, 1.0f);
    const auto bytes = to_bytes(ones, DataFormat::Float16_b);
    EXPECT_TRUE(device.write_buffer(buffer, bytes.data(), bytes.size()).ok());
    g_addr = buffer.address;
  }
  static DeviceConfig config(SanitizerMode mode) {
    DeviceConfig c = small_grid(2, 1);
    c.sanitizer = mode;
    return c;
  }
  Status run(const Kernels& s) {
    Program p(device);
    for (auto [cb, pages] : s.cbs) {
      EXPECT_TRUE(p.create_circular_buffer(s.core, cb, DataFormat::Float16_b, pages).ok());
    }
    if (s.reader) p.create_kernel(KernelKind::kReader, s.core, s.reader, "rd");
    if (s.compute) p.create_kernel(KernelKind::kCompute, s.core, s.compute, "cmp", s.cc);
    if (s.writer) p.create_kernel(KernelKind::kWriter, s.core, s.writer, "wr");
    return device.run(p);
  }
  const std::vector<SanitizerReport>& reports() const { return device.last_run().reports; }
  Device device;
  Buffer buffer;
};

// Asserts exactly one report of `kind` (and no other report when `only`).
const SanitizerReport& expect_report(const Machine& m, ReportKind kind, KernelKind kernel,
                                     bool only = true) {
  const auto found = m.device.last_run().of_kind(kind);
  std::string all;
  for (const SanitizerReport& r : m.reports()) all += r.to_string() + "\n";
  EXPECT_EQ(found.size(), 1u) << report_kind_name(kind) << "\n" << all;
  if (only) {
    EXPECT_EQ(m.reports().size(), 1u) << all;
  }
  static const SanitizerReport kNone;
  if (found.empty()) return kNone;
  EXPECT_EQ(found[0]->kernel, kernel) << all;
  return *found[0];
}

// A tile from DRAM into `cb`, pushed.
void push_one(uint32_t cb) {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(g_addr, cb);
  cb_reserve_back(cb, 1);
  noc_async_read_tile(0, s, get_write_ptr(cb));
  noc_async_read_barrier();
  cb_push_back(cb, 1);
}

void reader_in0() { push_one(kIn0); }
void reader_in0_in1() {
  push_one(kIn0);
  push_one(kIn1);
}

// ---------------------------------------------------------------------------------------------
// Deadlock.

void deadlock_reader() {
  cb_wait_front(kIn1, 1);  // waits for the compute kernel, which waits for this reader
  cb_pop_front(kIn1, 1);
  push_one(kIn0);
}
void deadlock_compute() {
  cb_wait_front(kIn0, 1);
  cb_pop_front(kIn0, 1);
}

TEST(Sanitizer, ProducerConsumerDeadlockIsReportedAtOnceInEveryMode) {
  for (SanitizerMode mode : {SanitizerMode::kError, SanitizerMode::kWarn, SanitizerMode::kOff}) {
    Machine m(mode);
    Kernels s;
    s.reader = &deadlock_reader;
    s.compute = &deadlock_compute;
    s.core = {1, 0};
    const Status st = m.run(s);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("deadlock"), std::string::npos) << st.message();
    const SanitizerReport& r = expect_report(m, ReportKind::kDeadlock, KernelKind::kReader);
    EXPECT_EQ(r.core, (CoreCoord{1, 0}));
    EXPECT_EQ(r.cb, int(kIn1));
    EXPECT_EQ(r.op, "cb_wait_front");
    EXPECT_NE(r.message.find("reader 'rd' blocked in cb_wait_front(cb 1, 1)"), std::string::npos)
        << r.message;
    EXPECT_NE(r.message.find("compute 'cmp' blocked in cb_wait_front(cb 0, 1)"), std::string::npos);
    EXPECT_NE(r.message.find("available 0 pages of 2"), std::string::npos);
    EXPECT_NE(r.message.find("CB  0"), std::string::npos);  // the CB occupancy dump
    EXPECT_NE(r.message.find("CB 16"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// CB misuse.

void missing_pop_compute() {
  for (int i = 0; i < 3; ++i) {
    cb_reserve_back(kOut, 1);
    tile_regs_acquire();
    fill_tile(0, 1.0f);
    tile_regs_commit();
    tile_regs_wait();
    pack_tile(0, kOut);
    tile_regs_release();
    cb_push_back(kOut, 1);
  }
}
void missing_pop_writer() {
  for (int i = 0; i < 3; ++i) {
    g_line = __LINE__ + 1;
    cb_wait_front(kOut, 1);  // never popped
  }
}

TEST(Sanitizer, MissingPopIsADanglingWaitThenADeadlock) {
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.compute = &missing_pop_compute;
    s.writer = &missing_pop_writer;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r = expect_report(m, ReportKind::kCbDanglingWait, KernelKind::kWriter);
    EXPECT_EQ(r.cb, int(kOut));
    EXPECT_EQ(r.line, g_line);  // the last cb_wait_front
  }
  {
    Machine m(SanitizerMode::kWarn);
    Kernels s;
    s.compute = &missing_pop_compute;
    s.writer = &missing_pop_writer;
    EXPECT_FALSE(m.run(s).ok());  // the deadlock is fatal in every mode
    expect_report(m, ReportKind::kCbDanglingWait, KernelKind::kWriter, false);
    const SanitizerReport& d = expect_report(m, ReportKind::kDeadlock, KernelKind::kCompute, false);
    EXPECT_EQ(d.cb, int(kOut));
    EXPECT_EQ(d.op, "cb_reserve_back");
    EXPECT_NE(d.message.find("free 0 pages of 2"), std::string::npos) << d.message;
  }
}

void pop_more_compute() {
  cb_wait_front(kIn0, 1);
  g_line = __LINE__ + 1;
  cb_pop_front(kIn0, 2);
}

TEST(Sanitizer, PopMoreThanWaited) {
  Machine m(SanitizerMode::kError);
  Kernels s;
  s.reader = [] {
    push_one(kIn0);
    push_one(kIn0);
  };
  s.compute = &pop_more_compute;
  const Status st = m.run(s);
  ASSERT_FALSE(st.ok());
  const SanitizerReport& r =
      expect_report(m, ReportKind::kCbPopMoreThanWaited, KernelKind::kCompute);
  EXPECT_EQ(r.cb, int(kIn0));
  EXPECT_EQ(r.line, g_line);
  EXPECT_NE(std::string(r.file).find("sanitizer_test.cc"), std::string::npos);
  EXPECT_NE(st.message().find("cb-pop-more-than-waited"), std::string::npos);
  EXPECT_NE(st.message().find("sanitizer_test.cc:" + std::to_string(g_line)), std::string::npos)
      << st.message();
}

void push_without_reserve_reader() {
  g_line = __LINE__ + 1;
  cb_push_back(kIn0, 1);
}

TEST(Sanitizer, PushWithoutReserve) {
  Machine m(SanitizerMode::kError);
  Kernels s;
  s.reader = &push_without_reserve_reader;
  EXPECT_FALSE(m.run(s).ok());
  const SanitizerReport& r =
      expect_report(m, ReportKind::kCbPushWithoutReserve, KernelKind::kReader);
  EXPECT_EQ(r.cb, int(kIn0));
  EXPECT_EQ(r.line, g_line);
}

void write_ptr_before_reserve_reader() {
  g_line = __LINE__ + 1;
  (void)get_write_ptr(kIn0);
}

void copy_outside_wait_compute() {
  cb_wait_front(kIn0, 1);
  tile_regs_acquire();
  g_line = __LINE__ + 1;
  copy_tile(kIn0, 1, 0);  // only page 0 is waited for
}

void l1_ptr_after_push_reader() {
  cb_reserve_back(kIn0, 1);
  const uint32_t addr = get_write_ptr(kIn0);
  l1_ptr<uint16_t>(addr, kTileElems)[0] = 0;  // inside the window: fine
  cb_push_back(kIn0, 1);
  g_line = __LINE__ + 1;
  l1_ptr<uint16_t>(addr, kTileElems)[0] = 0;  // the page now belongs to the consumer
}

TEST(Sanitizer, AccessOutsideTheWindow) {
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &write_ptr_before_reserve_reader;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r =
        expect_report(m, ReportKind::kCbAccessOutsideWindow, KernelKind::kReader);
    EXPECT_EQ(r.op, "get_write_ptr");
    EXPECT_EQ(r.line, g_line);
  }
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &reader_in0;
    s.compute = &copy_outside_wait_compute;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r =
        expect_report(m, ReportKind::kCbAccessOutsideWindow, KernelKind::kCompute);
    EXPECT_EQ(r.op, "copy_tile");
    EXPECT_EQ(r.cb, int(kIn0));
    EXPECT_EQ(r.line, g_line);
  }
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &l1_ptr_after_push_reader;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r =
        expect_report(m, ReportKind::kCbAccessOutsideWindow, KernelKind::kReader);
    EXPECT_EQ(r.op, "l1_ptr");
    EXPECT_EQ(r.line, g_line);
  }
}

// A 3-page CB used 2 pages at a time: the second window is pages 2 and 0, which unpack and
// pack cannot address (they do not wrap at the CB's end).
constexpr uint32_t kWrapTiles = 4;

void push_four_reader() {
  for (uint32_t i = 0; i < kWrapTiles; ++i) push_one(kIn0);
}

void pop_four_writer() {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(g_addr, kOut);
  for (uint32_t i = 0; i < kWrapTiles; ++i) {
    cb_wait_front(kOut, 1);
    noc_async_write_tile(i, s, get_read_ptr(kOut));
    noc_async_write_barrier();
    cb_pop_front(kOut, 1);
  }
}

// Copies pairs of kIn0 tiles to kOut. kWrapIn: kIn0 is the 3-page CB and copy_tile wraps;
// otherwise kOut is and pack_tile wraps.
template <bool kWrapIn>
void copy_pairs_compute() {
  copy_tile_init(kIn0);
  for (uint32_t i = 0; i < kWrapTiles; i += 2) {
    cb_wait_front(kIn0, 2);
    tile_regs_acquire();
    copy_tile(kIn0, 0, 0);
    if (kWrapIn) g_line = __LINE__ + 1;
    copy_tile(kIn0, 1, 1);
    tile_regs_commit();
    tile_regs_wait();
    cb_reserve_back(kOut, 2);
    pack_tile(0, kOut, 0);
    if (!kWrapIn) g_line = __LINE__ + 1;
    pack_tile(1, kOut, 1);
    cb_push_back(kOut, 2);
    tile_regs_release();
    cb_pop_front(kIn0, 2);
  }
}

TEST(Sanitizer, WindowThatWrapsTheCbEndIsAnErrorInEveryMode) {
  for (SanitizerMode mode : {SanitizerMode::kError, SanitizerMode::kWarn, SanitizerMode::kOff}) {
    for (bool wrap_in : {true, false}) {
      SCOPED_TRACE(testing::Message() << "mode " << int(mode) << (wrap_in ? " input" : " output"));
      const uint32_t wrap_cb = wrap_in ? kIn0 : kOut;
      Machine m(mode);
      Kernels s;
      s.cbs = {{kIn0, wrap_in ? 3u : 4u}, {kOut, wrap_in ? 4u : 3u}};
      s.core = {1, 0};
      s.reader = &push_four_reader;
      s.compute = wrap_in ? &copy_pairs_compute<true> : &copy_pairs_compute<false>;
      s.writer = &pop_four_writer;
      const Status st = m.run(s);
      EXPECT_FALSE(st.ok());
      const SanitizerReport& r =
          expect_report(m, ReportKind::kCbAccessOutsideWindow, KernelKind::kCompute);
      EXPECT_EQ(r.op, wrap_in ? "copy_tile" : "pack_tile");
      EXPECT_EQ(r.core, (CoreCoord{1, 0}));
      EXPECT_EQ(r.cb, int(wrap_cb));
      EXPECT_EQ(r.line, g_line);
      EXPECT_NE(r.message.find("page 3 of a 3-page CB"), std::string::npos) << r.message;
      EXPECT_NE(st.message().find("cb-access-outside-window"), std::string::npos) << st.message();
    }
  }
}

void second_producer_writer() {
  g_line = __LINE__ + 1;
  cb_reserve_back(kIn0, 1);
}
void second_consumer_writer() {
  g_line = __LINE__ + 1;
  cb_wait_front(kIn0, 1);
}
void consume_in0_compute() {
  cb_wait_front(kIn0, 1);
  cb_pop_front(kIn0, 1);
}

TEST(Sanitizer, TwoProducersAndTwoConsumers) {
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &reader_in0;
    s.compute = &consume_in0_compute;
    s.writer = &second_producer_writer;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r = expect_report(m, ReportKind::kCbTwoProducers, KernelKind::kWriter);
    EXPECT_EQ(r.cb, int(kIn0));
    EXPECT_EQ(r.line, g_line);
    EXPECT_NE(r.message.find("reader"), std::string::npos);
  }
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &reader_in0;
    s.compute = &consume_in0_compute;
    s.writer = &second_consumer_writer;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r = expect_report(m, ReportKind::kCbTwoConsumers, KernelKind::kWriter);
    EXPECT_EQ(r.cb, int(kIn0));
    EXPECT_EQ(r.line, g_line);
  }
}

TEST(Sanitizer, DanglingReserve) {
  Machine m(SanitizerMode::kError);
  Kernels s;
  s.reader = [] {
    g_line = __LINE__ + 1;
    cb_reserve_back(kIn1, 2);
  };
  EXPECT_FALSE(m.run(s).ok());
  const SanitizerReport& r = expect_report(m, ReportKind::kCbDanglingReserve, KernelKind::kReader);
  EXPECT_EQ(r.cb, int(kIn1));
  EXPECT_EQ(r.line, g_line);
  EXPECT_NE(r.message.find("2 pages"), std::string::npos);
}

TEST(Sanitizer, ReserveMoreThanTheCbHoldsIsReportedInsteadOfHanging) {
  Machine m(SanitizerMode::kOff);
  Kernels s;
  s.reader = [] { cb_reserve_back(kIn1, 3); };
  EXPECT_FALSE(m.run(s).ok());
  const SanitizerReport& r = expect_report(m, ReportKind::kCbOverCapacity, KernelKind::kReader);
  EXPECT_EQ(r.cb, int(kIn1));
}

TEST(Sanitizer, UnknownCbIsAnErrorInEveryMode) {
  Machine m(SanitizerMode::kOff);
  Kernels s;
  s.reader = [] { cb_reserve_back(7, 1); };
  EXPECT_FALSE(m.run(s).ok());
  const SanitizerReport& r = expect_report(m, ReportKind::kCbUnknown, KernelKind::kReader);
  EXPECT_EQ(r.cb, 7);
}

// ---------------------------------------------------------------------------------------------
// NoC.

void read_no_barrier_reader() {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(g_addr, kIn0);
  cb_reserve_back(kIn0, 1);
  noc_async_read_tile(0, s, get_write_ptr(kIn0));
  g_line = __LINE__ + 1;
  cb_push_back(kIn0, 1);
  noc_async_read_barrier();
}

void write_no_barrier_writer() {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(g_addr, kIn0);
  cb_wait_front(kIn0, 1);
  noc_async_write_tile(1, s, get_read_ptr(kIn0));
  g_line = __LINE__ + 1;
  cb_pop_front(kIn0, 1);
  noc_async_write_barrier();
}

TEST(Sanitizer, NocReadAndWriteWithoutBarrier) {
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &read_no_barrier_reader;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r =
        expect_report(m, ReportKind::kNocReadNotBarriered, KernelKind::kReader);
    EXPECT_EQ(r.cb, int(kIn0));
    EXPECT_EQ(r.line, g_line);
  }
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &reader_in0;
    s.writer = &write_no_barrier_writer;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r =
        expect_report(m, ReportKind::kNocWriteNotBarriered, KernelKind::kWriter);
    EXPECT_EQ(r.cb, int(kIn0));
    EXPECT_EQ(r.line, g_line);
  }
}

// A read lands in L1 only at its barrier: a consumer that runs before it sees the old bytes.
void read_late_barrier_reader() {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(g_addr, kIn0);
  cb_reserve_back(kIn0, 1);
  const uint32_t addr = get_write_ptr(kIn0);
  l1_ptr<uint16_t>(addr, kTileElems)[0] = float_to_bf16(5.0f).bits;
  noc_async_read_tile(0, s, addr);  // DRAM holds 1.0
  g_out_value = bf16_to_float(bf16{l1_ptr<uint16_t>(addr, kTileElems)[0]});
  noc_async_read_barrier();
  g_out_value2 = bf16_to_float(bf16{l1_ptr<uint16_t>(addr, kTileElems)[0]});
  cb_push_back(kIn0, 1);
}

TEST(Noc, ReadBecomesVisibleAtTheBarrier) {
  Machine m(SanitizerMode::kWarn);
  Kernels s;
  s.reader = &read_late_barrier_reader;
  ASSERT_TRUE(m.run(s).ok());
  EXPECT_EQ(g_out_value, 5.0f);
  EXPECT_EQ(g_out_value2, 1.0f);
  EXPECT_TRUE(m.reports().empty());
}

TEST(Sanitizer, BadDramAccessIsAnErrorEvenWithTheSanitizerOff) {
  Machine m(SanitizerMode::kOff);
  Kernels s;
  s.reader = [] {
    const InterleavedAddrGenFast<true> src = tile_addr_gen(g_addr, kIn0);
    cb_reserve_back(kIn0, 1);
    noc_async_read_tile(4, src, get_write_ptr(kIn0));  // the buffer has pages 0..3
  };
  const Status st = m.run(s);
  ASSERT_FALSE(st.ok());
  const SanitizerReport& r = expect_report(m, ReportKind::kNocBadAccess, KernelKind::kReader);
  EXPECT_NE(r.message.find("tile 4"), std::string::npos) << r.message;
  EXPECT_NE(st.message().find("noc-bad-access"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Kernel API of another kernel kind: on hardware a reader is built against dataflow_api.h and a
// compute kernel against compute_kernel_api/, so such a call does not compile.

void reader_calls_copy_tile() {
  push_one(kIn0);
  g_line = __LINE__ + 1;
  copy_tile(kIn0, 0, 0);
}

void compute_calls_noc_read() {
  const InterleavedAddrGenFast<true> s = {.bank_base_address = g_addr,
                                          .page_size = tile_size(DataFormat::Float16_b),
                                          .data_format = DataFormat::Float16_b};
  cb_reserve_back(kIn1, 1);
  g_line = __LINE__ + 1;
  noc_async_read_tile(0, s, 0);
}

void writer_calls_tile_regs_acquire() {
  g_line = __LINE__ + 1;
  tile_regs_acquire();
}

TEST(Sanitizer, KernelApiOfAnotherKernelKind) {
  struct Case {
    void (*reader)();
    void (*compute)();
    void (*writer)();
    KernelKind kind;
    const char* op;
    const char* name;
  };
  for (const Case& c :
       {Case{&reader_calls_copy_tile, nullptr, nullptr, KernelKind::kReader, "copy_tile", "rd"},
        Case{nullptr, &compute_calls_noc_read, nullptr, KernelKind::kCompute, "noc_async_read_tile",
             "cmp"},
        Case{nullptr, nullptr, &writer_calls_tile_regs_acquire, KernelKind::kWriter,
             "tile_regs_acquire", "wr"}}) {
    SCOPED_TRACE(c.op);
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = c.reader;
    s.compute = c.compute;
    s.writer = c.writer;
    const Status st = m.run(s);
    ASSERT_FALSE(st.ok());
    const SanitizerReport& r = expect_report(m, ReportKind::kKernelApiKind, c.kind);
    EXPECT_EQ(r.kernel_name, c.name);
    EXPECT_EQ(r.op, c.op);
    EXPECT_EQ(r.line, g_line);
    EXPECT_NE(std::string(r.file).find("sanitizer_test.cc"), std::string::npos);
    EXPECT_NE(r.message.find("does not compile"), std::string::npos) << r.message;
    EXPECT_NE(st.message().find("kernel-api-kind"), std::string::npos) << st.message();
  }
}

// ---------------------------------------------------------------------------------------------
// Dst protocol.

void op_outside_acquire_compute() {
  cb_wait_front(kIn0, 1);
  g_line = __LINE__ + 1;
  copy_tile(kIn0, 0, 0);
}

void nested_acquire_compute() {
  tile_regs_acquire();
  fill_tile(0, 1.0f);
  g_line = __LINE__ + 1;
  tile_regs_acquire();
}

void pack_before_commit_compute() {
  cb_reserve_back(kOut, 1);
  tile_regs_acquire();
  fill_tile(0, 1.0f);
  g_line = __LINE__ + 1;
  pack_tile(0, kOut);
}

TEST(Sanitizer, DstProtocol) {
  struct Case {
    void (*compute)();
    void (*reader)();
    ReportKind kind;
    const char* op;
  };
  const Case cases[] = {
      {&op_outside_acquire_compute, &reader_in0, ReportKind::kDstOpOutsideAcquire, "copy_tile"},
      {&nested_acquire_compute, nullptr, ReportKind::kDstNestedAcquire, "tile_regs_acquire"},
      {&pack_before_commit_compute, nullptr, ReportKind::kDstPackBeforeCommit, "pack_tile"},
  };
  for (const Case& c : cases) {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = c.reader;
    s.compute = c.compute;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r = expect_report(m, c.kind, KernelKind::kCompute);
    EXPECT_EQ(r.op, c.op);
    EXPECT_EQ(r.line, g_line);
  }
}

void release_without_wait_compute() {
  tile_regs_acquire();
  fill_tile(0, 1.0f);
  tile_regs_commit();
  g_line = __LINE__ + 1;
  tile_regs_release();
}

TEST(Sanitizer, OtherDstOrderErrors) {
  {
    Machine m(SanitizerMode::kWarn);
    Kernels s;
    s.compute = &release_without_wait_compute;
    EXPECT_TRUE(m.run(s).ok());
    const SanitizerReport& r =
        expect_report(m, ReportKind::kDstProtocol, KernelKind::kCompute, false);
    EXPECT_EQ(r.op, "tile_regs_release");
    EXPECT_EQ(r.line, g_line);
  }
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.compute = [] { tile_regs_commit(); };
    EXPECT_FALSE(m.run(s).ok());
    EXPECT_EQ(expect_report(m, ReportKind::kDstProtocol, KernelKind::kCompute).op,
              "tile_regs_commit");
  }
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.compute = [] { tile_regs_acquire(); };
    EXPECT_FALSE(m.run(s).ok());
    EXPECT_EQ(expect_report(m, ReportKind::kDstProtocol, KernelKind::kCompute).op, "kernel end");
  }
  {
    Machine m(SanitizerMode::kOff);  // would hang on hardware: reported in every mode
    Kernels s;
    s.compute = [] { tile_regs_wait(); };
    EXPECT_FALSE(m.run(s).ok());
    EXPECT_EQ(expect_report(m, ReportKind::kDstProtocol, KernelKind::kCompute).op,
              "tile_regs_wait");
  }
}

// Writes slot g_slot with a full, clean protocol around it.
void slot_compute() {
  tile_regs_acquire();
  g_line = __LINE__ + 1;
  fill_tile(g_slot, 2.0f);
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 1);
  pack_tile(g_slot, kOut);
  cb_push_back(kOut, 1);
  tile_regs_release();
}
void drain_out_writer() {
  cb_wait_front(kOut, 1);
  cb_pop_front(kOut, 1);
}

TEST(Sanitizer, SlotOverCapacityFollowsTheCapacityTable) {
  struct Case {
    bool fp32, full;
    uint32_t capacity;
  };
  for (const Case c :
       {Case{false, false, 8}, Case{true, false, 4}, Case{false, true, 16}, Case{true, true, 8}}) {
    for (uint32_t slot : {c.capacity - 1, c.capacity}) {
      Machine m(SanitizerMode::kError);
      Kernels s;
      s.compute = &slot_compute;
      s.writer = &drain_out_writer;
      s.cc.fp32_dest_acc_en = c.fp32;
      s.cc.dst_full_sync_en = c.full;
      g_slot = slot;
      const Status st = m.run(s);
      if (slot < c.capacity) {
        EXPECT_TRUE(st.ok()) << st.to_string();
        EXPECT_TRUE(m.reports().empty());
      } else {
        EXPECT_FALSE(st.ok());
        const SanitizerReport& r =
            expect_report(m, ReportKind::kDstSlotOverCapacity, KernelKind::kCompute);
        EXPECT_EQ(r.slot, int(slot));
        EXPECT_EQ(r.line, g_line);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Poison.

void pack_unwritten_slot_compute() {
  tile_regs_acquire();
  fill_tile(0, 1.0f);
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 2);
  pack_tile(0, kOut, 0);
  g_line = __LINE__ + 1;
  pack_tile(1, kOut, 1);
  cb_push_back(kOut, 2);
  tile_regs_release();
}

TEST(Sanitizer, ReadOfUnwrittenDstSlot) {
  Machine m(SanitizerMode::kError);
  Kernels s;
  s.compute = &pack_unwritten_slot_compute;
  EXPECT_FALSE(m.run(s).ok());
  const SanitizerReport& r = expect_report(m, ReportKind::kPoisonDstRead, KernelKind::kCompute);
  EXPECT_EQ(r.slot, 1);
  EXPECT_EQ(r.op, "pack_tile");
  EXPECT_EQ(r.line, g_line);
}

void push_unwritten_reader() {
  cb_reserve_back(kIn0, 1);
  cb_push_back(kIn0, 1);  // the page was never written
}
void copy_in0_compute() {
  cb_wait_front(kIn0, 1);
  tile_regs_acquire();
  g_line = __LINE__ + 1;
  copy_tile(kIn0, 0, 0);
}
void write_in0_writer() {
  const InterleavedAddrGenFast<true> s = tile_addr_gen(g_addr, kIn0);
  cb_wait_front(kIn0, 1);
  noc_async_write_tile(2, s, get_read_ptr(kIn0));
  g_line = __LINE__ + 1;
  noc_async_write_barrier();
  cb_pop_front(kIn0, 1);
}

TEST(Sanitizer, ReadOfUnwrittenL1) {
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &push_unwritten_reader;
    s.compute = &copy_in0_compute;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r = expect_report(m, ReportKind::kPoisonL1Read, KernelKind::kCompute);
    EXPECT_EQ(r.cb, int(kIn0));
    EXPECT_EQ(r.op, "copy_tile");
    EXPECT_EQ(r.line, g_line);
  }
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &push_unwritten_reader;
    s.writer = &write_in0_writer;
    EXPECT_FALSE(m.run(s).ok());
    const SanitizerReport& r = expect_report(m, ReportKind::kPoisonL1Read, KernelKind::kWriter);
    EXPECT_EQ(r.op, "noc_async_write_barrier");
    EXPECT_EQ(r.line, g_line);
  }
}

// ---------------------------------------------------------------------------------------------
// Implicit accumulation: upstream's Bug 1 in miniature. in0 = g = 1, in1 = s2 = 0.5 (x̂ = in0),
// in2 = s1 = 0.25. Intended: dx = g - s1 - x̂·s2 = 0.25. The buggy order leaves s1 in the slot
// the product accumulates onto: dx = g - 2·s1 - x̂·s2 = 0.

struct Bug1Args {
  uint32_t fixed;
};
void bug1_compute(const Bug1Args& a) {
  cb_wait_front(kIn0, 1);
  cb_wait_front(kIn1, 1);
  cb_wait_front(kIn2, 1);
  tile_regs_acquire();
  copy_tile(kIn0, 0, 0);     // g
  copy_tile(kIn2, 0, 1);     // s1
  sub_binary_tile(0, 1, 0);  // g - s1
  if (a.fixed) fill_tile(1, 0.0f);
  mul_tiles_init(kIn0, kIn1);
  g_line = __LINE__ + 1;
  mul_tiles(kIn0, kIn1, 0, 0, 1);  // x̂·s2, accumulating onto slot 1
  sub_binary_tile(0, 1, 0);
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 1);
  pack_tile(0, kOut);
  cb_push_back(kOut, 1);
  tile_regs_release();
  cb_pop_front(kIn0, 1);
  cb_pop_front(kIn1, 1);
  cb_pop_front(kIn2, 1);
}

struct ConstArgs {
  float in0, in1, in2;
};
void const_reader(const ConstArgs& a) {
  const float values[3] = {a.in0, a.in1, a.in2};
  for (uint32_t cb = 0; cb < 3; ++cb) {
    cb_reserve_back(cb, 1);
    uint16_t* p = l1_ptr<uint16_t>(get_write_ptr(cb), kTileElems);
    for (int i = 0; i < kTileElems; ++i) p[i] = float_to_bf16(values[cb]).bits;
    cb_push_back(cb, 1);
  }
}
void value_writer() {
  cb_wait_front(kOut, 1);
  g_out_value = bf16_to_float(bf16{l1_ptr<uint16_t>(get_read_ptr(kOut), kTileElems)[100]});
  cb_pop_front(kOut, 1);
}

Status run_bug1(Device& d, bool fixed) {
  Program p(d);
  const CoreCoord core{0, 0};
  for (uint32_t cb : {kIn0, kIn1, kIn2, kOut}) {
    EXPECT_TRUE(p.create_circular_buffer(core, cb, DataFormat::Float16_b, 2).ok());
  }
  auto r = p.create_kernel(KernelKind::kReader, core, &const_reader, "reader");
  auto c = p.create_kernel(KernelKind::kCompute, core, &bug1_compute, "dx");
  p.create_kernel(KernelKind::kWriter, core, &value_writer, "writer");
  p.set_runtime_args(r, core, ConstArgs{1.0f, 0.5f, 0.25f});
  p.set_runtime_args(c, core, Bug1Args{fixed ? 1u : 0u});
  g_out_value = NAN;
  return d.run(p);
}

TEST(Sanitizer, ImplicitAccumulationNamesUpstreamBug1) {
  {
    Machine m(SanitizerMode::kError);
    const Status st = run_bug1(m.device, false);
    ASSERT_FALSE(st.ok());
    const SanitizerReport& r =
        expect_report(m, ReportKind::kImplicitAccumulation, KernelKind::kCompute);
    EXPECT_EQ(r.op, "mul_tiles");
    EXPECT_EQ(r.slot, 1);
    EXPECT_EQ(r.line, g_line);
    EXPECT_EQ(r.kernel_name, "dx");
    EXPECT_NE(r.message.find("copy_tile"), std::string::npos) << r.message;
    EXPECT_NE(st.message().find("implicit-accumulation at core (x=0, y=0) compute 'dx' "
                                "mul_tiles slot 1 ("),
              std::string::npos)
        << st.message();
  }
  {
    // Warning mode runs on and shows the hardware's value: g - 2·s1 - x̂·s2 = 0.
    Machine m(SanitizerMode::kWarn);
    ASSERT_TRUE(run_bug1(m.device, false).ok());
    EXPECT_EQ(g_out_value, 0.0f);
    expect_report(m, ReportKind::kImplicitAccumulation, KernelKind::kCompute);
  }
  {
    Machine m(SanitizerMode::kError);
    ASSERT_TRUE(run_bug1(m.device, true).ok());
    EXPECT_EQ(g_out_value, 0.25f);
    EXPECT_TRUE(m.reports().empty());
  }
}

// Accumulating onto a value from another computation: SFPU result, an earlier chain read since,
// a matmul onto a copy, a reduce onto a mul chain; and the legitimate patterns that stay quiet.
void accumulate_cases_compute() {
  cb_wait_front(kIn0, 1);
  cb_wait_front(kIn1, 1);
  tile_regs_acquire();
  switch (g_slot) {
    case 0:  // a chain of products on a fresh slot: the upstream row-sum pattern, clean
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case 1:  // the chain was read (by the SFPU) and then extended: an earlier chain
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      copy_tile(kIn0, 0, 1);
      add_binary_tile(1, 0, 1);
      g_line = __LINE__ + 1;
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      add_binary_tile(0, 1, 0);
      break;
    case 2:  // matmul onto a copy
      copy_tile(kIn0, 0, 0);
      g_line = __LINE__ + 1;
      matmul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case 3:  // reduce onto a mul chain
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      g_line = __LINE__ + 1;
      reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(kIn0, kIn1, 0, 0, 0);
      break;
    case 4:  // an explicit carry-in, declared: clean
      copy_tile(kIn0, 0, 0);
      sanitizer_allow_accumulate(0);
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case 5:  // onto an SFPU result
      fill_tile(0, 1.0f);
      rsqrt_tile(0);
      g_line = __LINE__ + 1;
      mul_tiles_bcast_scalar(kIn0, kIn1, 0, 0, 0);
      break;
    case 6:  // onto an add_tiles result
      add_tiles_init(kIn0, kIn1);
      add_tiles(kIn0, kIn1, 0, 0, 0);
      mul_tiles_init(kIn0, kIn1);
      g_line = __LINE__ + 1;
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case 7:  // a second multiply with another operand pair onto an unread product
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      g_line = __LINE__ + 1;
      mul_tiles(kIn1, kIn0, 0, 0, 0);
      break;
    case 8:  // a multiply onto an unread broadcast multiply
      mul_tiles_bcast_rows(kIn0, kIn1, 0, 0, 0);
      g_line = __LINE__ + 1;
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case 9:  // onto a non-zero constant
      fill_tile(0, 5.0f);
      g_line = __LINE__ + 1;
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case 10:  // onto an explicit zero: clean
      fill_tile(0, 0.0f);
      mul_tiles(kIn0, kIn1, 0, 0, 0);
      break;
    case 11:  // a matmul chain over two operand pairs (hi + lo): clean, matmul accumulates
      matmul_tiles(kIn0, kIn1, 0, 0, 0);
      matmul_tiles(kIn1, kIn0, 0, 0, 0);
      break;
  }
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 1);
  pack_tile(0, kOut);
  cb_push_back(kOut, 1);
  tile_regs_release();
  cb_pop_front(kIn0, 1);
  cb_pop_front(kIn1, 1);
}

TEST(Sanitizer, ImplicitAccumulationCases) {
  struct Case {
    uint32_t id;
    bool reported;
    const char* op;
    float value;  // in0 = 1, in1 = 0.5
  };
  const Case cases[] = {{0, false, "", 1.5f},
                        {1, true, "mul_tiles", 2.5f},      // 0.5 + 0.5, then + (1 + 0.5)
                        {2, true, "matmul_tiles", 17.0f},  // 1 + 32 * 0.5
                        {3, true, "reduce_tile", 0.5f},    // row sums land in column 0 only
                        {4, false, "", 1.5f},
                        {5, true, "mul_tiles_bcast_scalar", 1.5f},
                        {6, true, "mul_tiles", 2.0f},
                        {7, true, "mul_tiles", 1.0f},  // 0.5 + 0.5
                        {8, true, "mul_tiles", 1.0f},
                        {9, true, "mul_tiles", 5.5f},
                        {10, false, "", 0.5f},
                        {11, false, "", 32.0f}};  // 32 * 0.5 + 32 * 0.5
  for (const Case& c : cases) {
    Machine m(SanitizerMode::kWarn);
    Program p(m.device);
    const CoreCoord core{0, 0};
    for (uint32_t cb : {kIn0, kIn1, kIn2, kOut}) {
      ASSERT_TRUE(p.create_circular_buffer(core, cb, DataFormat::Float16_b, 2).ok());
    }
    auto r = p.create_kernel(KernelKind::kReader, core, &const_reader);
    p.create_kernel(KernelKind::kCompute, core, &accumulate_cases_compute, "acc");
    p.create_kernel(KernelKind::kWriter, core, &value_writer);
    p.set_runtime_args(r, core, ConstArgs{1.0f, 0.5f, 0.0f});
    g_slot = c.id;
    ASSERT_TRUE(m.device.run(p).ok());
    // in2 is pushed by the reader and never consumed: not this test's subject.
    const auto found = m.device.last_run().of_kind(ReportKind::kImplicitAccumulation);
    ASSERT_EQ(found.size(), c.reported ? 1u : 0u) << c.id;
    if (c.reported) {
      EXPECT_EQ(found[0]->op, c.op);
      EXPECT_EQ(found[0]->slot, 0);
      EXPECT_EQ(found[0]->line, g_line);
      EXPECT_EQ(found[0]->kernel, KernelKind::kCompute);
      EXPECT_EQ(found[0]->kernel_name, "acc");
      if (c.id == 7 || c.id == 8) {
        EXPECT_NE(found[0]->message.find("never read: the two products add up"), std::string::npos)
            << found[0]->message;
      }
      if (c.id == 9) {
        EXPECT_NE(found[0]->message.find("the non-zero constant 5 from fill_tile"),
                  std::string::npos)
            << found[0]->message;
      }
    }
    EXPECT_EQ(g_out_value, c.value) << c.id;  // element 100 is (6, 4)
  }
}

// ---------------------------------------------------------------------------------------------
// Dead stores.

void dead_store_compute() {
  cb_wait_front(kIn0, 1);
  tile_regs_acquire();
  copy_tile(kIn0, 0, 0);
  g_line = __LINE__ + 1;
  copy_tile(kIn0, 0, 0);
  fill_tile(2, 3.0f);  // never read: released unread
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 1);
  pack_tile(0, kOut);
  cb_push_back(kOut, 1);
  g_slot = __LINE__ + 1;
  tile_regs_release();
  cb_pop_front(kIn0, 1);
}

TEST(Sanitizer, DeadStoreInEachMode) {
  {
    Machine m(SanitizerMode::kError);
    Kernels s;
    s.reader = &reader_in0;
    s.compute = &dead_store_compute;
    s.writer = &drain_out_writer;
    const Status st = m.run(s);
    ASSERT_FALSE(st.ok());
    const SanitizerReport& r = expect_report(m, ReportKind::kDeadStore, KernelKind::kCompute);
    EXPECT_EQ(r.op, "copy_tile");
    EXPECT_EQ(r.slot, 0);
    EXPECT_EQ(r.line, g_line);
    EXPECT_NE(st.message().find("dead-store"), std::string::npos);
  }
  {
    Machine m(SanitizerMode::kWarn);
    Kernels s;
    s.reader = &reader_in0;
    s.compute = &dead_store_compute;
    s.writer = &drain_out_writer;
    ASSERT_TRUE(m.run(s).ok());  // warnings do not stop the kernels
    ASSERT_EQ(m.reports().size(), 2u);
    EXPECT_EQ(m.reports()[1].kind, ReportKind::kDeadStore);
    EXPECT_EQ(m.reports()[1].op, "tile_regs_release");
    EXPECT_EQ(m.reports()[1].slot, 2);
    EXPECT_EQ(m.reports()[1].line, g_slot);
    EXPECT_EQ(m.device.last_run().counters.tile_ops[int(TileOpKind::kPack)], 1u);
  }
  {
    Machine m(SanitizerMode::kOff);
    Kernels s;
    s.reader = &reader_in0;
    s.compute = &dead_store_compute;
    s.writer = &drain_out_writer;
    ASSERT_TRUE(m.run(s).ok());
    EXPECT_TRUE(m.reports().empty());
  }
}

// ---------------------------------------------------------------------------------------------
// mask_tile reads its mask from data + 1 whatever the argument says.

void mask_wrong_slot_compute() {
  cb_wait_front(kIn0, 1);
  tile_regs_acquire();
  copy_tile(kIn0, 0, 0);  // data = 1
  fill_tile(1, 0.0f);     // data + 1: all zero -> masks everything
  fill_tile(2, 1.0f);     // the mask the kernel meant
  g_line = __LINE__ + 1;
  mask_tile(0, 2);
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 2);
  pack_tile(0, kOut, 0);
  pack_tile(2, kOut, 1);  // reads slot 2 so it is not a dead store
  cb_push_back(kOut, 2);
  tile_regs_release();
  cb_pop_front(kIn0, 1);
}

TEST(Sanitizer, MaskArgumentOtherThanDataPlusOne) {
  Machine m(SanitizerMode::kWarn);
  Kernels s;
  s.reader = &reader_in0;
  s.compute = &mask_wrong_slot_compute;
  s.writer = &value_writer;
  ASSERT_TRUE(m.run(s).ok());
  const SanitizerReport& r = expect_report(m, ReportKind::kMaskSlot, KernelKind::kCompute);
  EXPECT_EQ(r.slot, 2);
  EXPECT_EQ(r.line, g_line);
  EXPECT_EQ(g_out_value, 0.0f);  // masked by slot 1 (all zero), not by slot 2 (all one)
}

// ---------------------------------------------------------------------------------------------
// A clean kernel using many op kinds over several acquire cycles raises nothing in error mode.

void clean_compute() {
  cb_wait_front(kIn0, 1);
  cb_wait_front(kIn1, 1);
  for (int i = 0; i < 3; ++i) {
    tile_regs_acquire();
    copy_tile(kIn0, 0, 0);
    mul_tiles_bcast_rows(kIn0, kIn1, 0, 0, 1);
    mul_tiles_bcast_rows(kIn0, kIn1, 0, 0, 1);
    add_binary_tile(0, 1, 0);
    fill_tile(3, 0.0f);
    matmul_tiles(kIn0, kIn1, 0, 0, 3);
    fill_tile(4, 2.0f);
    fill_tile(5, 1.0f);
    mask_tile(4, 5);
    add_binary_tile(3, 4, 3);
    tile_regs_commit();
    tile_regs_wait();
    cb_reserve_back(kOut, 2);
    pack_tile(0, kOut, 0);
    pack_tile(3, kOut, 1);
    cb_push_back(kOut, 2);
    tile_regs_release();
  }
  cb_pop_front(kIn0, 1);
  cb_pop_front(kIn1, 1);
}

void drain_six_writer() {
  for (int i = 0; i < 6; ++i) {
    cb_wait_front(kOut, 1);
    if (i == 1) {
      g_out_value = bf16_to_float(bf16{l1_ptr<uint16_t>(get_read_ptr(kOut), kTileElems)[0]});
    }
    cb_pop_front(kOut, 1);
  }
}

// 260 reports, then one that stops the core: the first 256 are kept, the rest counted.
void many_reports_reader() {
  for (int i = 0; i < 260; ++i) get_write_ptr(kIn0);  // outside a reserve: one report each
  cb_reserve_back(7, 1);                              // unknown CB: stops the core
}

TEST(Sanitizer, ReportsPastTheLimitAreCountedAndNamedInTheStatus) {
  Machine m(SanitizerMode::kWarn);
  Kernels s;
  s.reader = &many_reports_reader;
  const Status st = m.run(s);
  EXPECT_FALSE(st.ok());
  const RunResult& run = m.device.last_run();
  ASSERT_EQ(run.reports.size(), 256u);
  EXPECT_EQ(run.of_kind(ReportKind::kCbAccessOutsideWindow).size(), 255u);
  EXPECT_EQ(run.reports.back().kind, ReportKind::kCbUnknown);  // the report that stopped the core
  EXPECT_EQ(run.dropped_reports, 5u);
  EXPECT_FALSE(run.ok());
  EXPECT_NE(st.message().find("cb-unknown"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("5 further reports dropped"), std::string::npos) << st.message();
}

// repeat_reports = false keeps one report per (kind, op, line): the 260 repeats of one line
// leave room for the report after them; print_warnings = false collects without printing.
TEST(Sanitizer, RepeatsOfOneLineAreKeptOnceWhenAsked) {
  DeviceConfig c = Machine::config(SanitizerMode::kWarn);
  c.repeat_reports = false;
  c.print_warnings = false;
  Machine m(c);
  Kernels s;
  s.reader = &many_reports_reader;
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(m.run(s).ok());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  const RunResult& run = m.device.last_run();
  ASSERT_EQ(run.reports.size(), 2u);
  EXPECT_EQ(run.reports[0].kind, ReportKind::kCbAccessOutsideWindow);
  EXPECT_EQ(run.reports[1].kind, ReportKind::kCbUnknown);
  EXPECT_EQ(run.dropped_reports, 0u);
}

TEST(Sanitizer, CleanKernelRaisesNothing) {
  Machine m(SanitizerMode::kError);
  Kernels s;
  s.reader = &reader_in0_in1;
  s.compute = &clean_compute;
  s.writer = &drain_six_writer;
  const Status st = m.run(s);
  EXPECT_TRUE(st.ok()) << st.to_string();
  EXPECT_TRUE(m.reports().empty());
  EXPECT_EQ(g_out_value, 34.0f);  // ones @ ones = 32, plus the masked-in 2
  const Counters& c = m.device.last_run().counters;
  EXPECT_EQ(c.tile_ops[int(TileOpKind::kMulBcast)], 6u);
  EXPECT_EQ(c.tile_ops[int(TileOpKind::kMatmul)], 3u);
  EXPECT_EQ(c.tile_ops[int(TileOpKind::kSfpuBinary)], 6u);
  EXPECT_EQ(c.tile_ops[int(TileOpKind::kMask)], 3u);
  EXPECT_EQ(c.tile_ops[int(TileOpKind::kFill)], 9u);
  EXPECT_EQ(c.tile_ops[int(TileOpKind::kPack)], 6u);
}

// Upstream's Bug 2 in miniature: a running sum in slot 0, then a nested acquire whose commit and
// release hand the sum's section to the packer, which zeroes it. Warning mode shows the loss.
void nested_acquire_loses_sum_compute() {
  tile_regs_acquire();
  fill_tile(0, 5.0f);  // running sum
  g_line = __LINE__ + 1;
  tile_regs_acquire();  // nested: same section
  fill_tile(1, 7.0f);
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 2);
  pack_tile(1, kOut, 0);
  tile_regs_release();  // zeroes the section holding the running sum
  fill_tile(2, 1.0f);
  add_binary_tile(0, 2, 0);  // sum += 1, but slot 0 now reads a fresh zero
  tile_regs_commit();
  tile_regs_wait();
  pack_tile(0, kOut, 1);
  cb_push_back(kOut, 2);
  tile_regs_release();
}

void two_values_writer() {
  cb_wait_front(kOut, 2);
  const uint16_t* p = l1_ptr<uint16_t>(get_read_ptr(kOut), 2 * kTileElems);
  g_out_value = bf16_to_float(bf16{p[0]});
  g_out_value2 = bf16_to_float(bf16{p[kTileElems]});
  cb_pop_front(kOut, 2);
}

TEST(Sanitizer, NestedAcquireLosesTheRunningSumAsUpstreamBug2) {
  Machine m(SanitizerMode::kWarn);
  Kernels s;
  s.compute = &nested_acquire_loses_sum_compute;
  s.writer = &two_values_writer;
  ASSERT_TRUE(m.run(s).ok());
  EXPECT_EQ(g_out_value, 7.0f);
  EXPECT_EQ(g_out_value2, 1.0f);  // 5 + 1 intended
  const SanitizerReport& r =
      expect_report(m, ReportKind::kDstNestedAcquire, KernelKind::kCompute, false);
  EXPECT_EQ(r.line, g_line);
  // Slot 0 of the new section was never written: the add reads a fresh zero.
  const auto poison = m.device.last_run().of_kind(ReportKind::kPoisonDstRead);
  ASSERT_EQ(poison.size(), 1u);
  EXPECT_EQ(poison[0]->op, "add_binary_tile");
  EXPECT_EQ(poison[0]->slot, 0);
}

// ---------------------------------------------------------------------------------------------
// Running-sum lint: a naive fix of Bug 2 takes one dst section per block and packs the block's
// sum into the one reserved page each time; every section starts from zero, so only the last
// block's partial reaches the CB.

template <bool kCarry>
void running_sum_per_section_compute() {
  cb_reserve_back(kOut, 1);
  for (int block = 0; block < 2; ++block) {
    cb_wait_front(kIn0, 1);
    cb_wait_front(kIn1, 1);
    tile_regs_acquire();
    if (kCarry && block > 0) {  // the fix: carry the partial in (sanitizer_allow_accumulate)
      fill_tile(0, g_out_value2);
      sanitizer_allow_accumulate(0);
    }
    mul_tiles(kIn0, kIn1, 0, 0, 0);
    tile_regs_commit();
    tile_regs_wait();
    if (block == 1) g_line = __LINE__ + 1;
    pack_tile<true>(0, kOut, 0);  // the same page each block (in order, block 1 packs page 1)
    tile_regs_release();
    cb_pop_front(kIn0, 1);
    cb_pop_front(kIn1, 1);
  }
  cb_push_back(kOut, 1);
}

void two_blocks_reader() {
  for (int block = 0; block < 2; ++block) {
    push_one(kIn0);
    push_one(kIn1);
  }
}

TEST(Sanitizer, RunningSumLostAcrossCleanSectionsIsALint) {
  for (bool lint : {true, false}) {
    SCOPED_TRACE(lint ? "lint on" : "lint off");
    DeviceConfig cfg = Machine::config(SanitizerMode::kWarn);
    EXPECT_TRUE(cfg.lint_running_sum);  // on by default
    cfg.lint_running_sum = lint;
    Machine m(cfg);
    Kernels s;
    s.reader = &two_blocks_reader;
    s.compute = &running_sum_per_section_compute<false>;
    s.writer = &value_writer;
    ASSERT_TRUE(m.run(s).ok());
    EXPECT_EQ(g_out_value, 1.0f);  // 1·1 + 1·1 intended: the first block's partial is lost
    if (lint) {
      const SanitizerReport& r =
          expect_report(m, ReportKind::kRunningSumLost, KernelKind::kCompute);
      EXPECT_EQ(r.kernel_name, "cmp");
      EXPECT_EQ(r.op, "pack_tile");
      EXPECT_EQ(r.cb, int(kOut));
      EXPECT_EQ(r.slot, 0);
      EXPECT_EQ(r.line, g_line);
      EXPECT_NE(r.message.find("partial is lost"), std::string::npos) << r.message;
    } else {
      EXPECT_TRUE(m.reports().empty());
    }
  }
}

TEST(Sanitizer, RunningSumCarriedAcrossSectionsIsClean) {
  Machine m(SanitizerMode::kError);
  Kernels s;
  s.reader = &two_blocks_reader;
  s.compute = &running_sum_per_section_compute<true>;
  s.writer = &value_writer;
  g_out_value2 = 1.0f;  // the partial of block 0, carried in as a constant
  ASSERT_TRUE(m.run(s).ok());
  EXPECT_EQ(g_out_value, 2.0f);
  EXPECT_TRUE(m.reports().empty());
}

}  // namespace
}  // namespace tilenorm::tile
