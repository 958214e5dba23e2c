// Compute kernel of the report's LayerNorm backward op, in tt-metal's dialect (compiled by the
// kernel JIT): upstream tt-train layernorm_bw_kernel.cpp before its fix, statement for statement
// (docs/layernorm.md, "The report's op"). The variant's switches are defines: REPORT_BUG1
// (compute_dx's mul_tiles onto s1), REPORT_BUG2 (the nested acquire in the block path's s2 sum),
// REPORT_SUM_LOOP (0 as reported, 1 and 2 the report's two rewrites of the s1 loop). The shape
// travels in the runtime args; the lines marked "line:" are the defects' lines, which the
// expected findings name.
#include <algorithm>

#include "compute_kernel_api/bcast.h"
#include "compute_kernel_api/eltwise_binary.h"
#include "compute_kernel_api/eltwise_binary_sfpu.h"
#include "compute_kernel_api/eltwise_unary/eltwise_unary.h"
#include "compute_kernel_api/eltwise_unary/fill.h"
#include "compute_kernel_api/mask.h"
#include "compute_kernel_api/matmul.h"
#include "compute_kernel_api/pack.h"
#include "compute_kernel_api/reg_api.h"
#include "compute_kernel_api/tile_move_copy.h"
#include "tile/machine/api/compute/sanitizer.h"

#ifndef REPORT_SUM_LOOP
#define REPORT_SUM_LOOP 0
#endif

namespace NAMESPACE {

constexpr uint32_t kBlock = get_compile_time_arg_val(0);
#ifdef REPORT_BUG1
constexpr bool kBug1 = true;
#else
constexpr bool kBug1 = false;
#endif
#ifdef REPORT_BUG2
constexpr bool kBug2 = true;
#else
constexpr bool kBug2 = false;
#endif
constexpr uint32_t kSumLoop = REPORT_SUM_LOOP;  // 0 as reported, 1 option 1, 2 option 2

constexpr uint32_t kScaler = tt::CBIndex::c_0, kMask = tt::CBIndex::c_1, kGamma = tt::CBIndex::c_2,
                   kXhat = tt::CBIndex::c_3, kRstd = tt::CBIndex::c_4, kDy = tt::CBIndex::c_5,
                   kX = tt::CBIndex::c_6, kMean = tt::CBIndex::c_7, kMeanBcast = tt::CBIndex::c_8,
                   kDx = tt::CBIndex::c_9, kDgammaComp = tt::CBIndex::c_10,
                   kDbetaComp = tt::CBIndex::c_11, kRstdBcast = tt::CBIndex::c_12,
                   kS1 = tt::CBIndex::c_13, kS2 = tt::CBIndex::c_14,
                   kAccumulate = tt::CBIndex::c_15;

// The runtime args: rows of this core, tiles per row, valid columns of the last tile (0: all),
// the fit path, and fp32 bits of 1/C when the scaler page holds 1.0 (else 0).
struct Args {
  uint32_t num_rows, wt, mask_w, fit, inv_c_bits;
};

// compute_x_hat_preprocessing: x̂ of n tiles (from tile `first` of kX) into a chunk of 3 pages.
void x_hat_preprocessing(uint32_t first, uint32_t n) {
  cb_reserve_back(kXhat, kBlock);
  tile_regs_acquire();  // line: xhat-acquire
  for (uint32_t j = 0; j < n; ++j) {
    sub_tiles(kX, kMeanBcast, first + j, 0, j);
    copy_tile(kRstdBcast, 0, j + 1);
    mul_binary_tile(j, j + 1, j);
  }
  tile_regs_commit();
  tile_regs_wait();
  for (uint32_t j = 0; j < n; ++j) pack_tile(j, kXhat);
  tile_regs_release();
  cb_push_back(kXhat, kBlock);
}

// Slot j holds dy·γ − s1 and slot j+1 the copy of s1: subtract x̂·s2. The fix zeroes slot j+1
// first; Bug 1 lets the product accumulate onto s1, so dx = rstd·(dy·γ − 2·s1 − x̂·s2).
void subtract_xhat_s2(uint32_t ixhat, uint32_t j) {
  if (!kBug1) fill_tile(j + 1, 0.0f);
  mul_tiles(kXhat, kS2, ixhat, 0, j + 1);  // line: bug1-mul
  sub_binary_tile(j, j + 1, j);
}

// Commits the section and packs its slot 0 into one page of `out`.
void pack_slot0(uint32_t out) {
  tile_regs_commit();
  cb_reserve_back(out, 1);
  tile_regs_wait();
  pack_tile(0, out);
  tile_regs_release();
  cb_push_back(out, 1);
}

// Packs slot 0 (the row partial) to `out`, then slot 0 = matmul(partial, scaler): every column
// of row r holds scaler · Σ partial[r][·] (the scaler is 1/C, or 1.0 and inv_c_bits scales in
// fp32 on the SFPU), packed back to `out`.
void scale_partial(uint32_t out, uint32_t inv_c_bits) {
  pack_slot0(out);
  cb_wait_front(out, 1);
  tile_regs_acquire();
  mm_init(out, kScaler, out);
  matmul_tiles(out, kScaler, 0, 0, 0);
  if (inv_c_bits != 0) mul_unary_tile(0, inv_c_bits);
  cb_pop_front(out, 1);
  pack_slot0(out);
}

bool masked_last(const Args& a, uint32_t col) { return a.mask_w != 0 && col + 1 == a.wt; }

// One s1 term as upstream: dy·γ accumulated onto slot 0 (the FPU adds onto dst, so this loop
// does accumulate), the masked last tile through slot 1 (slot 0 when it is the only tile).
void s1_term(uint32_t idy, uint32_t col, const Args& a) {
  if (masked_last(a, col)) {
    const uint32_t r = a.wt == 1 ? 0 : 1;
    mul_tiles_bcast_rows(kDy, kGamma, idy, idy, r);
    copy_tile(kMask, 0, r + 1);
    mask_tile(r, r + 1);
    if (r != 0) add_binary_tile(0, r, 0);
  } else {
    mul_tiles_bcast_rows(kDy, kGamma, idy, idy, 0);
  }
}

// The report's option 1, as written: the product into working_register (slot 1), then
// copy_tile(working_register, sum_register) on the first tile (a dst-to-dst copy, which the
// compute API spells copy_dest_values: an SFPU copy, modelled as fill + add) and
// add_binary_tile(sum, working, sum) on the others. Slot 1 is never zeroed, so each product adds
// onto the previous ones: the sum becomes Σ_k (Wt − k)·term_k.
void s1_term_option1(uint32_t idy, uint32_t col, const Args& a) {
  mul_tiles_bcast_rows(kDy, kGamma, idy, idy, 1);  // line: option1-mul
  if (masked_last(a, col)) {
    copy_tile(kMask, 0, 2);
    mask_tile(1, 2);
  }
  if (col == 0) fill_tile(0, 0.0f);
  add_binary_tile(0, 1, 0);
}

void s1_sum_term(uint32_t idy, uint32_t col, const Args& a) {
  if (kSumLoop == 1) {
    s1_term_option1(idy, col, a);
  } else {
    s1_term(idy, col, a);
  }
}

// One s2 term: slot target = dy·γ·x̂ (masked on the last tile), added into slot 0. `first`: the
// first term of the dst section, which lands in slot 0 itself (upstream: col == 0). The fixed
// block path opens a section per block, so there the first term of every block is `first`.
void s2_term(uint32_t idy, uint32_t ixhat, uint32_t col, bool first, const Args& a) {
  const uint32_t target = first ? 0 : 1;
  fill_tile(target, 0.0f);
  mul_tiles_bcast_rows(kDy, kGamma, idy, idy, target);
  copy_tile(kXhat, ixhat, 2);
  mul_binary_tile(target, 2, target);
  if (masked_last(a, col)) {
    copy_tile(kMask, 0, target + 1);
    mask_tile(target, target + 1);
  }
  if (!first) add_binary_tile(0, 1, 0);
}

// Block path s1. As reported: one section for the whole row. Option 2: a section per block, the
// running sum copied in from kAccumulate and repacked there (the carry-in is intended, declared
// to the sanitizer).
void block_s1(const Args& a) {
  constexpr bool option2 = kSumLoop == 2;
  if (!option2) tile_regs_acquire();
  for (uint32_t c = 0; c < a.wt; c += kBlock) {
    const uint32_t cur = std::min(kBlock, a.wt - c);
    cb_wait_front(kDy, kBlock);
    cb_wait_front(kGamma, kBlock);
    if (option2) {
      tile_regs_acquire();
      if (c > 0) {
        cb_wait_front(kAccumulate, 1);
        copy_tile(kAccumulate, 0, 0);
        cb_pop_front(kAccumulate, 1);
        tilenorm::tile::sanitizer_allow_accumulate(0);
      }
    }
    for (uint32_t j = 0; j < cur; ++j) s1_sum_term(j, c + j, a);
    cb_pop_front(kDy, kBlock);
    cb_pop_front(kGamma, kBlock);
    if (option2 && c + cur < a.wt) pack_slot0(kAccumulate);
  }
}

// Block path s2. Bug 2: one section for the row, inside which every block's x̂ preprocessing
// acquires, commits and releases the same section (the packer's release zeroes the running
// sum). Fixed: x̂ first, then a section per block, the running sum carried through kS2.
void block_s2(const Args& a) {
  if (kBug2) tile_regs_acquire();
  for (uint32_t c = 0; c < a.wt; c += kBlock) {
    const uint32_t cur = std::min(kBlock, a.wt - c);
    cb_wait_front(kX, kBlock);
    x_hat_preprocessing(0, cur);
    cb_wait_front(kXhat, kBlock);
    cb_wait_front(kDy, kBlock);
    cb_wait_front(kGamma, kBlock);
    if (!kBug2) {
      tile_regs_acquire();
      if (c > 0) {
        cb_wait_front(kS2, 1);
        copy_tile(kS2, 0, 3);
        cb_pop_front(kS2, 1);
      }
    }
    for (uint32_t j = 0; j < cur; ++j) s2_term(j, j, c + j, kBug2 ? c + j == 0 : j == 0, a);
    if (!kBug2) {
      if (c > 0) add_binary_tile(0, 3, 0);
      if (c + cur < a.wt) pack_slot0(kS2);
    }
    cb_pop_front(kXhat, kBlock);
    cb_pop_front(kDy, kBlock);
    cb_pop_front(kGamma, kBlock);
    cb_pop_front(kX, kBlock);
  }
}

// Packs slots 0..n-1 in order into a block of 3 pages of `out`.
void pack_block(uint32_t out, uint32_t n) {
  tile_regs_commit();
  cb_reserve_back(out, kBlock);
  tile_regs_wait();
  for (uint32_t j = 0; j < n; ++j) pack_tile(j, out);
  tile_regs_release();
  cb_push_back(out, kBlock);
}

void MAIN {
  const Args a{get_arg_val<uint32_t>(0), get_arg_val<uint32_t>(1), get_arg_val<uint32_t>(2),
               get_arg_val<uint32_t>(3), get_arg_val<uint32_t>(4)};
  const uint32_t wt3 = (a.wt + kBlock - 1) / kBlock * kBlock;
  if (a.mask_w != 0) cb_wait_front(kMask, 1);
  cb_wait_front(kScaler, 1);
  for (uint32_t row = 0; row < a.num_rows; ++row) {
    // rstd and mean arrive in column 0 of their tile: replicate over the columns.
    for (auto [raw, bcast] : {std::pair{kRstd, kRstdBcast}, std::pair{kMean, kMeanBcast}}) {
      cb_wait_front(raw, 1);
      tile_regs_acquire();
      unary_bcast<BroadcastType::COL>(raw, 0, 0);
      pack_slot0(bcast);
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
      for (uint32_t col = 0; col < a.wt; ++col) s1_sum_term(col, col, a);
      scale_partial(kS1, a.inv_c_bits);
      tile_regs_acquire();
      for (uint32_t col = 0; col < a.wt; ++col) s2_term(col, col, col, col == 0, a);
      scale_partial(kS2, a.inv_c_bits);
    } else {
      block_s1(a);
      scale_partial(kS1, a.inv_c_bits);
      block_s2(a);
      scale_partial(kS2, a.inv_c_bits);
    }
    cb_wait_front(kS1, 1);
    cb_wait_front(kS2, 1);
    // compute_dx and the dgamma/dbeta components, in blocks of 3 (slots j and j+1 per tile).
    for (uint32_t c = 0; c < a.wt; c += kBlock) {
      const uint32_t cur = std::min(kBlock, a.wt - c);
      if (!a.fit) {
        cb_wait_front(kX, kBlock);
        x_hat_preprocessing(0, cur);
        cb_wait_front(kXhat, kBlock);
        cb_wait_front(kGamma, kBlock);
        cb_wait_front(kDy, kBlock);
      }
      const uint32_t base = a.fit ? c : 0;
      tile_regs_acquire();
      for (uint32_t j = 0; j < cur; ++j) {
        const uint32_t i = base + j;
        fill_tile(j, 0.0f);
        mul_tiles_bcast_rows(kDy, kGamma, i, i, j);
        copy_tile(kS1, 0, j + 1);
        sub_binary_tile(j, j + 1, j);
        subtract_xhat_s2(i, j);
        copy_tile(kRstdBcast, 0, j + 1);
        mul_binary_tile(j, j + 1, j);
      }
      pack_block(kDx, cur);
      tile_regs_acquire();
      for (uint32_t j = 0; j < cur; ++j) mul_tiles(kDy, kXhat, base + j, base + j, j);
      pack_block(kDgammaComp, cur);
      tile_regs_acquire();
      for (uint32_t j = 0; j < cur; ++j) copy_tile(kDy, base + j, j);
      pack_block(kDbetaComp, cur);
      if (!a.fit) {
        cb_pop_front(kXhat, kBlock);
        cb_pop_front(kGamma, kBlock);
        cb_pop_front(kDy, kBlock);
        cb_pop_front(kX, kBlock);
      }
    }
    for (uint32_t k : {kS1, kS2, kRstdBcast, kMeanBcast}) cb_pop_front(k, 1);
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

}  // namespace NAMESPACE
