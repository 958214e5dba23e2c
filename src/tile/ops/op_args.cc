#include "tile/ops/op_args.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "tilenorm/bf16.h"

namespace tilenorm::tile {

RowMeanConstants row_mean_constants(int64_t C) {
  const uint64_t c = uint64_t(C);
  const int k = std::bit_width(c) - std::countr_zero(c);  // significant bits
  const double split = std::ldexp(1.0, k) + 1;
  return {float_bits(float(1.0 / double(C))), float_bits(float(C)),
          k <= 20 ? float_bits(float(split)) : 0u,
          float_bits(float(2 * std::max(double(C), split)))};
}

}  // namespace tilenorm::tile
