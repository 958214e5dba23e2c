#include "tile/ops/compute_helpers.h"

#include <cmath>

#include "tile/machine/api/cb_api.h"
#include "tile/machine/api/compute/eltwise_binary_sfpu.h"
#include "tile/machine/api/compute/eltwise_unary.h"
#include "tile/machine/api/compute/mask.h"
#include "tile/machine/api/compute/matmul.h"
#include "tile/machine/api/compute/pack.h"
#include "tile/machine/api/compute/reg_api.h"
#include "tile/machine/api/compute/tile_move_copy.h"
#include "tilenorm/bf16.h"

namespace tilenorm::tile {

void mask_columns(uint32_t mask_cb, uint32_t data) {
  copy_tile(mask_cb, 0, data + 1);
  mask_tile(data, data + 1);
}

void pack_out(std::initializer_list<uint32_t> cbs, uint32_t n) {
  tile_regs_commit();
  for (uint32_t cb : cbs) cb_reserve_back(cb, n);
  tile_regs_wait();
  for (uint32_t cb : cbs)
    for (uint32_t s = 0; s < n; ++s) pack_tile(s, cb, s);
  tile_regs_release();
  for (uint32_t cb : cbs) cb_push_back(cb, n);
}

void zero_where_infinite(uint32_t cb, uint32_t itile, uint32_t data) {
  // 1/(v·2^-100) is 0 exactly where v = ±Inf (finite v: |v·2^-100| <= 2^28), NaN where v is
  // NaN (kept: mask_tile zeroes only where the mask equals 0, tt-metal ckernel_sfpu_mask.h).
  copy_tile(cb, itile, data + 1);
  mul_unary_tile(data + 1, float_bits(std::ldexp(1.0f, -100)));
  recip_tile(data + 1);
  mask_tile(data, data + 1);
}

namespace {

// Slot 0 = s / C (slots 1-3 scratch). With m0 = s·(1/C) (within 1.5 ulp of s/C):
//   m1   = m0 rounded to 24 - k bits   (Veltkamp: c = m0·(2^k + 1), m1 = c - (c - m0))
//   r    = s - m1·C                    exact: m1·C has <= 24 bits and lies within 2x of s
//   mean = m1 + r·(1/C)                the sum is off s/C by <= 2^(k-24) ulp before rounding
// The correction mean - m0 is computed on s zeroed where m0·guard is not finite (±Inf, NaN
// only where s is NaN, or |m0| so large that c would overflow) and zeroed there again, so those
// rows keep m0 (a row sum of +Inf gives +Inf).
void divide_by_c(const RowMeanConstants& k) {
  if (k.split == 0) {
    mul_unary_tile(0, k.inv_c);
    return;
  }
  auto guard_mask = [&] {  // slot 1 = 1/(m0·guard): 0 exactly where m0·guard is ±Inf
    fill_tile(1, float_from_bits(k.guard));
    mul_binary_tile(2, 1, 1);
    recip_tile(1);
  };
  fill_tile(2, float_from_bits(k.inv_c));
  mul_binary_tile(0, 2, 2);  // m0
  guard_mask();
  mask_tile(0, 1);  // s, or 0 where m0 is left as is
  fill_tile(1, float_from_bits(k.inv_c));
  mul_binary_tile(0, 1, 1);  // m0 (or 0)
  fill_tile(3, float_from_bits(k.split));
  mul_binary_tile(1, 3, 3);  // c
  sub_binary_tile(3, 1, 1);
  sub_binary_tile(3, 1, 1);  // m1
  fill_tile(3, float_from_bits(k.c));
  mul_binary_tile(1, 3, 3);  // m1·C, exact
  sub_binary_tile(0, 3, 0);  // r, exact
  mul_unary_tile(0, k.inv_c);
  add_binary_tile(1, 0, 0);  // mean
  sub_binary_tile(0, 2, 0);  // mean - m0, exact
  guard_mask();
  mask_tile(0, 1);
  add_binary_tile(2, 0, 0);
}

}  // namespace

void row_means(const RowSumCbs& cbs, uint32_t n, const RowMeanConstants& k) {
  // lo = partial - hi, in fp32 on the SFPU (0 where the partial is ±Inf).
  cb_wait_front(cbs.partial, n);
  cb_wait_front(cbs.hi, n);
  tile_regs_acquire();
  for (uint32_t i = 0; i < n; ++i) {
    copy_tile(cbs.partial, i, 2 * i);
    copy_tile(cbs.hi, i, 2 * i + 1);
    sub_binary_tile(2 * i, 2 * i + 1, 2 * i);
    zero_where_infinite(cbs.partial, i, 2 * i);
  }
  tile_regs_commit();
  cb_pop_front(cbs.partial, n);
  cb_reserve_back(cbs.lo, n);
  tile_regs_wait();
  for (uint32_t i = 0; i < n; ++i) pack_tile(2 * i, cbs.lo, i);
  tile_regs_release();
  cb_push_back(cbs.lo, n);

  // Row sums replicated over the columns, matmul(hi, ones) + matmul(lo, ones), divided by C in
  // fp32 one partial per section (divide_by_c needs four slots), through `partial`.
  cb_wait_front(cbs.lo, n);
  cb_reserve_back(cbs.partial, n);
  mm_init_short(cbs.hi, cbs.ones);
  for (uint32_t i = 0; i < n; ++i) {
    tile_regs_acquire();
    matmul_tiles(cbs.hi, cbs.ones, i, 0, 0);
    matmul_tiles(cbs.lo, cbs.ones, i, 0, 0);
    divide_by_c(k);
    tile_regs_commit();
    tile_regs_wait();
    pack_tile(0, cbs.partial, i);
    tile_regs_release();
  }
  cb_pop_front(cbs.hi, n);
  cb_pop_front(cbs.lo, n);
  cb_push_back(cbs.partial, n);
  cb_wait_front(cbs.partial, n);
  tile_regs_acquire();
  for (uint32_t i = 0; i < n; ++i) copy_tile(cbs.partial, i, i);
  cb_pop_front(cbs.partial, n);
}

}  // namespace tilenorm::tile
