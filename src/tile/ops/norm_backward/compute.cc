// Norm backward compute kernel. Per tile-row r, with g = dy·γ and x̂ = (x - mean)·rstd (x is h
// when the forward took a residual):
//
//   LayerNorm:  s1_r  = (1/C) Σ_i g_ri
//               s2_r  = rstd_r · ((1/C) Σ_i g_ri·x_ri - mean_r·s1_r)   (= (1/C) Σ_i g_ri·x̂_ri)
//               dx_ri = rstd_r · (g_ri - s1_r - x̂_ri·s2_r)
//   RMSNorm:    x̂_ri  = x_ri·rrms_r
//               s2_r  = rrms_r · (1/C) Σ_i g_ri·x_ri
//               dx_ri = rrms_r · (g_ri - x̂_ri·s2_r)
//               (no mean, no s1: neither is computed)
//   dx_ri += dh_in_ri                                                (with dh_in)
//   dγ_i += Σ_r dy_ri·x̂_ri,   dβ_i += Σ_r dy_ri (LayerNorm)           (this core's rows, fp32)
//
// Pass 1 accumulates Σg (LayerNorm) and Σg·x elementwise in fp32 dst slots, block by block, the
// running partials carried between blocks through the fp32 CB kPartial (never across a nested
// acquire); the last tile's padded columns are masked. The row sums are exact and divided
// by C correctly rounded (row_means), in fp32 on the SFPU. g is formed on the SFPU in fp32 (the FPU
// reads fp32 CBs as TF32). Pass 2 writes dx and folds dy·x̂ and dy (each split hi + lo) into dense
// fp32 dgamma/dbeta spans with row-selector matmuls, each masked to its row and added on the SFPU.
// The FPU accumulates by design only where a matmul adds lo onto hi; every other FPU product
// lands on a fresh or zero-filled slot.
//
// TILENORM_TILE_MUTANT (build-time fault injection for the mutation test; 0 in every product
// build): 1 assigns instead of accumulating the row partials, 2 drops the last-tile mask, 3 skips
// the carried partial.
#include <algorithm>

#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/mask.h"
#include "tile/machine/api/compute/matmul.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/sanitizer.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/ops/compute_helpers.h"
#include "tile/ops/norm_backward/cbs.h"
#include "tile/ops/norm_backward/kernels.h"

#ifndef TILENORM_TILE_MUTANT
#define TILENORM_TILE_MUTANT 0
#endif

namespace tilenorm::tile {

namespace cb = norm_backward_cb;

namespace {

constexpr int kMutant = TILENORM_TILE_MUTANT;

// acc += term (dst slots).
void accumulate(uint32_t acc, uint32_t term) {
  if (kMutant == 1) sub_binary_tile(acc, acc, acc);
  add_binary_tile(acc, term, acc);
}

// Zeroes the padded columns of slot `data` on the row's last tile (mask in data + 1).
void mask_last(bool last_masked, uint32_t data) {
  if (last_masked && kMutant != 2) mask_columns(cb::kMask, data);
}

// Slots 0..n-1 = the partials carried in kPartial (or zero on the row's first block).
void load_partials(bool first_block, uint32_t n) {
  if (!first_block) cb_wait_front(cb::kPartial, n);
  for (uint32_t i = 0; i < n; ++i) {
    if (first_block || kMutant == 3) {
      fill_tile(i, 0.0f);
    } else {
      copy_tile(cb::kPartial, i, i);
    }
  }
  if (!first_block) cb_pop_front(cb::kPartial, n);
}

// Slot acc += the column sums of tile j of hi + lo in row `sel` (slots 2, 3 scratch).
// matmul(sel_i, P) has the column sums of P in row i and 0·P in the other rows, which is NaN
// under a NaN or Inf of P; mask_tile with the selector (1 in row i) zeroes those rows, so a
// non-finite value reaches only its own column.
void fold_column_sums(uint32_t hi, uint32_t lo, uint32_t j, uint32_t sel, uint32_t acc) {
  fill_tile(2, 0.0f);
  matmul_tiles(cb::kSelect, hi, sel, j, 2);
  matmul_tiles(cb::kSelect, lo, sel, j, 2);
  copy_tile(cb::kSelect, sel, 3);
  mask_tile(2, 3);
  add_binary_tile(acc, 2, acc);
}

}  // namespace

template <NormBackwardVariant V>
void norm_backward_compute(const NormBackwardComputeArgs& a) {
  // Row partials: LayerNorm Σg (slot 0) and Σg·x (slot 1); RMSNorm Σg·x (slot 0). The dγ/dβ span
  // pair: dγ (slot 0) and dβ (slot 1, LayerNorm).
  constexpr uint32_t kSums = V.row_sums(), kGx = kSums - 1, kAcc = V.accumulators();
  const TileRows& r = a.rows;
  const bool masked = r.mask_w != 0;
  binary_op_init_common(cb::kDy, cb::kGamma, cb::kDx);
  if (masked) cb_wait_front(cb::kMask, 1);
  cb_wait_front(cb::kOnes, 1);
  cb_wait_front(cb::kSelect, kTileDim);

  for (uint32_t row = 0; row < r.count; ++row) {
    const bool first_row = row == 0, last_row = row + 1 == r.count;
    if constexpr (V.has_mean()) cb_wait_front(cb::kMean, 1);
    cb_wait_front(cb::kRstd, 1);
    if (r.fit) {
      cb_wait_front(cb::kX, r.wt);
      cb_wait_front(cb::kDy, r.wt);
    }

    // ---- Pass 1: Σg (LayerNorm), Σg·x.
    for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block) {
      const uint32_t cur = std::min(r.block, r.wt - c0);
      const bool last_block = c0 + cur == r.wt;
      if (!r.fit) {
        cb_wait_front(cb::kX, r.block);
        cb_wait_front(cb::kDy, r.block);
      }
      cb_wait_front(cb::kGamma, r.block);
      tile_regs_acquire();
      load_partials(c0 == 0, kSums);
      for (uint32_t j = 0; j < cur; ++j) {
        const uint32_t ix = r.fit ? c0 + j : j;
        const bool last_masked = masked && c0 + j + 1 == r.wt;
        copy_tile(cb::kDy, ix, 2);
        copy_tile(cb::kGamma, j, 3);
        mul_binary_tile(2, 3, 2);  // g, in fp32 (the FPU would read fp32 dy and γ as TF32)
        if constexpr (kSums == 2) {
          mask_last(last_masked, 2);
          accumulate(0, 2);
        }
        copy_tile(cb::kX, ix, 3);
        mul_binary_tile(2, 3, 2);  // g·x
        mask_last(last_masked, 2);
        accumulate(kGx, 2);
      }
      if (last_block) {
        pack_out({cb::kPartial, cb::kHi}, kSums);
      } else {
        pack_out({cb::kPartial}, kSums);
      }
      cb_pop_front(cb::kGamma, r.block);
      if (!r.fit) {
        cb_pop_front(cb::kX, r.block);
        cb_pop_front(cb::kDy, r.block);
      }
    }

    // ---- s1 (LayerNorm) and s2, replicated over the columns, in kRowStats.
    row_means({cb::kPartial, cb::kHi, cb::kLo, cb::kOnes}, kSums, a.mean);
    if constexpr (V.has_mean()) {
      copy_tile(cb::kMean, 0, 2);
      mul_binary_tile(2, 0, 2);  // mean·s1
      sub_binary_tile(1, 2, 1);  // (1/C)Σg·x - mean·s1
    }
    copy_tile(cb::kRstd, 0, 2);
    mul_binary_tile(kGx, 2, kGx);  // s2
    pack_out({cb::kRowStats}, kSums);
    cb_wait_front(cb::kRowStats, kSums);

    // ---- Pass 2: dx, and the dgamma/dbeta spans.
    for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block) {
      const uint32_t cur = std::min(r.block, r.wt - c0);
      if (!r.fit) {
        cb_wait_front(cb::kX, r.block);
        cb_wait_front(cb::kDy, r.block);
      }
      cb_wait_front(cb::kGamma, r.block);
      if constexpr (V.dh_in) cb_wait_front(cb::kDhIn, r.block);
      cb_reserve_back(cb::kProduct, r.block);
      cb_reserve_back(cb::kProductHi, r.block);
      if constexpr (V.has_beta()) cb_reserve_back(cb::kDyHi, r.block);
      for (uint32_t j = 0; j < cur; ++j) {
        const uint32_t ix = r.fit ? c0 + j : j;
        const bool last_masked = masked && c0 + j + 1 == r.wt;
        tile_regs_acquire();
        copy_tile(cb::kDy, ix, 0);
        copy_tile(cb::kGamma, j, 1);
        mul_binary_tile(0, 1, 0);  // g, in fp32
        if constexpr (V.mean_g_term()) {
          copy_tile(cb::kRowStats, 0, 1);
          sub_binary_tile(0, 1, 0);  // g - s1
        }
        copy_tile(cb::kX, ix, 1);
        if constexpr (V.has_mean()) {
          copy_tile(cb::kMean, 0, 2);
          sub_binary_tile(1, 2, 1);
        }
        copy_tile(cb::kRstd, 0, 2);
        mul_binary_tile(1, 2, 1);  // x̂
        copy_tile(cb::kDy, ix, 2);
        mul_binary_tile(2, 1, 2);  // dy·x̂
        mask_last(last_masked, 2);
        copy_tile(cb::kRowStats, kGx, 3);
        mul_binary_tile(1, 3, 1);  // x̂·s2
        sub_binary_tile(0, 1, 0);  // g - s1 - x̂·s2
        copy_tile(cb::kRstd, 0, 1);
        mul_binary_tile(0, 1, 0);  // dx
        if constexpr (V.dh_in) {
          copy_tile(cb::kDhIn, j, 1);
          add_binary_tile(0, 1, 0);  // dx + dh_in
        }
        tile_regs_commit();
        cb_reserve_back(cb::kDx, 1);
        tile_regs_wait();
        pack_tile(0, cb::kDx, 0);
        pack_tile(2, cb::kProduct, j);
        pack_tile(2, cb::kProductHi, j);
        tile_regs_release();
        cb_push_back(cb::kDx, 1);
        if constexpr (V.has_beta()) {  // dy (masked) rounded to bf16 for dβ.
          tile_regs_acquire();
          copy_tile(cb::kDy, ix, 0);
          mask_last(last_masked, 0);
          tile_regs_commit();
          tile_regs_wait();
          pack_tile(0, cb::kDyHi, j);
          tile_regs_release();
        }
      }
      cb_push_back(cb::kProduct, r.block);
      cb_push_back(cb::kProductHi, r.block);
      if constexpr (V.has_beta()) cb_push_back(cb::kDyHi, r.block);

      // dy·x̂ and dy as hi + lo (as in row_means): the FPU would read fp32 tiles as TF32.
      cb_wait_front(cb::kProduct, r.block);
      cb_wait_front(cb::kProductHi, r.block);
      if constexpr (V.has_beta()) cb_wait_front(cb::kDyHi, r.block);
      cb_reserve_back(cb::kProductLo, r.block);
      if constexpr (V.has_beta()) cb_reserve_back(cb::kDyLo, r.block);
      for (uint32_t j = 0; j < cur; ++j) {
        const uint32_t ix = r.fit ? c0 + j : j;
        tile_regs_acquire();
        copy_tile(cb::kProduct, j, 0);
        copy_tile(cb::kProductHi, j, 1);
        sub_binary_tile(0, 1, 0);
        zero_where_infinite(cb::kProduct, j, 0);
        if constexpr (V.has_beta()) {
          copy_tile(cb::kDy, ix, 2);
          copy_tile(cb::kDyHi, j, 3);
          sub_binary_tile(2, 3, 2);
          mask_last(masked && c0 + j + 1 == r.wt, 2);
          zero_where_infinite(cb::kDy, ix, 2);
        }
        tile_regs_commit();
        tile_regs_wait();
        pack_tile(0, cb::kProductLo, j);
        if constexpr (V.has_beta()) pack_tile(2, cb::kDyLo, j);
        tile_regs_release();
      }
      cb_push_back(cb::kProductLo, r.block);
      if constexpr (V.has_beta()) cb_push_back(cb::kDyLo, r.block);
      cb_wait_front(cb::kProductLo, r.block);
      if constexpr (V.has_beta()) cb_wait_front(cb::kDyLo, r.block);

      // Fold the block into its span: row (t % 32) of the span's dγ (slot 0) and dβ (slot 1).
      const bool span_first = c0 % kSpanTiles == 0;
      const bool span_done = (c0 + cur) % kSpanTiles == 0 || c0 + cur == r.wt;
      tile_regs_acquire();
      if (!span_first || (!first_row && !r.stream)) {
        const uint32_t src = span_first ? cb::kAccCarry : cb::kAccSpan;
        cb_wait_front(src, kAcc);
        for (uint32_t k = 0; k < kAcc; ++k) copy_tile(src, k, k);
        cb_pop_front(src, kAcc);
      } else {
        for (uint32_t k = 0; k < kAcc; ++k) fill_tile(k, 0.0f);
      }
      mm_init_short(cb::kSelect, cb::kProductHi);
      for (uint32_t j = 0; j < cur; ++j) {
        fold_column_sums(cb::kProductHi, cb::kProductLo, j, (c0 + j) % kSpanTiles, 0);
        if constexpr (V.has_beta())
          fold_column_sums(cb::kDyHi, cb::kDyLo, j, (c0 + j) % kSpanTiles, 1);
      }
      pack_out({!span_done             ? cb::kAccSpan
                : last_row || r.stream ? cb::kAccOut
                                       : cb::kAccCarry},
               kAcc);

      cb_pop_front(cb::kProduct, r.block);
      cb_pop_front(cb::kProductHi, r.block);
      cb_pop_front(cb::kProductLo, r.block);
      if constexpr (V.has_beta()) {
        cb_pop_front(cb::kDyHi, r.block);
        cb_pop_front(cb::kDyLo, r.block);
      }
      cb_pop_front(cb::kGamma, r.block);
      if constexpr (V.dh_in) cb_pop_front(cb::kDhIn, r.block);
      if (!r.fit) {
        cb_pop_front(cb::kX, r.block);
        cb_pop_front(cb::kDy, r.block);
      }
    }

    cb_pop_front(cb::kRowStats, kSums);
    if constexpr (V.has_mean()) cb_pop_front(cb::kMean, 1);
    cb_pop_front(cb::kRstd, 1);
    if (r.fit) {
      cb_pop_front(cb::kX, r.wt);
      cb_pop_front(cb::kDy, r.wt);
    }
  }
  if (masked) cb_pop_front(cb::kMask, 1);
  cb_pop_front(cb::kOnes, 1);
  cb_pop_front(cb::kSelect, kTileDim);
}

TILENORM_NORM_BACKWARD_VARIANTS(norm_backward_compute, NormBackwardComputeArgs)

}  // namespace tilenorm::tile
