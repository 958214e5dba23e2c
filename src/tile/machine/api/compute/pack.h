// Packer (compute kernels; tt-metal's compute_kernel_api/pack.h).
#pragma once

#include "tile/machine/api/compute/common.h"

namespace tilenorm::tile {

namespace detail {
void pack_tile_at(uint32_t idst, uint32_t ocb, uint32_t out_tile_index, bool out_of_order,
                  bool index_given, SrcLoc loc);
}  // namespace detail

// Packs dst slot idst into ocb's reserved window (format conversion by the packer,
// docs/tile-machine.md "Numerics modes"). As tt-metal's pack_tile<out_of_order_output>:
// in order (the default) each call writes the next page of the window — the CB's pack position
// starts at page 0 and cb_push_back resets it — and an index is ignored (the sanitizer reports
// an index that differs from the position: `pack-index-ignored`); pack_tile<true>(idst, ocb, i)
// writes page i of the window and leaves the position alone.
template <bool out_of_order_output = false>
void pack_tile(uint32_t idst, uint32_t ocb, SrcLoc loc = SrcLoc::current()) {
  detail::pack_tile_at(idst, ocb, 0, out_of_order_output, false, loc);
}
template <bool out_of_order_output = false>
void pack_tile(uint32_t idst, uint32_t ocb, uint32_t output_tile_index,
               SrcLoc loc = SrcLoc::current()) {
  detail::pack_tile_at(idst, ocb, output_tile_index, out_of_order_output, true, loc);
}
void pack_reconfig_data_format(uint32_t ocb);

}  // namespace tilenorm::tile
