// Unit tests of the tile machine: layout, DRAM, programs, scheduling, per-op arithmetic in both
// numerics modes against a float64 tile reference, the numerics rules, counters and every
// sanitizer report.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/sanitizer.h"
#include "tile/machine/machine_test_util.h"

namespace tilenorm::tile {
namespace {

using namespace test_util;  // NOLINT: the shared test kernels

// ---------------------------------------------------------------------------------------------
// Layout, formats, DRAM.

TEST(TileLayout, FaceOrderIndex) {
  EXPECT_EQ(tile_index(0, 0), 0);
  EXPECT_EQ(tile_index(0, 15), 15);
  EXPECT_EQ(tile_index(0, 16), 256);   // top-right face
  EXPECT_EQ(tile_index(16, 0), 512);   // bottom-left face
  EXPECT_EQ(tile_index(16, 16), 768);  // bottom-right face
  EXPECT_EQ(tile_index(1, 0), 16);
  EXPECT_EQ(tile_index(17, 18), 768 + 16 + 2);
  EXPECT_EQ(tile_index(31, 31), 1023);
  EXPECT_EQ(tile_size(DataFormat::Float16_b), 2048u);
  EXPECT_EQ(tile_size(DataFormat::Float32), 4096u);
}

TEST(TileLayout, TilizeUntilizeRoundTripWithPadding) {
  const int64_t rows = 33, cols = 70;  // 2 x 3 tiles, padded in both dims
  std::vector<float> m(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) m[i] = static_cast<float>(i);
  const std::vector<float> t = tilize(m.data(), rows, cols, -7.0f);
  ASSERT_EQ(t.size(), size_t{6} * kTileElems);
  // (r, c) lands in tile (r/32)*3 + c/32 at the face index of (r%32, c%32).
  EXPECT_EQ(t[0 * kTileElems + tile_index(0, 17)], 17.0f);
  EXPECT_EQ(t[2 * kTileElems + tile_index(5, 69 - 64)], static_cast<float>(5 * 70 + 69));
  EXPECT_EQ(t[3 * kTileElems + tile_index(0, 0)], static_cast<float>(32 * 70));
  EXPECT_EQ(t[2 * kTileElems + tile_index(0, 6)], -7.0f);  // column 70 is padding
  EXPECT_EQ(t[4 * kTileElems + tile_index(1, 0)], -7.0f);  // row 33 is padding
  int pads = 0;
  for (float v : t) pads += v == -7.0f;
  EXPECT_EQ(pads, 6 * 1024 - 33 * 70);
  std::vector<float> back(rows * cols, 0.0f);
  untilize(t.data(), rows, cols, back.data());
  EXPECT_EQ(back, m);
}

TEST(Device, WriteReadTilesRoundsToBf16AndKeepsPadding) {
  Device d(small_grid());
  const int64_t rows = 3, cols = 40;
  std::vector<float> m(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) m[i] = 1.0f + static_cast<float>(i) / 1024.0f;
  Buffer b;
  ASSERT_TRUE(
      d.create_buffer(static_cast<uint32_t>(num_tiles(rows, cols)), DataFormat::Float16_b, &b)
          .ok());
  ASSERT_TRUE(d.write_tiles(b, m.data(), rows, cols, 5.0f).ok());
  std::vector<float> back(rows * cols);
  ASSERT_TRUE(d.read_tiles(b, rows, cols, back.data()).ok());
  for (int64_t i = 0; i < rows * cols; ++i) EXPECT_EQ(back[i], round_to_bf16(m[i])) << i;
  const std::vector<float> raw = read_all(d, b);
  EXPECT_EQ(raw[1 * kTileElems + tile_index(0, 8)], 5.0f);  // column 40 of the padded tile
  EXPECT_EQ(raw[0 * kTileElems + tile_index(3, 0)], 5.0f);  // row 3
  // Too small a buffer is an error, not an overrun.
  std::vector<float> big(64 * 64, 1.0f);
  EXPECT_EQ(d.write_tiles(b, big.data(), 64, 64).code(), StatusCode::kInvalidArgument);
}

TEST(Device, BuffersHaveDistinctAddressesAndFreeReleasesTheLast) {
  Device d(small_grid());
  Buffer a, b, c;
  ASSERT_TRUE(d.create_buffer(5, DataFormat::Float16_b, &a).ok());
  ASSERT_TRUE(d.create_buffer(30, DataFormat::Float32, &b).ok());
  EXPECT_NE(a.address, 0u);
  EXPECT_GT(b.address, a.address);
  ASSERT_TRUE(d.free_buffer(b).ok());
  ASSERT_TRUE(d.create_buffer(1, DataFormat::Float32, &c).ok());
  EXPECT_EQ(c.address, b.address);
  EXPECT_EQ(d.free_buffer(b).code(), StatusCode::kOk);  // c took b's address
  EXPECT_EQ(d.free_buffer(b).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(d.create_buffer(0, DataFormat::Float32, &c).code(), StatusCode::kInvalidArgument);
}

TEST(Device, SplitWorkToCores) {
  const WorkSplit s = split_work_to_cores(8, 8, 81);
  EXPECT_EQ(s.num_cores, 64u);
  EXPECT_EQ(s.work_per_core, 1u);
  EXPECT_EQ(s.cores_with_more, 17u);
  EXPECT_EQ(s.work_of(16), 2u);
  EXPECT_EQ(s.work_of(17), 1u);
  EXPECT_EQ(s.first_work_of(17), 34u);
  EXPECT_EQ(s.first_work_of(63) + s.work_of(63), 81u);
  EXPECT_EQ(s.cores[9], (CoreCoord{1, 1}));
  const WorkSplit few = split_work_to_cores(8, 8, 3);
  EXPECT_EQ(few.num_cores, 3u);
  EXPECT_EQ(few.work_per_core, 1u);
  EXPECT_EQ(few.cores_with_more, 0u);
}

// ---------------------------------------------------------------------------------------------
// Programs.

TEST(Program, L1OverflowIsAStatusListingTheCbs) {
  Device d;  // default: 8x8, 1464 KiB
  Program p(d);
  const CoreRange all({0, 0}, {7, 7});
  ASSERT_TRUE(p.create_circular_buffer(all, 0, DataFormat::Float32, 200, "x").ok());     // 800 KiB
  ASSERT_TRUE(p.create_circular_buffer(all, 1, DataFormat::Float16_b, 300, "dy").ok());  // 600
  EXPECT_EQ(p.l1_bytes({3, 4}), 200u * 4096 + 300u * 2048);
  const Status s = p.create_circular_buffer(all, 2, DataFormat::Float16_b, 40, "gamma");  // 80
  ASSERT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("CB 0 'x': Float32 x 200 pages = 819200 B"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("CB 1 'dy': Float16_b x 300 pages = 614400 B"), std::string::npos);
  EXPECT_NE(s.message().find("CB 2 'gamma'"), std::string::npos);
  EXPECT_NE(s.message().find("1515520 B"), std::string::npos);  // the total asked for
  EXPECT_NE(s.message().find("1499136 B"), std::string::npos);  // 1464 KiB available
  // 31 pages (62 KiB) still fit exactly: 1499136 - 1433600 = 65536.
  EXPECT_TRUE(p.create_circular_buffer(all, 2, DataFormat::Float16_b, 32, "gamma").ok());
}

TEST(Program, AllocatorBaseReducesUsableL1) {
  DeviceConfig c = small_grid();
  c.l1_allocator_base = 1024 * 1024;
  Device d(c);
  Program p(d);
  // 1464 - 1024 = 440 KiB = 110 fp32 tiles.
  EXPECT_EQ(p.create_circular_buffer(CoreCoord{0, 0}, 0, DataFormat::Float32, 111, "x").code(),
            StatusCode::kResourceExhausted);
  EXPECT_TRUE(p.create_circular_buffer(CoreCoord{0, 0}, 0, DataFormat::Float32, 110, "x").ok());
  Device plain(small_grid());
  Program q(plain);
  EXPECT_TRUE(q.create_circular_buffer(CoreCoord{0, 0}, 0, DataFormat::Float32, 300, "x").ok());
}

TEST(Program, BuilderErrorsAreReportedByRun) {
  Device d(small_grid());
  {
    Program p(d);
    ASSERT_TRUE(p.create_circular_buffer(CoreCoord{0, 0}, kOut, DataFormat::Float16_b, 2).ok());
    p.create_kernel(KernelKind::kWriter, CoreCoord{0, 0}, &write_tiles);
    const Status s = d.run(p);  // no args set
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("no runtime args"), std::string::npos) << s.message();
  }
  {
    Program p(d);
    auto k = p.create_kernel(KernelKind::kWriter, CoreCoord{0, 0}, &write_tiles);
    p.set_runtime_args(k, CoreCoord{0, 0}, CountArgs{1});  // wrong type
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(d.run(p).code(), StatusCode::kInvalidArgument);
  }
  {
    Program p(d);
    p.create_kernel(KernelKind::kCompute, CoreRange({0, 0}, {1, 0}), &copy_compute);
    p.create_kernel(KernelKind::kCompute, CoreCoord{1, 0}, &copy_compute);
    EXPECT_NE(p.status().message().find("two compute kernels"), std::string::npos);
  }
  {
    Program p(d);
    p.create_kernel(KernelKind::kReader, CoreCoord{2, 0}, &read_tiles);
    EXPECT_NE(p.status().message().find("outside the 2x1 grid"), std::string::npos);
    EXPECT_EQ(p.create_circular_buffer(CoreCoord{0, 1}, 0, DataFormat::Float32, 1).code(),
              StatusCode::kInvalidArgument);
  }
}

TEST(Program, DescribePrintsCbsAndKernelsPerCore) {
  Device d(small_grid(2, 1));
  Program p(d);
  ASSERT_TRUE(p.create_circular_buffer(CoreCoord{1, 0}, 3, DataFormat::Float32, 4, "xhat").ok());
  p.create_kernel(KernelKind::kCompute, CoreCoord{1, 0}, &copy_compute, "bw_compute");
  const std::string text = p.describe();
  EXPECT_NE(text.find("core (x=1, y=0): L1 16384 B; compute 'bw_compute'"), std::string::npos)
      << text;
  EXPECT_NE(text.find("CB  3 'xhat' Float32 x 4 pages at L1 0x0"), std::string::npos) << text;
  EXPECT_EQ(text.find("(x=0, y=0)"), std::string::npos);  // unused cores are not listed
}

// A reader -> copy -> writer pipeline over every core moves every tile exactly, with counters.
TEST(Run, CopyPipelineMovesEveryTileAndCountsTraffic) {
  Device d(small_grid(2, 2));
  const uint32_t tiles_per_core = 7, cores = 4, n = tiles_per_core * cores;
  const std::vector<float> x = random_tiles(n, -3, 3, 1);
  const Buffer in = make_buffer(d, x, DataFormat::Float16_b);
  const Buffer out = make_buffer(d, std::vector<float>(x.size(), NAN), DataFormat::Float16_b);
  Program p(d);
  const CoreRange all({0, 0}, {1, 1});
  ASSERT_TRUE(p.create_circular_buffer(all, kIn0, DataFormat::Float16_b, 4, "in").ok());
  ASSERT_TRUE(p.create_circular_buffer(all, kOut, DataFormat::Float16_b, 2, "out").ok());
  auto r = p.create_kernel(KernelKind::kReader, all, &read_tiles);
  auto c = p.create_kernel(KernelKind::kCompute, all, &copy_compute);
  auto w = p.create_kernel(KernelKind::kWriter, all, &write_tiles);
  p.set_common_runtime_args(c, CountArgs{tiles_per_core});
  for (uint32_t i = 0; i < cores; ++i) {
    const CoreCoord core{i % 2, i / 2};
    p.set_runtime_args(r, core, IoArgs{in.address, i * tiles_per_core, tiles_per_core, kIn0});
    p.set_runtime_args(w, core, IoArgs{out.address, i * tiles_per_core, tiles_per_core, kOut});
  }
  ASSERT_TRUE(d.run(p).ok()) << d.last_run().reports.size();
  EXPECT_EQ(read_all(d, out), x);
  const Counters& k = d.last_run().counters;
  EXPECT_TRUE(d.last_run().ok());
  EXPECT_EQ(k.dram_bytes_read, uint64_t{n} * 2048);
  EXPECT_EQ(k.dram_bytes_written, uint64_t{n} * 2048);
  EXPECT_EQ(k.tile_ops[int(TileOpKind::kCopy)], n);
  EXPECT_EQ(k.tile_ops[int(TileOpKind::kPack)], n);
  ASSERT_EQ(k.cores.size(), 4u);
  const CoreCounters* c11 = k.find({1, 1});
  ASSERT_NE(c11, nullptr);
  EXPECT_EQ(c11->kernels[int(KernelKind::kReader)].dram_bytes_read, tiles_per_core * 2048u);
  EXPECT_EQ(c11->kernels[int(KernelKind::kReader)].dram_bytes_written, 0u);
  EXPECT_EQ(c11->kernels[int(KernelKind::kWriter)].dram_bytes_written, tiles_per_core * 2048u);
  EXPECT_EQ(c11->kernels[int(KernelKind::kCompute)].dram_bytes_read, 0u);
  EXPECT_EQ(c11->l1_bytes, 6u * 2048);
  // Each kernel runs until it blocks: the reader fills the 4-page input CB, then the compute
  // kernel fills the 2-page output CB before the writer first runs.
  EXPECT_EQ(c11->cb_high_water[kIn0], 4u);
  EXPECT_EQ(c11->cb_high_water[kOut], 2u);
  EXPECT_DOUBLE_EQ(k.estimated_device_seconds, 2.0 * n * 2048 / 288e9);
  EXPECT_NE(k.to_string().find("ESTIMATE"), std::string::npos);
  // Interleaving: page i lives in bank i % 12; 28 pages -> banks 0..3 hold 3 pages, others 2.
  ASSERT_EQ(k.dram_bank_bytes.size(), 12u);
  EXPECT_EQ(k.dram_bank_bytes[0], 2u * 3 * 2048);
  EXPECT_EQ(k.dram_bank_bytes[3], 2u * 3 * 2048);
  EXPECT_EQ(k.dram_bank_bytes[4], 2u * 2 * 2048);
}

// Accumulate-heavy work on 64 cores gives bitwise-identical outputs and counters on 1, 2 and 4
// host threads.
struct AccArgs {
  uint32_t count;
};
void accumulate_compute(const AccArgs& a) {
  mul_tiles_init(kIn0, kIn1);
  for (uint32_t i = 0; i < a.count; ++i) {
    cb_wait_front(kIn0, 1);
    cb_wait_front(kIn1, 1);
    tile_regs_acquire();
    mul_tiles(kIn0, kIn1, 0, 0, 0);
    sanitizer_allow_accumulate(0);   // a second product onto the same slot, on purpose:
    mul_tiles(kIn0, kIn0, 0, 0, 0);  // bf16 rounding twice
    tile_regs_commit();
    tile_regs_wait();
    cb_reserve_back(kOut, 1);
    pack_tile(0, kOut);
    cb_push_back(kOut, 1);
    tile_regs_release();
    cb_pop_front(kIn0, 1);
    cb_pop_front(kIn1, 1);
  }
}

struct OffsetRead2Args {
  uint32_t addr0, addr1, start, count;
};
void read_two_offset(const OffsetRead2Args& a) {
  const InterleavedAddrGenFast<true> s0 = tile_addr_gen(a.addr0, kIn0);
  const InterleavedAddrGenFast<true> s1 = tile_addr_gen(a.addr1, kIn1);
  for (uint32_t i = 0; i < a.count; ++i) {
    cb_reserve_back(kIn0, 1);
    noc_async_read_tile(a.start + i, s0, get_write_ptr(kIn0));
    noc_async_read_barrier();
    cb_push_back(kIn0, 1);
    cb_reserve_back(kIn1, 1);
    noc_async_read_tile(a.start + i, s1, get_write_ptr(kIn1));
    noc_async_read_barrier();
    cb_push_back(kIn1, 1);
  }
}

TEST(Run, BitwiseIdenticalForOneTwoFourHostThreads) {
  const uint32_t per_core = 3, cores = 64, n = per_core * cores;
  const std::vector<float> a = random_tiles(n, -2, 2, 7);
  const std::vector<float> b = random_tiles(n, -2, 2, 8);
  std::vector<std::vector<uint8_t>> outputs;
  std::vector<std::string> counters;
  for (int threads : {1, 2, 4}) {
    DeviceConfig cfg;  // 8x8
    cfg.host_threads = threads;
    Device d(cfg);
    const Buffer in0 = make_buffer(d, a, DataFormat::Float16_b);
    const Buffer in1 = make_buffer(d, b, DataFormat::Float16_b);
    const Buffer out = make_buffer(d, std::vector<float>(a.size(), 0), DataFormat::Float16_b);
    Program p(d);
    const CoreRange all({0, 0}, {7, 7});
    ASSERT_TRUE(p.create_circular_buffer(all, kIn0, DataFormat::Float16_b, 2).ok());
    ASSERT_TRUE(p.create_circular_buffer(all, kIn1, DataFormat::Float16_b, 2).ok());
    ASSERT_TRUE(p.create_circular_buffer(all, kOut, DataFormat::Float16_b, 2).ok());
    auto r = p.create_kernel(KernelKind::kReader, all, &read_two_offset);
    auto c = p.create_kernel(KernelKind::kCompute, all, &accumulate_compute);
    auto w = p.create_kernel(KernelKind::kWriter, all, &write_tiles);
    p.set_common_runtime_args(c, AccArgs{per_core});
    for (uint32_t i = 0; i < cores; ++i) {
      const CoreCoord core{i % 8, i / 8};
      p.set_runtime_args(r, core,
                         OffsetRead2Args{in0.address, in1.address, i * per_core, per_core});
      p.set_runtime_args(w, core, IoArgs{out.address, i * per_core, per_core, kOut});
    }
    ASSERT_TRUE(d.run(p).ok());
    std::vector<uint8_t> bytes(size_t{n} * 2048);
    ASSERT_TRUE(d.read_buffer(out, bytes.data(), bytes.size()).ok());
    outputs.push_back(bytes);
    counters.push_back(d.last_run().counters.to_string());
    // The values are the faithful ones: r(r(a*b) + a*a), packed.
    const std::vector<float> got = from_bytes(bytes, DataFormat::Float16_b);
    for (size_t i = 0; i < got.size(); i += 97) {
      const float expect = round_to_bf16(round_to_bf16(a[i] * b[i]) + a[i] * a[i]);
      ASSERT_EQ(got[i], expect) << i;
    }
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], outputs[2]);
  EXPECT_EQ(counters[0], counters[1]);
  EXPECT_EQ(counters[0], counters[2]);
}

// Compile-time constants are template parameters of the kernel function.
template <uint32_t kScaleTimesFour>
void scale_compute(const CountArgs& a) {
  for (uint32_t i = 0; i < a.count; ++i) {
    cb_wait_front(kIn0, 1);
    tile_regs_acquire();
    copy_tile(kIn0, 0, 0);
    mul_unary_tile(0, float_bits(kScaleTimesFour / 4.0f));
    tile_regs_commit();
    tile_regs_wait();
    cb_reserve_back(kOut, 1);
    pack_tile(0, kOut);
    cb_push_back(kOut, 1);
    tile_regs_release();
    cb_pop_front(kIn0, 1);
  }
}

TEST(Run, TemplateKernelsCarryCompileTimeConstants) {
  Device d(small_grid(1, 1));
  const std::vector<float> x = random_tiles(3, -2, 2, 5);
  const Buffer in = make_buffer(d, x, DataFormat::Float16_b);
  const Buffer out = make_buffer(d, std::vector<float>(x.size(), 0), DataFormat::Float32);
  for (const bool six : {false, true}) {
    Program p(d);
    const CoreCoord core{0, 0};
    ASSERT_TRUE(p.create_circular_buffer(core, kIn0, DataFormat::Float16_b, 2).ok());
    ASSERT_TRUE(p.create_circular_buffer(core, kOut, DataFormat::Float32, 2).ok());
    auto r = p.create_kernel(KernelKind::kReader, core, &read_tiles);
    auto c =
        p.create_kernel(KernelKind::kCompute, core, six ? &scale_compute<6> : &scale_compute<2>,
                        "scale", ComputeConfig{.fp32_dest_acc_en = true});
    auto w = p.create_kernel(KernelKind::kWriter, core, &write_tiles);
    p.set_runtime_args(r, core, IoArgs{in.address, 0, 3, kIn0});
    p.set_runtime_args(c, core, CountArgs{3});
    p.set_runtime_args(w, core, IoArgs{out.address, 0, 3, kOut});
    ASSERT_TRUE(d.run(p).ok());
    const std::vector<float> got = read_all(d, out);
    for (size_t i = 0; i < got.size(); i += 31) {
      EXPECT_EQ(got[i], x[i] * (six ? 1.5f : 0.5f)) << i;
    }
  }
}

void l1_outside_reader() {
  (void)l1_ptr(1 << 20, 16);  // far past the only CB
}

TEST(Run, L1AccessOutsideEveryCbFailsEvenWithTheSanitizerOff) {
  DeviceConfig cfg = small_grid(1, 1);
  cfg.sanitizer = SanitizerMode::kOff;
  Device d(cfg);
  Program p(d);
  ASSERT_TRUE(p.create_circular_buffer(CoreCoord{0, 0}, kIn0, DataFormat::Float16_b, 2).ok());
  p.create_kernel(KernelKind::kReader, CoreCoord{0, 0}, &l1_outside_reader);
  const Status s = d.run(p);
  ASSERT_FALSE(s.ok());
  ASSERT_EQ(d.last_run().reports.size(), 1u);
  EXPECT_EQ(d.last_run().reports[0].kind, ReportKind::kCbAccessOutsideWindow);
  EXPECT_NE(s.message().find("outside every CB"), std::string::npos) << s.message();
}

TEST(RunDeathTest, KernelApiOutsideAKernelFailsACheck) {
  EXPECT_DEATH(cb_reserve_back(0, 1), "outside a running kernel");
}

}  // namespace
}  // namespace tilenorm::tile
