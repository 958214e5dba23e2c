// tt-metal's DPRINT, accepted and discarded (the tile machine has no device print log).
#pragma once

#include <cstdint>

namespace tilenorm_tt {
struct DprintSink {
  template <typename T>
  const DprintSink& operator<<(const T& /*value*/) const {
    return *this;
  }
};
}  // namespace tilenorm_tt

struct SliceRange {
  uint8_t h0, h1, hs, w0, w1, ws;
};
struct TileSlice {
  TileSlice(uint32_t /*cb*/, uint32_t /*tile*/, SliceRange /*range*/, bool /*cb_type*/ = true,
            bool /*untilize*/ = false) {}
};
inline int ENDL() { return 0; }
#define DPRINT \
  ::tilenorm_tt::DprintSink {}
