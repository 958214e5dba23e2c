// Writer of the report's LayerNorm backward op, in tt-metal's dialect: per block of 3, dx and the
// dgamma/dbeta components (full-size bf16, reduced over rows on the host) to their tile
// positions. Compile-time args: the block size, then one accessor per buffer (dx, dgamma, dbeta).
#include <algorithm>

#include "api/dataflow/dataflow_api.h"

constexpr uint32_t kBlock = get_compile_time_arg_val(0);

void kernel_main() {
  const uint32_t dx_addr = get_arg_val<uint32_t>(0), dgamma_addr = get_arg_val<uint32_t>(1),
                 dbeta_addr = get_arg_val<uint32_t>(2), start_row = get_arg_val<uint32_t>(3),
                 num_rows = get_arg_val<uint32_t>(4), wt = get_arg_val<uint32_t>(5);
  const uint32_t cbs[3] = {tt::CBIndex::c_9, tt::CBIndex::c_10, tt::CBIndex::c_11};
  constexpr auto dx_args = TensorAccessorArgs<1>();
  constexpr auto dgamma_args = TensorAccessorArgs<dx_args.next_compile_time_args_offset()>();
  constexpr auto dbeta_args = TensorAccessorArgs<dgamma_args.next_compile_time_args_offset()>();
  const auto dx = TensorAccessor(dx_args, dx_addr, get_tile_size(cbs[0]));
  const auto dgamma = TensorAccessor(dgamma_args, dgamma_addr, get_tile_size(cbs[1]));
  const auto dbeta = TensorAccessor(dbeta_args, dbeta_addr, get_tile_size(cbs[2]));
  for (uint32_t i = 0; i < num_rows; ++i) {
    for (uint32_t c = 0; c < wt; c += kBlock) {
      const uint32_t cur = std::min(kBlock, wt - c);
      for (int k = 0; k < 3; ++k) {
        cb_wait_front(cbs[k], kBlock);
        const uint32_t base = get_read_ptr(cbs[k]), size = get_tile_size(cbs[k]);
        for (uint32_t j = 0; j < cur; ++j) {
          const uint32_t tile = (start_row + i) * wt + c + j;
          if (k == 0) noc_async_write_page(tile, dx, base + j * size);
          if (k == 1) noc_async_write_page(tile, dgamma, base + j * size);
          if (k == 2) noc_async_write_page(tile, dbeta, base + j * size);
        }
      }
      noc_async_write_barrier();
      for (uint32_t k : cbs) cb_pop_front(k, kBlock);
    }
  }
}
