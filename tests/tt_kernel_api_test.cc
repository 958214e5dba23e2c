// The tt-metal kernel API pieces of the tile machine: runtime args by index, in-order pack_tile
// with a per-CB pack position, TensorAccessor page transfers and host-addressable L1.

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/api/kernel_args.h"
#include "tile/machine/api/tensor_accessor.h"
#include "tile/machine/device.h"
#include "tile/machine/machine_test_util.h"

namespace tilenorm::tile {
namespace {

using test_util::kIn0;
using test_util::kOut;
using test_util::read_all;
using test_util::small_grid;

// ---------------------------------------------------------------------------------------------
// Runtime args.

std::array<uint32_t, 4> g_seen;  // what the last arg kernel read (one host thread)
float g_seen_float = 0.0f;

void read_args() {
  for (uint32_t i = 0; i < 3; ++i) g_seen[i] = get_arg_val<uint32_t>(i);
  g_seen_float = get_arg_val<float>(3);
  g_seen[3] = get_common_arg_val<uint32_t>(1);
}

void read_past_args() { g_seen[0] = get_arg_val<uint32_t>(2); }
void read_past_common_args() { g_seen[0] = get_common_arg_val<uint32_t>(0); }

TEST(TtKernelArgs, GetArgValReadsThisCoresWordsAndTheCommonOnes) {
  Device d(small_grid(2, 1));
  Program p(d);
  const KernelHandle k =
      p.create_kernel(KernelKind::kReader, CoreRange({0, 0}, {1, 0}), &read_args);
  const float f = 2.5f;
  uint32_t fbits = 0;
  std::memcpy(&fbits, &f, 4);
  p.set_runtime_arg_words(k, {0, 0}, {7, 8, 9, fbits});
  p.set_runtime_arg_words(k, {1, 0}, {17, 18, 19, fbits});
  p.set_common_runtime_arg_words(k, {100, 101});
  ASSERT_TRUE(d.run(p).ok()) << d.last_run().reports.size();
  // Cores run in order on one host thread: the last one read is core (1, 0).
  EXPECT_EQ(g_seen[0], 17u);
  EXPECT_EQ(g_seen[1], 18u);
  EXPECT_EQ(g_seen[2], 19u);
  EXPECT_EQ(g_seen_float, 2.5f);
  EXPECT_EQ(g_seen[3], 101u);
}

TEST(TtKernelArgs, AnIndexPastTheHostsArgsIsAReportInEveryMode) {
  for (SanitizerMode mode : {SanitizerMode::kError, SanitizerMode::kOff}) {
    Device d(small_grid(1, 1));
    d.set_sanitizer(mode);
    Program p(d);
    const KernelHandle k = p.create_kernel(KernelKind::kReader, CoreCoord{0, 0}, &read_past_args);
    p.set_runtime_arg_words(k, {0, 0}, {1, 2});
    const Status st = d.run(p);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("arg-out-of-range"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("get_arg_val(2) but the host set 2 runtime args on this core"),
              std::string::npos)
        << st.message();
  }
  Device d(small_grid(1, 1));
  Program p(d);
  p.create_kernel(KernelKind::kReader, CoreCoord{0, 0}, &read_past_common_args);
  const Status st = d.run(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("get_common_arg_val(0) but the host set 0 common args"),
            std::string::npos)
      << st.message();
}

// ---------------------------------------------------------------------------------------------
// In-order pack_tile.

// Writes `pages` pages of kOut to DRAM pages [0, pages), then ends.
void write_out() {
  const uint32_t addr = get_arg_val<uint32_t>(0);
  const uint32_t pages = get_arg_val<uint32_t>(1);
  const TensorAccessor s(0, addr, get_tile_size(kOut));
  for (uint32_t i = 0; i < pages; ++i) {
    cb_wait_front(kOut, 1);
    noc_async_write_page(i, s, get_read_ptr(kOut));
    noc_async_write_barrier();
    cb_pop_front(kOut, 1);
  }
}

// Slots 0..2 hold 1, 2, 3. Window 1 packs them in order (pages 0, 1, 2); window 2 packs slot 0
// out of order to page 2 and then in order twice (pages 0, 1): the position is per window.
void pack_in_order() {
  tile_regs_acquire();
  for (uint32_t i = 0; i < 3; ++i) fill_tile(i, static_cast<float>(i + 1));
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 3);
  for (uint32_t i = 0; i < 3; ++i) pack_tile(i, kOut);
  cb_push_back(kOut, 3);
  cb_reserve_back(kOut, 3);
  pack_tile<true>(0, kOut, 2);
  pack_tile(2, kOut);
  pack_tile(1, kOut);
  cb_push_back(kOut, 3);
  tile_regs_release();
}

TEST(TtPackTile, InOrderPacksFillConsecutivePagesUntilThePush) {
  Device d(small_grid(1, 1));
  Buffer out;
  ASSERT_TRUE(d.create_buffer(6, DataFormat::Float16_b, &out).ok());
  Program p(d);
  const CoreCoord core{0, 0};
  ASSERT_TRUE(p.create_circular_buffer(core, kOut, DataFormat::Float16_b, 6).ok());
  p.create_kernel(KernelKind::kCompute, core, &pack_in_order);
  const KernelHandle w = p.create_kernel(KernelKind::kWriter, core, &write_out);
  p.set_runtime_arg_words(w, core, {out.address, 6});
  ASSERT_TRUE(d.run(p).ok()) << (d.last_run().reports.empty()
                                     ? ""
                                     : d.last_run().reports[0].to_string());
  const std::vector<float> v = read_all(d, out);
  const float expected[6] = {1, 2, 3, 3, 2, 1};
  for (int page = 0; page < 6; ++page) {
    for (int i = 0; i < kTileElems; ++i) {
      ASSERT_EQ(v[size_t(page) * kTileElems + i], expected[page]) << "page " << page;
    }
  }
}

// tile_regs_wait written before tile_regs_commit, as tt-train's rmsnorm_fw writes it: the
// packer's wait returns at the math engine's commit (they are different threads), so the pack
// reads the committed section. A wait with no section acquired still blocks forever.
void wait_then_commit() {
  tile_regs_acquire();
  fill_tile(0, 7.0f);
  tile_regs_wait();
  tile_regs_commit();
  cb_reserve_back(kOut, 1);
  pack_tile(0, kOut);
  cb_push_back(kOut, 1);
  tile_regs_release();
}
void wait_without_acquire() { tile_regs_wait(); }

TEST(TtDstSync, AWaitBeforeTheCommitOfTheOpenSectionReturnsAtTheCommit) {
  Device d(small_grid(1, 1));
  Buffer out;
  ASSERT_TRUE(d.create_buffer(1, DataFormat::Float16_b, &out).ok());
  Program p(d);
  const CoreCoord core{0, 0};
  ASSERT_TRUE(p.create_circular_buffer(core, kOut, DataFormat::Float16_b, 1).ok());
  p.create_kernel(KernelKind::kCompute, core, &wait_then_commit);
  const KernelHandle w = p.create_kernel(KernelKind::kWriter, core, &write_out);
  p.set_runtime_arg_words(w, core, {out.address, 1});
  ASSERT_TRUE(d.run(p).ok());
  EXPECT_TRUE(d.last_run().reports.empty()) << d.last_run().reports[0].to_string();
  const std::vector<float> v = read_all(d, out);
  for (int i = 0; i < kTileElems; ++i) ASSERT_EQ(v[size_t(i)], 7.0f) << i;

  Program q(d);
  q.create_kernel(KernelKind::kCompute, core, &wait_without_acquire);
  const Status s = d.run(q);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tile_regs_wait with no committed section"), std::string::npos)
      << s.message();
}

void pack_with_stale_index() {
  tile_regs_acquire();
  fill_tile(0, 1.0f);
  fill_tile(1, 2.0f);
  tile_regs_commit();
  tile_regs_wait();
  cb_reserve_back(kOut, 2);
  pack_tile(0, kOut, 1);  // in order: page 0, the index is ignored
  pack_tile(1, kOut, 1);  // in order and index agree: page 1, quiet
  cb_push_back(kOut, 2);
  tile_regs_release();
}

TEST(TtPackTile, AnInOrderIndexOtherThanThePositionIsReportedAndIgnored) {
  DeviceConfig cfg = small_grid(1, 1);
  cfg.sanitizer = SanitizerMode::kWarn;
  cfg.print_warnings = false;
  Device d(cfg);
  Buffer out;
  ASSERT_TRUE(d.create_buffer(2, DataFormat::Float16_b, &out).ok());
  Program p(d);
  const CoreCoord core{0, 0};
  ASSERT_TRUE(p.create_circular_buffer(core, kOut, DataFormat::Float16_b, 2).ok());
  p.create_kernel(KernelKind::kCompute, core, &pack_with_stale_index);
  const KernelHandle w = p.create_kernel(KernelKind::kWriter, core, &write_out);
  p.set_runtime_arg_words(w, core, {out.address, 2});
  ASSERT_TRUE(d.run(p).ok());
  const auto& reports = d.last_run().reports;
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind, ReportKind::kPackIndexIgnored);
  EXPECT_NE(reports[0].message.find("ignores its index 1: it writes page 0"), std::string::npos)
      << reports[0].message;
  const std::vector<float> v = read_all(d, out);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[kTileElems], 2.0f);
}

// ---------------------------------------------------------------------------------------------
// TensorAccessor and host-addressable L1.

// Reader: page i of the input through noc_async_read_page (odd pages: the tile-named form);
// writer: out page i through get_noc_addr + noc_async_write (odd pages: noc_async_write_tile).
// Compute copies.
void accessor_reader() {
  const TensorAccessor s(0, get_arg_val<uint32_t>(0), get_tile_size(kIn0));
  for (uint32_t i = 0; i < get_arg_val<uint32_t>(1); ++i) {
    cb_reserve_back(kIn0, 1);
    if (i % 2 == 1) {
      noc_async_read_tile(i, s, get_write_ptr(kIn0));
    } else {
      noc_async_read_page(i, s, get_write_ptr(kIn0));
    }
    noc_async_read_barrier();
    cb_push_back(kIn0, 1);
  }
}
void accessor_writer() {
  const TensorAccessor s(0, get_arg_val<uint32_t>(0), get_tile_size(kOut));
  for (uint32_t i = 0; i < get_arg_val<uint32_t>(1); ++i) {
    cb_wait_front(kOut, 1);
    if (i % 2 == 1) {
      noc_async_write_tile(i, s, get_read_ptr(kOut));
    } else {
      noc_async_write(get_read_ptr(kOut), get_noc_addr(i, s), get_tile_size(kOut));
    }
    noc_async_write_barrier();
    cb_pop_front(kOut, 1);
  }
}
void copy_n() { test_util::copy_compute(test_util::CountArgs{get_arg_val<uint32_t>(0)}); }

TEST(TtTensorAccessor, PagesGoThroughReadPageTileNamesAndNocAddresses) {
  Device d(small_grid(1, 1));
  const std::vector<float> in = test_util::random_tiles(3, -2, 2, 5);
  const Buffer src = test_util::make_buffer(d, in, DataFormat::Float16_b);
  Buffer out;
  ASSERT_TRUE(d.create_buffer(3, DataFormat::Float16_b, &out).ok());
  Program p(d);
  const CoreCoord core{0, 0};
  ASSERT_TRUE(p.create_circular_buffer(core, kIn0, DataFormat::Float16_b, 2).ok());
  ASSERT_TRUE(p.create_circular_buffer(core, kOut, DataFormat::Float16_b, 2).ok());
  const KernelHandle r = p.create_kernel(KernelKind::kReader, core, &accessor_reader);
  const KernelHandle c = p.create_kernel(KernelKind::kCompute, core, &copy_n);
  const KernelHandle w = p.create_kernel(KernelKind::kWriter, core, &accessor_writer);
  p.set_runtime_arg_words(r, core, {src.address, 3});
  p.set_runtime_arg_words(c, core, {3});
  p.set_runtime_arg_words(w, core, {out.address, 3});
  ASSERT_TRUE(d.run(p).ok());
  EXPECT_EQ(read_all(d, out), in);
}

void partial_page_reader() {
  const TensorAccessor s(0, get_arg_val<uint32_t>(0), get_tile_size(kIn0));
  cb_reserve_back(kIn0, 1);
  noc_async_read(get_noc_addr(0, s, 64), get_write_ptr(kIn0), 64);
  noc_async_read_barrier();
  cb_push_back(kIn0, 1);
}

TEST(TtTensorAccessor, APartialPageTransferIsAClearReport) {
  Device d(small_grid(1, 1));
  Buffer src;
  ASSERT_TRUE(d.create_buffer(1, DataFormat::Float16_b, &src).ok());
  Program p(d);
  ASSERT_TRUE(p.create_circular_buffer(CoreCoord{0, 0}, kIn0, DataFormat::Float16_b, 1).ok());
  const KernelHandle r =
      p.create_kernel(KernelKind::kReader, CoreCoord{0, 0}, &partial_page_reader);
  p.set_runtime_arg_words(r, {0, 0}, {src.address});
  const Status st = d.run(p);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("models whole-page transfers only"), std::string::npos)
      << st.message();
}

// Builds tile 0 of kIn0 by storing through the cast L1 address (as tt-metal readers build mask
// and scaler tiles): element i = bf16(i % 7); page 1 of the two pushed is never written.
void raw_l1_reader() {
  cb_reserve_back(kIn0, 2);
  auto* h = reinterpret_cast<uint16_t*>(static_cast<uintptr_t>(get_write_ptr(kIn0)));
  for (int i = 0; i < kTileElems; ++i) h[i] = float_to_bf16(static_cast<float>(i % 7)).bits;
  cb_push_back(kIn0, 2);
}
void copy_two() { test_util::copy_compute(test_util::CountArgs{2}); }
void write_two() {
  test_util::write_tiles(test_util::IoArgs{get_arg_val<uint32_t>(0), 0, 2, kOut});
}

TEST(TtHostL1, KernelsStoreThroughL1AddressesAndUnwrittenPagesStayPoisoned) {
  if (!host_addressable_l1_supported().ok()) {
    GTEST_SKIP() << host_addressable_l1_supported().message();
  }
  DeviceConfig cfg = small_grid(2, 1);
  cfg.sanitizer = SanitizerMode::kWarn;
  cfg.print_warnings = false;
  cfg.l1_allocator_base = 4096;
  Device d(cfg);
  Buffer out;
  ASSERT_TRUE(d.create_buffer(4, DataFormat::Float16_b, &out).ok());
  Program p(d);
  ASSERT_TRUE(p.use_host_addressable_l1().ok());
  const CoreRange cores({0, 0}, {1, 0});
  ASSERT_TRUE(p.create_circular_buffer(cores, kIn0, DataFormat::Float16_b, 2).ok());
  ASSERT_TRUE(p.create_circular_buffer(cores, kOut, DataFormat::Float16_b, 2).ok());
  p.create_kernel(KernelKind::kReader, cores, &raw_l1_reader);
  p.create_kernel(KernelKind::kCompute, cores, &copy_two);
  const KernelHandle w = p.create_kernel(KernelKind::kWriter, CoreCoord{0, 0}, &write_two);
  p.set_runtime_arg_words(w, {0, 0}, {out.address});
  ASSERT_TRUE(d.run(p).ok());
  const std::vector<float> v = read_all(d, out);
  for (int i = 0; i < kTileElems; ++i) ASSERT_EQ(v[i], static_cast<float>(i % 7)) << i;
  // Page 1 was pushed unwritten: each core's copy_tile of it is a poison-l1-read.
  int compute_poison = 0;
  for (const SanitizerReport* r : d.last_run().of_kind(ReportKind::kPoisonL1Read)) {
    compute_poison += r->kernel == KernelKind::kCompute && r->op == "copy_tile" ? 1 : 0;
  }
  EXPECT_EQ(compute_poison, 2);
}

}  // namespace
}  // namespace tilenorm::tile
