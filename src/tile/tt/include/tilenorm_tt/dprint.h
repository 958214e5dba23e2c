// tt-metal's DPRINT: what a kernel streams goes to the run's debug print log
// (tilenorm::tile::dprint_write) when the device keeps it (DeviceConfig::dprint), else nowhere.
// Integers print in decimal, floating-point values as printf's %g; ENDL() ends a line; a
// TileSlice prints a note, as the tile machine does not print tiles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <type_traits>

#include "tile/machine/api/dprint.h"

struct SliceRange {
  uint8_t h0, h1, hs, w0, w1, ws;
};
struct TileSlice {
  TileSlice(uint32_t cb, uint32_t tile, SliceRange /*range*/, bool /*cb_type*/ = true,
            bool /*untilize*/ = false)
      : cb(cb), tile(tile) {}
  uint32_t cb, tile;
};

namespace tilenorm_tt {
struct DprintEndl {};
template <typename... A>
void dprint_printf(const char* format, A... args) {
  char text[64];
  const int n = std::snprintf(text, sizeof text, format, args...);
  tilenorm::tile::dprint_write(std::string_view(text, n < 0 ? 0 : std::min<size_t>(n, 63)));
}
struct DprintSink {
  template <typename T>
  const DprintSink& operator<<(const T& value) const {
    if (!tilenorm::tile::dprint_enabled()) return *this;
    if constexpr (std::is_same_v<T, DprintEndl>) {
      tilenorm::tile::dprint_write("\n");
    } else if constexpr (std::is_same_v<T, TileSlice>) {
      dprint_printf("<tile %u of CB %u: not printed>", unsigned(value.tile), unsigned(value.cb));
    } else if constexpr (std::is_same_v<T, char>) {
      tilenorm::tile::dprint_write(std::string_view(&value, 1));
    } else if constexpr (std::is_convertible_v<T, std::string_view>) {
      tilenorm::tile::dprint_write(std::string_view(value));
    } else if constexpr (std::is_floating_point_v<T>) {
      dprint_printf("%g", double(value));
    } else if constexpr (std::is_enum_v<T>) {
      dprint_printf("%lld", static_cast<long long>(value));
    } else if constexpr (std::is_signed_v<T>) {
      dprint_printf("%lld", static_cast<long long>(value));
    } else if constexpr (std::is_integral_v<T>) {
      dprint_printf("%llu", static_cast<unsigned long long>(value));
    } else {
      static_assert(std::is_arithmetic_v<T>, "DPRINT: a value the tile machine cannot print");
    }
    return *this;
  }
};
}  // namespace tilenorm_tt

inline tilenorm_tt::DprintEndl ENDL() { return {}; }
#define DPRINT \
  ::tilenorm_tt::DprintSink {}
// The compute kernel is one thread here: each RISC's print runs once.
#define DPRINT_UNPACK(x) x
#define DPRINT_MATH(x) x
#define DPRINT_PACK(x) x
#define DPRINT_DATA0(x) x
#define DPRINT_DATA1(x) x
