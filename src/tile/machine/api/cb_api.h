// Circular buffers (every kernel kind; tt-metal: dataflow_api.h for readers and writers,
// compute_kernel_api/cb_api.h for compute). Page = tile. Counts are cumulative within a window:
// wait 2 then wait 4 without a pop waits for 4 pages in total. One producer kernel
// (reserve/push) and one consumer kernel (wait/pop) per CB; in a compute kernel pack_tile writes
// the reserved window and copy_tile & co. read the waited window.
#pragma once

#include "tile/machine/api/common.h"

namespace tilenorm::tile {

// Blocks until n pages are free at the back. The window is pages [0, n) after the write pointer.
void cb_reserve_back(uint32_t cb, uint32_t n, SrcLoc loc = SrcLoc::current());
// Publishes the first n reserved pages to the consumer; n <= pages reserved.
void cb_push_back(uint32_t cb, uint32_t n, SrcLoc loc = SrcLoc::current());
// Blocks until n pages are available at the front.
void cb_wait_front(uint32_t cb, uint32_t n, SrcLoc loc = SrcLoc::current());
// Frees the first n waited pages; n <= pages waited for.
void cb_pop_front(uint32_t cb, uint32_t n, SrcLoc loc = SrcLoc::current());

}  // namespace tilenorm::tile
