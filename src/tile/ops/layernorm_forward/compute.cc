// LayerNorm forward compute kernel. Per tile-row r:
//
//   mean_r = (1/C) Σ_i x_ri
//   rstd_r = 1 / sqrt((1/C) Σ_i (x_ri - mean_r)² + eps)
//   y_ri   = (x_ri - mean_r) · rstd_r · γ_i + β_i
//
// The two row sums are accumulated elementwise in an fp32 dst slot, block by block, carried
// between blocks in the fp32 CB kPartial; the last tile's padded columns are masked; row_means
// makes each sum exact to fp32 and applies 1/C (and eps) in fp32 on the SFPU.
#include <algorithm>

#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/ops/kernel_helpers.h"
#include "tile/ops/layernorm_forward/cbs.h"
#include "tile/ops/layernorm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = layernorm_forward_cb;

namespace {

// One row-sum pass: slot 0 += term(tile) over the row, then the partial in kPartial and kHi.
template <typename Term>
void row_sum_pass(const LayerNormForwardComputeArgs& a, Term&& term) {
  for (uint32_t c0 = 0; c0 < a.rows.wt; c0 += a.rows.block) {
    const uint32_t cur = std::min(a.rows.block, a.rows.wt - c0);
    const bool last_block = c0 + cur == a.rows.wt;
    if (!a.rows.fit) cb_wait_front(cb::kX, a.rows.block);
    tile_regs_acquire();
    if (c0 == 0) {
      fill_tile(0, 0.0f);
    } else {
      cb_wait_front(cb::kPartial, 1);
      copy_tile(cb::kPartial, 0, 0);
      cb_pop_front(cb::kPartial, 1);
    }
    for (uint32_t j = 0; j < cur; ++j) {
      term(a.rows.fit ? c0 + j : j);  // -> slot 2
      if (a.rows.mask_w != 0 && c0 + j + 1 == a.rows.wt) mask_columns(cb::kMask, 2);
      add_binary_tile(0, 2, 0);
    }
    if (last_block) {
      pack_out({cb::kPartial, cb::kHi});
    } else {
      pack_out({cb::kPartial});
    }
    if (!a.rows.fit) cb_pop_front(cb::kX, a.rows.block);
  }
}

// Packs slot 0 to the row CB (kept for the next passes) and to the writer.
void emit_stat(uint32_t row_cb) {
  pack_out({row_cb, cb::kStatsOut});
  cb_wait_front(row_cb, 1);
}

}  // namespace

void layernorm_forward_compute(const LayerNormForwardComputeArgs& a) {
  const RowSumCbs sums{cb::kPartial, cb::kHi, cb::kLo, cb::kOnes};
  binary_op_init_common(cb::kX, cb::kGamma, cb::kY);
  if (a.rows.mask_w != 0) cb_wait_front(cb::kMask, 1);
  cb_wait_front(cb::kOnes, 1);
  for (uint32_t row = 0; row < a.rows.count; ++row) {
    if (a.rows.fit) cb_wait_front(cb::kX, a.rows.wt);

    row_sum_pass(a, [](uint32_t ix) { copy_tile(cb::kX, ix, 2); });
    row_means(sums, 1, a.mean);  // slot 0 = mean
    emit_stat(cb::kMeanRow);

    row_sum_pass(a, [](uint32_t ix) {
      copy_tile(cb::kX, ix, 2);
      copy_tile(cb::kMeanRow, 0, 3);
      sub_binary_tile(2, 3, 2);
      square_tile(2);
    });
    row_means(sums, 1, a.mean);  // slot 0 = variance
    add_unary_tile(0, a.eps_bits);
    rsqrt_tile(0);
    emit_stat(cb::kRstdRow);

    for (uint32_t c0 = 0; c0 < a.rows.wt; c0 += a.rows.block) {
      const uint32_t cur = std::min(a.rows.block, a.rows.wt - c0);
      if (!a.rows.fit) cb_wait_front(cb::kX, a.rows.block);
      cb_wait_front(cb::kGamma, a.rows.block);
      cb_wait_front(cb::kBeta, a.rows.block);
      for (uint32_t j = 0; j < cur; ++j) {
        tile_regs_acquire();
        copy_tile(cb::kX, a.rows.fit ? c0 + j : j, 0);
        copy_tile(cb::kMeanRow, 0, 1);
        sub_binary_tile(0, 1, 0);
        copy_tile(cb::kRstdRow, 0, 1);
        mul_binary_tile(0, 1, 0);  // x̂
        copy_tile(cb::kGamma, j, 1);
        mul_binary_tile(0, 1, 0);
        copy_tile(cb::kBeta, j, 1);
        add_binary_tile(0, 1, 0);  // y
        pack_out({cb::kY});
      }
      cb_pop_front(cb::kGamma, a.rows.block);
      cb_pop_front(cb::kBeta, a.rows.block);
      if (!a.rows.fit) cb_pop_front(cb::kX, a.rows.block);
    }
    cb_pop_front(cb::kMeanRow, 1);
    cb_pop_front(cb::kRstdRow, 1);
    if (a.rows.fit) cb_pop_front(cb::kX, a.rows.wt);
  }
  if (a.rows.mask_w != 0) cb_pop_front(cb::kMask, 1);
  cb_pop_front(cb::kOnes, 1);
}

}  // namespace tilenorm::tile
