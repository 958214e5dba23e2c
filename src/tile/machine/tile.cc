// Tile layout and number conversions of the tile machine.
#include "tile/machine/tile.h"

#include <cstring>

#include "tilenorm/bf16.h"

namespace tilenorm::tile {

const char* data_format_name(DataFormat format) {
  return format == DataFormat::Float32 ? "Float32" : "Float16_b";
}

std::vector<float> tilize(const float* row_major, int64_t rows, int64_t cols, float pad) {
  const int64_t ht = tiles_along(rows), wt = tiles_along(cols);
  std::vector<float> tiles(static_cast<size_t>(ht * wt * kTileElems), pad);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t tr = r / kTileDim, rr = r % kTileDim;
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t t = tr * wt + c / kTileDim;
      tiles[t * kTileElems + tile_index(static_cast<int>(rr), static_cast<int>(c % kTileDim))] =
          row_major[r * cols + c];
    }
  }
  return tiles;
}

void untilize(const float* tiles, int64_t rows, int64_t cols, float* row_major) {
  const int64_t wt = tiles_along(cols);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t tr = r / kTileDim, rr = r % kTileDim;
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t t = tr * wt + c / kTileDim;
      row_major[r * cols + c] =
          tiles[t * kTileElems + tile_index(static_cast<int>(rr), static_cast<int>(c % kTileDim))];
    }
  }
}

void encode(const float* values, size_t count, DataFormat format, void* bytes) {
  if (format == DataFormat::Float32) {
    std::memcpy(bytes, values, count * sizeof(float));
    return;
  }
  auto* out = static_cast<uint16_t*>(bytes);
  for (size_t i = 0; i < count; ++i) out[i] = float_to_bf16(values[i]).bits;
}

void decode(const void* bytes, size_t count, DataFormat format, float* values) {
  if (format == DataFormat::Float32) {
    std::memcpy(values, bytes, count * sizeof(float));
    return;
  }
  const auto* in = static_cast<const uint16_t*>(bytes);
  for (size_t i = 0; i < count; ++i) values[i] = bf16_to_float(bf16{in[i]});
}

}  // namespace tilenorm::tile
