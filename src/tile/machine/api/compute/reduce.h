// Reduce (compute kernels; tt-metal's compute_kernel_api/reduce.h). Accumulates. With a = tile
// itile of icb and s = scaler[0,0] (tile itile_scaler of icb_scaler; fill the first row of each
// face with the scaler as tt-metal's generators do):
//   REDUCE_ROW:    dst[r][0]  += s * sum_c a[r][c]   (rest of the tile, and what tt-llk really
//                  writes: DeviceConfig::reduce_row, docs/tile-machine.md)
//   REDUCE_COL:    dst[0][c]  += s * sum_r a[r][c]
//   REDUCE_SCALAR: dst[0][0]  += s * sum a
// SUM and AVG are the same op (the scaler carries 1/N); MAX takes max(dst, s * max a).
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

enum class PoolType : uint8_t { SUM, AVG, MAX };
enum class ReduceDim : uint8_t { REDUCE_ROW, REDUCE_COL, REDUCE_SCALAR };
namespace detail {
void reduce_tile(PoolType pool, ReduceDim dim, uint32_t icb, uint32_t icb_scaler, uint32_t itile,
                 uint32_t itile_scaler, uint32_t idst, SrcLoc loc);
}
template <PoolType kPool, ReduceDim kDim>
void reduce_init(uint32_t /*icb*/, uint32_t /*icb_scaler*/, uint32_t /*ocb*/) {}
inline void reduce_uninit() {}
template <PoolType kPool, ReduceDim kDim>
void reduce_tile(uint32_t icb, uint32_t icb_scaler, uint32_t itile, uint32_t itile_scaler,
                 uint32_t idst, SrcLoc loc = SrcLoc::current()) {
  detail::reduce_tile(kPool, kDim, icb, icb_scaler, itile, itile_scaler, idst, loc);
}

}  // namespace tilenorm::tile
