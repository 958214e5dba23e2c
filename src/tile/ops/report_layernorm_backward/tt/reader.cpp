// Reader of the report's LayerNorm backward op, in tt-metal's dialect (upstream's
// reader_layernorm_bw_interleaved): the mask and scaler pages once, then per tile-row rstd and
// mean, and either the whole tile-row of x and dy (gamma once per core) or three passes in blocks
// of 3: dy + gamma (s1), x + dy + gamma (s2), x + gamma + dy (dx). A block always reserves and
// pushes 3 pages. Compile-time args: the block size, then one accessor per buffer (x, dy, gamma,
// mean, rstd). Constant pages are written through the machine's window-checked l1_ptr.
#include <algorithm>

#include "api/dataflow/dataflow_api.h"
#include "tile/machine/api/dataflow_api.h"
#include "tile/machine/tile.h"

constexpr uint32_t kBlock = get_compile_time_arg_val(0);
constexpr uint32_t kScaler = tt::CBIndex::c_0, kMask = tt::CBIndex::c_1, kGamma = tt::CBIndex::c_2,
                   kRstd = tt::CBIndex::c_4, kDy = tt::CBIndex::c_5, kX = tt::CBIndex::c_6,
                   kMean = tt::CBIndex::c_7;

// Reserves `pages` pages of `cb` and reads n tiles from tile `first` into them (no barrier).
template <typename Accessor>
void read_into(uint32_t cb, const Accessor& s, uint32_t first, uint32_t n, uint32_t pages) {
  cb_reserve_back(cb, pages);
  const uint32_t base = get_write_ptr(cb), size = get_tile_size(cb);
  for (uint32_t i = 0; i < n; ++i) noc_async_read_page(first + i, s, base + i * size);
}

// One bf16 page of `cb` whose element (row, col) is value(col), pushed.
template <typename F>
void push_bf16_page(uint32_t cb, F&& value) {
  cb_reserve_back(cb, 1);
  uint16_t* p = tilenorm::tile::l1_ptr<uint16_t>(get_write_ptr(cb), tilenorm::tile::kTileElems);
  for (int r = 0; r < 32; ++r)
    for (int c = 0; c < 32; ++c) p[tilenorm::tile::tile_index(r, c)] = value(uint32_t(c));
  cb_push_back(cb, 1);
}

void kernel_main() {
  const uint32_t x_addr = get_arg_val<uint32_t>(0), dy_addr = get_arg_val<uint32_t>(1),
                 gamma_addr = get_arg_val<uint32_t>(2), mean_addr = get_arg_val<uint32_t>(3),
                 rstd_addr = get_arg_val<uint32_t>(4), start_row = get_arg_val<uint32_t>(5),
                 num_rows = get_arg_val<uint32_t>(6), wt = get_arg_val<uint32_t>(7),
                 mask_w = get_arg_val<uint32_t>(8), fit = get_arg_val<uint32_t>(9),
                 scaler_bits = get_arg_val<uint32_t>(10);
  constexpr auto x_args = TensorAccessorArgs<1>();
  constexpr auto dy_args = TensorAccessorArgs<x_args.next_compile_time_args_offset()>();
  constexpr auto gamma_args = TensorAccessorArgs<dy_args.next_compile_time_args_offset()>();
  constexpr auto mean_args = TensorAccessorArgs<gamma_args.next_compile_time_args_offset()>();
  constexpr auto rstd_args = TensorAccessorArgs<mean_args.next_compile_time_args_offset()>();
  const auto x = TensorAccessor(x_args, x_addr, get_tile_size(kX));
  const auto dy = TensorAccessor(dy_args, dy_addr, get_tile_size(kDy));
  const auto gamma = TensorAccessor(gamma_args, gamma_addr, get_tile_size(kGamma));
  const auto mean = TensorAccessor(mean_args, mean_addr, get_tile_size(kMean));
  const auto rstd = TensorAccessor(rstd_args, rstd_addr, get_tile_size(kRstd));
  constexpr uint16_t kOne = 0x3F80;  // bf16 1.0
  if (mask_w != 0)
    push_bf16_page(kMask, [&](uint32_t c) { return c < mask_w ? kOne : uint16_t(0); });
  push_bf16_page(kScaler, [&](uint32_t) { return uint16_t(scaler_bits); });
  for (uint32_t i = 0; i < num_rows; ++i) {
    const uint32_t row = start_row + i;
    read_into(kRstd, rstd, row, 1, 1);
    read_into(kMean, mean, row, 1, 1);
    noc_async_read_barrier();
    cb_push_back(kRstd, 1);
    cb_push_back(kMean, 1);
    if (fit) {
      read_into(kX, x, row * wt, wt, wt);
      read_into(kDy, dy, row * wt, wt, wt);
      if (i == 0) read_into(kGamma, gamma, 0, wt, wt);
      noc_async_read_barrier();
      cb_push_back(kX, wt);
      cb_push_back(kDy, wt);
      if (i == 0) cb_push_back(kGamma, wt);
      continue;
    }
    for (int pass = 0; pass < 3; ++pass) {
      for (uint32_t c = 0; c < wt; c += kBlock) {
        const uint32_t cur = std::min(kBlock, wt - c);
        if (pass > 0) read_into(kX, x, row * wt + c, cur, kBlock);
        read_into(kDy, dy, row * wt + c, cur, kBlock);
        read_into(kGamma, gamma, c, cur, kBlock);
        noc_async_read_barrier();
        if (pass > 0) cb_push_back(kX, kBlock);
        cb_push_back(kDy, kBlock);
        cb_push_back(kGamma, kBlock);
      }
    }
  }
}
