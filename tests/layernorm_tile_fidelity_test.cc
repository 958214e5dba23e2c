// Emulator fidelity: a test-only backward kernel with the structure of the report's kernel
// (upstream layernorm_bw_kernel.cpp before PR #53215: bf16 statistics, x̂ preprocessing in
// chunks of 3, s1/s2 as matmuls against a bf16 1/C scaler tile made by truncation, three passes
// in blocks of 3 when the row does not fit) reproduces the hardware's published figures in
// faithful mode, and the sanitizer names both upstream bugs with their source lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "test_util.h"
#include "tile/machine/api/compute/bcast.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/mask.h"
#include "tile/machine/api/compute/matmul.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/device.h"
#include "tile/ops/layernorm_backward/layernorm_backward.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile {
namespace {

// The report's CB layout (c_0 .. c_14; the dgamma/dbeta components are left out).
constexpr uint32_t kScaler = 0, kMask = 1, kGamma = 2, kXhat = 3, kRstd = 4, kDy = 5, kX = 6,
                   kMean = 7, kMeanBcast = 8, kDx = 9, kRstdBcast = 12, kS1 = 13, kS2 = 14;
constexpr uint32_t kBlock = 3;

struct ReportArgs {
  uint32_t x_addr, dy_addr, gamma_addr, mean_addr, rstd_addr, dx_addr;
  uint32_t start_row, num_rows, wt, mask_w, fit;
  uint16_t scaler_bits;  // bf16 1/C
};

InterleavedAddrGenFast<true> gen(uint32_t addr, uint32_t cb) {
  return {
      .bank_base_address = addr, .page_size = get_tile_size(cb), .data_format = get_dataformat(cb)};
}

void read_block(uint32_t cb, uint32_t addr, uint32_t first, uint32_t n, uint32_t pages) {
  cb_reserve_back(cb, pages);
  const auto s = gen(addr, cb);
  for (uint32_t i = 0; i < n; ++i)
    noc_async_read_tile(first + i, s, get_write_ptr(cb) + i * get_tile_size(cb));
}

void report_reader(const ReportArgs& a) {
  if (a.mask_w != 0) {
    cb_reserve_back(kMask, 1);
    fill_mask_page(kMask, 0, a.mask_w);
    cb_push_back(kMask, 1);
  }
  cb_reserve_back(kScaler, 1);
  fill_page(kScaler, 0, bf16_to_float(bf16{a.scaler_bits}));
  cb_push_back(kScaler, 1);
  for (uint32_t i = 0; i < a.num_rows; ++i) {
    const uint32_t row = a.start_row + i;
    read_block(kRstd, a.rstd_addr, row, 1, 1);
    read_block(kMean, a.mean_addr, row, 1, 1);
    noc_async_read_barrier();
    cb_push_back(kRstd, 1);
    cb_push_back(kMean, 1);
    if (a.fit) {
      read_block(kX, a.x_addr, row * a.wt, a.wt, a.wt);
      read_block(kDy, a.dy_addr, row * a.wt, a.wt, a.wt);
      if (i == 0) read_block(kGamma, a.gamma_addr, 0, a.wt, a.wt);
      noc_async_read_barrier();
      cb_push_back(kX, a.wt);
      cb_push_back(kDy, a.wt);
      if (i == 0) cb_push_back(kGamma, a.wt);
      continue;
    }
    // Three passes in blocks of 3: dy+gamma (s1), x+dy+gamma (s2), x+gamma+dy (dx).
    for (int pass = 0; pass < 3; ++pass) {
      for (uint32_t c = 0; c < a.wt; c += kBlock) {
        const uint32_t cur = std::min(kBlock, a.wt - c);
        if (pass > 0) read_block(kX, a.x_addr, row * a.wt + c, cur, kBlock);
        read_block(kDy, a.dy_addr, row * a.wt + c, cur, kBlock);
        read_block(kGamma, a.gamma_addr, c, cur, kBlock);
        noc_async_read_barrier();
        if (pass > 0) cb_push_back(kX, kBlock);
        cb_push_back(kDy, kBlock);
        cb_push_back(kGamma, kBlock);
      }
    }
  }
}

void report_writer(const ReportArgs& a) {
  const auto dx = gen(a.dx_addr, kDx);
  for (uint32_t i = 0; i < a.num_rows; ++i) {
    for (uint32_t c = 0; c < a.wt; c += kBlock) {
      const uint32_t cur = std::min(kBlock, a.wt - c);
      cb_wait_front(kDx, kBlock);
      for (uint32_t j = 0; j < cur; ++j)
        noc_async_write_tile((a.start_row + i) * a.wt + c + j, dx,
                             get_read_ptr(kDx) + j * get_tile_size(kDx));
      noc_async_write_barrier();
      cb_pop_front(kDx, kBlock);
    }
  }
}

// x̂ of n tiles (x at index first.. of kX) into kXhat, pushing a chunk of 3.
constexpr uint32_t kXhatAcquireLine = __LINE__ + 3;
void x_hat_preprocessing(uint32_t first, uint32_t n) {
  cb_reserve_back(kXhat, kBlock);
  tile_regs_acquire();
  for (uint32_t j = 0; j < n; ++j) {
    sub_tiles(kX, kMeanBcast, first + j, 0, j);
    copy_tile(kRstdBcast, 0, j + 1);
    mul_binary_tile(j, j + 1, j);
  }
  tile_regs_commit();
  tile_regs_wait();
  for (uint32_t j = 0; j < n; ++j) pack_tile(j, kXhat, j);
  tile_regs_release();
  cb_push_back(kXhat, kBlock);
}

// dx - s1 - x̂·s2 in reg j, s1 in reg j+1 on entry (Bug 1: the product lands on s1).
constexpr uint32_t kBug1Line = __LINE__ + 4;
template <bool kBug1>
void subtract_xhat_s2(uint32_t ixhat, uint32_t j) {
  if constexpr (!kBug1) fill_tile(j + 1, 0.0f);
  mul_tiles(kXhat, kS2, ixhat, 0, j + 1);
  sub_binary_tile(j, j + 1, j);
}

// Pack reg 0 (the row partial), then reg 0 = matmul(partial, scaler): the row mean, replicated.
void scale_partial(uint32_t cb) {
  tile_regs_commit();
  cb_reserve_back(cb, 1);
  tile_regs_wait();
  pack_tile(0, cb, 0);
  tile_regs_release();
  cb_push_back(cb, 1);
  cb_wait_front(cb, 1);
  tile_regs_acquire();
  mm_init(cb, kScaler, cb);
  matmul_tiles(cb, kScaler, 0, 0, 0);
  tile_regs_commit();
  cb_pop_front(cb, 1);
  cb_reserve_back(cb, 1);
  tile_regs_wait();
  pack_tile(0, cb, 0);
  tile_regs_release();
  cb_push_back(cb, 1);
}

// One s2 term: reg target = dy·γ·x̂ (masked on the last tile), added into reg 0.
void s2_term(uint32_t idy, uint32_t ixhat, uint32_t col, const ReportArgs& a) {
  const uint32_t target = col == 0 ? 0 : 1;
  fill_tile(target, 0.0f);
  mul_tiles_bcast_rows(kDy, kGamma, idy, idy, target);
  copy_tile(kXhat, ixhat, 2);
  mul_binary_tile(target, 2, target);
  if (a.mask_w != 0 && col + 1 == a.wt) {
    copy_tile(kMask, 0, target + 1);
    mask_tile(target, target + 1);
  }
  if (col > 0) add_binary_tile(0, 1, 0);
}

// One s1 term: dy·γ accumulated onto reg 0 (the FPU adds onto dst: not a bug), the masked
// last tile through reg 1.
void s1_term(uint32_t idy, uint32_t col, const ReportArgs& a) {
  if (a.mask_w != 0 && col + 1 == a.wt) {
    const uint32_t r = a.wt == 1 ? 0 : 1;
    mul_tiles_bcast_rows(kDy, kGamma, idy, idy, r);
    copy_tile(kMask, 0, r + 1);
    mask_tile(r, r + 1);
    if (r != 0) add_binary_tile(0, r, 0);
  } else {
    mul_tiles_bcast_rows(kDy, kGamma, idy, idy, 0);
  }
}

template <bool kBug1, bool kBug2>
void report_compute(const ReportArgs& a) {
  const uint32_t wt3 = (a.wt + kBlock - 1) / kBlock * kBlock;
  if (a.mask_w != 0) cb_wait_front(kMask, 1);
  cb_wait_front(kScaler, 1);
  for (uint32_t row = 0; row < a.num_rows; ++row) {
    for (auto [raw, bcast] : {std::pair{kRstd, kRstdBcast}, std::pair{kMean, kMeanBcast}}) {
      cb_wait_front(raw, 1);
      tile_regs_acquire();
      unary_bcast<BroadcastType::COL>(raw, 0, 0);
      tile_regs_commit();
      cb_reserve_back(bcast, 1);
      tile_regs_wait();
      pack_tile(0, bcast, 0);
      tile_regs_release();
      cb_push_back(bcast, 1);
      cb_pop_front(raw, 1);
      cb_wait_front(bcast, 1);
    }
    if (a.fit) {
      cb_wait_front(kX, a.wt);
      cb_wait_front(kDy, a.wt);
      cb_wait_front(kGamma, a.wt);
      for (uint32_t c = 0; c < a.wt; c += kBlock)
        x_hat_preprocessing(c, std::min(kBlock, a.wt - c));
      cb_wait_front(kXhat, wt3);
      tile_regs_acquire();
      for (uint32_t col = 0; col < a.wt; ++col) s1_term(col, col, a);
      scale_partial(kS1);
      tile_regs_acquire();
      for (uint32_t col = 0; col < a.wt; ++col) s2_term(col, col, col, a);
      scale_partial(kS2);
    } else {
      tile_regs_acquire();
      for (uint32_t c = 0; c < a.wt; c += kBlock) {
        cb_wait_front(kDy, kBlock);
        cb_wait_front(kGamma, kBlock);
        for (uint32_t j = 0; j < std::min(kBlock, a.wt - c); ++j) s1_term(j, c + j, a);
        cb_pop_front(kDy, kBlock);
        cb_pop_front(kGamma, kBlock);
      }
      scale_partial(kS1);
      if (kBug2) tile_regs_acquire();  // one window for the whole row: x̂ preprocessing nests
      for (uint32_t c = 0; c < a.wt; c += kBlock) {
        const uint32_t cur = std::min(kBlock, a.wt - c);
        cb_wait_front(kX, kBlock);
        x_hat_preprocessing(0, cur);
        cb_wait_front(kXhat, kBlock);
        cb_wait_front(kDy, kBlock);
        cb_wait_front(kGamma, kBlock);
        if (!kBug2) {  // PR #53215: a window per block, the partial carried through kS2
          tile_regs_acquire();
          if (c > 0) {
            cb_wait_front(kS2, 1);
            copy_tile(kS2, 0, 3);
            cb_pop_front(kS2, 1);
          }
        }
        for (uint32_t j = 0; j < cur; ++j) s2_term(j, j, c + j, a);
        if (!kBug2) {
          if (c > 0) add_binary_tile(0, 3, 0);
          if (c + cur < a.wt) {
            tile_regs_commit();
            cb_reserve_back(kS2, 1);
            tile_regs_wait();
            pack_tile(0, kS2, 0);
            tile_regs_release();
            cb_push_back(kS2, 1);
          }
        }
        cb_pop_front(kXhat, kBlock);
        cb_pop_front(kDy, kBlock);
        cb_pop_front(kGamma, kBlock);
        cb_pop_front(kX, kBlock);
      }
      scale_partial(kS2);
    }
    cb_wait_front(kS1, 1);
    cb_wait_front(kS2, 1);
    // dx in blocks of 3, regs j and j+1 per tile.
    for (uint32_t c = 0; c < a.wt; c += kBlock) {
      const uint32_t cur = std::min(kBlock, a.wt - c);
      if (!a.fit) {
        cb_wait_front(kX, kBlock);
        x_hat_preprocessing(0, cur);
        cb_wait_front(kXhat, kBlock);
        cb_wait_front(kGamma, kBlock);
        cb_wait_front(kDy, kBlock);
      }
      tile_regs_acquire();
      for (uint32_t j = 0; j < cur; ++j) {
        const uint32_t i = a.fit ? c + j : j;
        fill_tile(j, 0.0f);
        mul_tiles_bcast_rows(kDy, kGamma, i, i, j);
        copy_tile(kS1, 0, j + 1);
        sub_binary_tile(j, j + 1, j);
        subtract_xhat_s2<kBug1>(i, j);
        copy_tile(kRstdBcast, 0, j + 1);
        mul_binary_tile(j, j + 1, j);
      }
      tile_regs_commit();
      cb_reserve_back(kDx, kBlock);
      tile_regs_wait();
      for (uint32_t j = 0; j < cur; ++j) pack_tile(j, kDx, j);
      tile_regs_release();
      cb_push_back(kDx, kBlock);
      if (!a.fit) {
        cb_pop_front(kXhat, kBlock);
        cb_pop_front(kGamma, kBlock);
        cb_pop_front(kDy, kBlock);
        cb_pop_front(kX, kBlock);
      }
    }
    for (uint32_t cb : {kS1, kS2, kRstdBcast, kMeanBcast}) cb_pop_front(cb, 1);
    if (a.fit) {
      cb_pop_front(kDy, a.wt);
      cb_pop_front(kXhat, wt3);
      cb_pop_front(kX, a.wt);
      if (row + 1 == a.num_rows) cb_pop_front(kGamma, a.wt);
    }
  }
  if (a.mask_w != 0) cb_pop_front(kMask, 1);
  cb_pop_front(kScaler, 1);
}

struct ReportRun {
  std::vector<float> dx;  // rows x C
  RunResult result;
  bool fit = false;
};

// Runs the report-structured kernel on one problem (bf16 tiles, bf16 statistics).
template <bool kBug1, bool kBug2>
ReportRun run_report_kernel(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                            const Tensor& mean, const Tensor& rstd, bool truncate_scaler,
                            SanitizerMode sanitizer, uint32_t l1_size = 1464 * 1024) {
  const int64_t rows = x.shape().rows(), C = x.shape().cols();
  const uint32_t ht = uint32_t(tiles_along(rows)), wt = uint32_t(tiles_along(C));
  const uint32_t wt3 = (wt + 2) / 3 * 3;
  DeviceConfig config;
  config.numerics = NumericsMode::kFaithful;
  config.sanitizer = sanitizer;
  config.l1_size = l1_size;
  Device device(config);
  // The report's L1 rule: the fit path when x, dy and gamma (Wt bf16 pages each), x̂ (Wt rounded
  // up to whole blocks of 3) and 24 fixed bf16 pages, plus 8 KiB, fit in L1.
  const bool fit = 2048ull * (3 * wt + wt3 + 24) + 8192 <= config.l1_size;
  const auto bf = DataFormat::Float16_b;
  auto upload = [&](const std::vector<float>& m, int64_t r, int64_t c) {
    Buffer b;
    EXPECT_TRUE(device.create_buffer(uint32_t(num_tiles(r, c)), bf, &b).ok());
    EXPECT_TRUE(device.write_tiles(b, m.data(), r, c, 0.0f).ok());
    return b;
  };
  auto values = [](const Tensor& t) {
    std::vector<float> v(size_t(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = float(t.get(i));
    return v;
  };
  std::vector<float> mean_m(size_t(rows) * 32), rstd_m(size_t(rows) * 32);
  for (int64_t r = 0; r < rows; ++r)
    for (int c = 0; c < 32; ++c) {
      mean_m[size_t(r * 32 + c)] = float(mean.get(r));
      rstd_m[size_t(r * 32 + c)] = float(rstd.get(r));
    }
  const Buffer bx = upload(values(x), rows, C), bdy = upload(values(dy), rows, C),
               bg = upload(values(gamma), 1, C), bm = upload(mean_m, rows, 32),
               br = upload(rstd_m, rows, 32);
  Buffer bdx;
  EXPECT_TRUE(device.create_buffer(ht * wt, bf, &bdx).ok());

  Program program(device);
  const CoreRange grid({0, 0}, {7, 7});
  const uint32_t big = fit ? wt : 2 * kBlock;
  const std::vector<std::pair<uint32_t, uint32_t>> pages = {
      {kScaler, 1},    {kMask, 1},        {kGamma, big},  {kXhat, fit ? wt3 : 2 * kBlock},
      {kRstd, 1},      {kDy, big},        {kX, big},      {kMean, 1},
      {kMeanBcast, 1}, {kDx, 2 * kBlock}, {kRstdBcast, 1}};
  for (auto [cb, n] : pages) EXPECT_TRUE(program.create_circular_buffer(grid, cb, bf, n).ok());
  for (uint32_t cb : {kS1, kS2})
    EXPECT_TRUE(program.create_circular_buffer(grid, cb, DataFormat::Float32, 1).ok());
  const WorkSplit split = split_work_to_cores(8, 8, ht);
  const float inv_c = 1.0f / float(C);
  const uint16_t scaler =
      truncate_scaler ? float_to_bf16_truncate(inv_c).bits : float_to_bf16(inv_c).bits;
  for (uint32_t i = 0; i < split.num_cores; ++i) {
    const CoreCoord core = split.cores[i];
    const ReportArgs args{bx.address,
                          bdy.address,
                          bg.address,
                          bm.address,
                          br.address,
                          bdx.address,
                          split.first_work_of(i),
                          split.work_of(i),
                          wt,
                          uint32_t(C % 32),
                          fit ? 1u : 0u,
                          scaler};
    const auto r =
        program.create_kernel(KernelKind::kReader, core, &report_reader, "report_reader");
    const auto c = program.create_kernel(KernelKind::kCompute, core, &report_compute<kBug1, kBug2>,
                                         "report_compute", ComputeConfig{.fp32_dest_acc_en = true});
    const auto w =
        program.create_kernel(KernelKind::kWriter, core, &report_writer, "report_writer");
    program.set_runtime_args(r, core, args);
    program.set_runtime_args(c, core, args);
    program.set_runtime_args(w, core, args);
  }
  ReportRun run;
  run.fit = fit;
  const Status s = device.run(program);
  EXPECT_TRUE(s.ok()) << s.to_string();
  run.result = device.last_run();
  run.dx.resize(size_t(rows * C));
  EXPECT_TRUE(device.read_tiles(bdx, rows, C, run.dx.data()).ok());
  return run;
}

struct Problem {
  Tensor x, dy, gamma, mean, rstd;
  tilenorm::testing::BackwardRef ref;
};

Problem make_problem(const Shape& shape, bool constant, uint64_t seed) {
  using namespace tilenorm::testing;
  Problem p;
  const Shape cs{shape.cols()};
  p.x = constant ? constant_tensor(shape, DType::kBF16, 0.5)
                 : random_tensor(shape, DType::kBF16, seed);
  p.dy = constant ? constant_tensor(shape, DType::kBF16, 1)
                  : random_tensor(shape, DType::kBF16, seed + 1);
  p.gamma = constant ? constant_tensor(cs, DType::kBF16, 1)
                     : random_tensor(cs, DType::kBF16, seed + 2, 0, 1);
  const auto f = reference_forward(p.x.cview(), p.gamma.cview(), {}, 1e-6);
  p.mean = Tensor(shape.leading(), DType::kF32);
  p.rstd = Tensor(shape.leading(), DType::kF32);
  for (int64_t r = 0; r < shape.rows(); ++r) {
    p.mean.set(r, f.mean[r]);
    p.rstd.set(r, f.rstd[r]);
  }
  p.ref = reference_backward(p.x.cview(), p.dy.cview(), p.gamma.cview(), p.mean.cview(),
                             p.rstd.cview());
  return p;
}

double max_abs_err(const std::vector<float>& got, const std::vector<double>& ref) {
  double m = 0;
  for (size_t i = 0; i < ref.size(); ++i) m = std::max(m, std::fabs(double(got[i]) - ref[i]));
  return m;
}

double our_op_err(const Problem& p) {
  Tensor dx(p.x.shape(), DType::kBF16), dg(p.gamma.shape(), DType::kF32),
      db(p.gamma.shape(), DType::kF32);
  TileOpConfig config;
  EXPECT_TRUE(layernorm_backward_tile(
                  {p.x.cview(), p.dy.cview(), p.gamma.cview(), p.mean.cview(), p.rstd.cview()},
                  {dx.view(), dg.view(), db.view()}, config)
                  .ok());
  std::vector<float> v(size_t(dx.numel()));
  for (int64_t i = 0; i < dx.numel(); ++i) v[size_t(i)] = float(dx.get(i));
  return max_abs_err(v, p.ref.dx);
}

// dx of the buggy kernel on the report's constant inputs (x = 0.5, dy = 1, gamma = 1, eps 1e-6).
double constant_dx(int64_t rows, int64_t C, bool* fit) {
  const Problem p = make_problem(Shape{rows, C}, true, 0);
  const ReportRun run =
      run_report_kernel<true, true>(p.x, p.dy, p.gamma, p.mean, p.rstd, true, SanitizerMode::kOff);
  *fit = run.fit;
  const double lo = *std::min_element(run.dx.begin(), run.dx.end());
  const double hi = *std::max_element(run.dx.begin(), run.dx.end());
  EXPECT_NEAR(lo, hi, 1e-3 * std::fabs(lo)) << "dx should be one value on constant inputs";
  return lo;
}

TEST(LayerNormTileFidelity, ReportKernelGivesMinus1000OnConstantInputs) {
  for (int64_t C : {2048, 4096, 8192}) {
    bool fit = false;
    const double dx = constant_dx(100, C, &fit);
    EXPECT_NEAR(dx, -1000.0, 0.5) << "C = " << C;
    EXPECT_EQ(fit, C <= 4096) << "the report's L1 rule";
    std::printf("[fidelity] constant inputs, C = %lld (%s): dx = %.2f (device: -1000)\n",
                static_cast<long long>(C), fit ? "fit" : "non-fit", dx);
  }
}

TEST(LayerNormTileFidelity, ReportKernelGivesMinus993At8462) {
  bool fit = true;
  const double dx = constant_dx(819, 8462, &fit);
  // 1000 * (1 - 2 * C * trunc_bf16(1/C)) = 1000 * (1 - 2 * 0.99664) = -993.3, stored as bf16
  // (step 4 at 1000): -992 (device: 988..992).
  EXPECT_NEAR(dx, -993.3, 2.0);
  EXPECT_FALSE(fit);
  std::printf("[fidelity] constant inputs, C = 8462 (non-fit): dx = %.2f (device: 988..992)\n", dx);
}

TEST(LayerNormTileFidelity, RandomDataErrorBuggyVersusFixed) {
  // Upstream's small main tests: Bug 1's error rstd * s1 is largest where C is small.
  for (const Shape& shape : {Shape{13, 20}, Shape{32, 33}}) {
    const Problem p = make_problem(shape, false, 1234);
    const auto buggy = run_report_kernel<true, true>(p.x, p.dy, p.gamma, p.mean, p.rstd, true,
                                                     SanitizerMode::kOff);
    const auto fixed = run_report_kernel<false, false>(p.x, p.dy, p.gamma, p.mean, p.rstd, false,
                                                       SanitizerMode::kError);
    const double e_buggy = max_abs_err(buggy.dx, p.ref.dx),
                 e_fixed = max_abs_err(fixed.dx, p.ref.dx);
    const double e_ours = our_op_err(p);
    std::printf(
        "[fidelity] random %s: dx max|err| buggy %.3f, fixed %.4f, tile op %.4f "
        "(device: >= 0.15 vs <= 0.014)\n",
        shape.to_string().c_str(), e_buggy, e_fixed, e_ours);
    EXPECT_GE(e_buggy, 0.15);
    EXPECT_LE(e_fixed, 0.014);
    EXPECT_LE(e_ours, 0.014);
    EXPECT_TRUE(fixed.result.ok()) << fixed.result.reports[0].to_string();
  }
}

TEST(LayerNormTileFidelity, SanitizerNamesBothBugsWithTheirLines) {
  // OneTilePerRow's shape with an L1 of 100 KiB, which the report's rule sends to the non-fit
  // path (Bug 2 live) in 3 blocks per row: few enough findings per core to keep them all.
  const Problem p = make_problem(Shape{19, 213}, false, 99);
  const auto run = run_report_kernel<true, true>(p.x, p.dy, p.gamma, p.mean, p.rstd, true,
                                                 SanitizerMode::kWarn, 100 * 1024);
  ASSERT_FALSE(run.fit);
  const auto bug1 = run.result.of_kind(ReportKind::kImplicitAccumulation);
  const auto bug2 = run.result.of_kind(ReportKind::kDstNestedAcquire);
  ASSERT_FALSE(bug1.empty());
  ASSERT_FALSE(bug2.empty());
  EXPECT_EQ(bug1[0]->line, kBug1Line) << bug1[0]->to_string();
  EXPECT_EQ(bug1[0]->op, "mul_tiles");
  EXPECT_EQ(bug2[0]->line, kXhatAcquireLine) << bug2[0]->to_string();
  std::printf("[fidelity] %s\n[fidelity] %s\n", bug1[0]->to_string().c_str(),
              bug2[0]->to_string().c_str());
  const double err = max_abs_err(run.dx, p.ref.dx);
  std::printf("[fidelity] random [19, 213], non-fit, both bugs: dx max|err| %.3f\n", err);
  EXPECT_GE(err, 0.15);
}

}  // namespace
}  // namespace tilenorm::tile
