// Norm forward compute kernel. Per tile-row r, with h = x, or h = x + residual (fp32 on the SFPU,
// rounded to the data format as it is written out, and normalized as written):
//
//   LayerNorm:  mean_r = (1/C) Σ_i h_ri
//               rstd_r = 1 / sqrt((1/C) Σ_i (h_ri - mean_r)² + eps)
//               y_ri   = (h_ri - mean_r) · rstd_r · γ_i + β_i
//   RMSNorm:    rrms_r = 1 / sqrt((1/C) Σ_i h_ri² + eps)       (no mean pass: mean := 0)
//               y_ri   = h_ri · rrms_r · γ_i
//
// The row sums are accumulated elementwise in an fp32 dst slot, block by block, carried between
// blocks in the fp32 CB kPartial; the last tile's padded columns are masked; row_means makes each
// sum exact to fp32 and applies 1/C (and eps) in fp32 on the SFPU.
#include <algorithm>

#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/compute/eltwise_binary.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tile/ops/compute_helpers.h"
#include "tile/ops/norm_forward/cbs.h"
#include "tile/ops/norm_forward/kernels.h"

namespace tilenorm::tile {

namespace cb = norm_forward_cb;

namespace {

// The CB the passes read: x, or h.
constexpr uint32_t src_cb(NormForwardVariant v) { return v.residual ? cb::kH : cb::kX; }

// h = x + residual for n tiles (x and the residual in `in_pages`-page windows) into n pages of kH
// (an `h_pages`-page window), each also to the writer when `send`.
void form_h(uint32_t in_pages, uint32_t h_pages, uint32_t n, bool send) {
  cb_wait_front(cb::kX, in_pages);
  cb_wait_front(cb::kResidual, in_pages);
  cb_reserve_back(cb::kH, h_pages);
  for (uint32_t j = 0; j < n; ++j) {
    tile_regs_acquire();
    copy_tile(cb::kX, j, 0);
    copy_tile(cb::kResidual, j, 1);
    add_binary_tile(0, 1, 0);
    tile_regs_commit();
    if (send) cb_reserve_back(cb::kHOut, 1);
    tile_regs_wait();
    pack_tile(0, cb::kH, j);
    if (send) pack_tile(0, cb::kHOut, 0);
    tile_regs_release();
    if (send) cb_push_back(cb::kHOut, 1);
  }
  cb_push_back(cb::kH, h_pages);
  cb_pop_front(cb::kX, in_pages);
  cb_pop_front(cb::kResidual, in_pages);
}

// Block path: the block's tiles waited in the source CB; with a residual h is formed first (and
// sent to the writer on the tile-row's first pass).
template <NormForwardVariant V>
void wait_block(const TileRows& r, uint32_t cur, bool first_pass) {
  if constexpr (V.residual) form_h(r.block, r.block, cur, first_pass);
  cb_wait_front(src_cb(V), r.block);
}

// One row-sum pass: slot 0 += term(tile) over the row, then the partial in kPartial and kHi.
template <NormForwardVariant V, typename Term>
void row_sum_pass(const TileRows& r, bool first_pass, Term&& term) {
  for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block) {
    const uint32_t cur = std::min(r.block, r.wt - c0);
    const bool last_block = c0 + cur == r.wt;
    if (!r.fit) wait_block<V>(r, cur, first_pass);
    tile_regs_acquire();
    if (c0 == 0) {
      fill_tile(0, 0.0f);
    } else {
      cb_wait_front(cb::kPartial, 1);
      copy_tile(cb::kPartial, 0, 0);
      cb_pop_front(cb::kPartial, 1);
    }
    for (uint32_t j = 0; j < cur; ++j) {
      term(r.fit ? c0 + j : j);  // -> slot 2
      if (r.mask_w != 0 && c0 + j + 1 == r.wt) mask_columns(cb::kMask, 2);
      add_binary_tile(0, 2, 0);
    }
    if (last_block) {
      pack_out({cb::kPartial, cb::kHi});
    } else {
      pack_out({cb::kPartial});
    }
    if (!r.fit) cb_pop_front(src_cb(V), r.block);
  }
}

// Packs slot 0 to the row CB (kept for the next passes) and to the writer.
void emit_stat(uint32_t row_cb) {
  pack_out({row_cb, cb::kStatsOut});
  cb_wait_front(row_cb, 1);
}

}  // namespace

template <NormForwardVariant V>
void norm_forward_compute(const NormForwardComputeArgs& a) {
  constexpr uint32_t kSrc = src_cb(V);
  const TileRows& r = a.rows;
  const RowSumCbs sums{cb::kPartial, cb::kHi, cb::kLo, cb::kOnes};
  binary_op_init_common(cb::kX, cb::kGamma, cb::kY);
  if (r.mask_w != 0) cb_wait_front(cb::kMask, 1);
  cb_wait_front(cb::kOnes, 1);
  for (uint32_t row = 0; row < r.count; ++row) {
    if (r.fit) {
      if constexpr (V.residual) {
        for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block) {
          const uint32_t cur = std::min(r.block, r.wt - c0);
          form_h(r.block, cur, cur, true);
        }
      }
      cb_wait_front(kSrc, r.wt);
    }

    if constexpr (V.has_mean()) {
      row_sum_pass<V>(r, true, [](uint32_t ix) { copy_tile(kSrc, ix, 2); });
      row_means(sums, 1, a.mean);  // slot 0 = mean
      emit_stat(cb::kMeanRow);
    }

    row_sum_pass<V>(r, !V.has_mean(), [](uint32_t ix) {
      copy_tile(kSrc, ix, 2);
      if constexpr (V.has_mean()) {
        copy_tile(cb::kMeanRow, 0, 3);
        sub_binary_tile(2, 3, 2);
      }
      square_tile(2);
    });
    row_means(sums, 1, a.mean);  // slot 0 = variance (RMSNorm: mean of h²)
    add_unary_tile(0, a.eps_bits);
    rsqrt_tile(0);
    emit_stat(cb::kRstdRow);

    for (uint32_t c0 = 0; c0 < r.wt; c0 += r.block) {
      const uint32_t cur = std::min(r.block, r.wt - c0);
      if (!r.fit) wait_block<V>(r, cur, false);
      cb_wait_front(cb::kGamma, r.block);
      if constexpr (V.has_beta()) cb_wait_front(cb::kBeta, r.block);
      for (uint32_t j = 0; j < cur; ++j) {
        tile_regs_acquire();
        copy_tile(kSrc, r.fit ? c0 + j : j, 0);
        if constexpr (V.has_mean()) {
          copy_tile(cb::kMeanRow, 0, 1);
          sub_binary_tile(0, 1, 0);
        }
        copy_tile(cb::kRstdRow, 0, 1);
        mul_binary_tile(0, 1, 0);  // x̂
        copy_tile(cb::kGamma, j, 1);
        mul_binary_tile(0, 1, 0);
        if constexpr (V.has_beta()) {
          copy_tile(cb::kBeta, j, 1);
          add_binary_tile(0, 1, 0);
        }
        pack_out({cb::kY});
      }
      cb_pop_front(cb::kGamma, r.block);
      if constexpr (V.has_beta()) cb_pop_front(cb::kBeta, r.block);
      if (!r.fit) cb_pop_front(kSrc, r.block);
    }
    if constexpr (V.has_mean()) cb_pop_front(cb::kMeanRow, 1);
    cb_pop_front(cb::kRstdRow, 1);
    if (r.fit) cb_pop_front(kSrc, r.wt);
  }
  if (r.mask_w != 0) cb_pop_front(cb::kMask, 1);
  cb_pop_front(cb::kOnes, 1);
}

TILENORM_NORM_FORWARD_VARIANTS(norm_forward_compute, NormForwardComputeArgs)

}  // namespace tilenorm::tile
