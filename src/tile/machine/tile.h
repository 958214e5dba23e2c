// Tiles of the tile machine: 32x32 elements stored as four 16x16 faces (TL, TR, BL, BR, each
// row-major), data formats, tilize/untilize and the host/device number conversions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace tilenorm::tile {

inline constexpr int kTileDim = 32;
inline constexpr int kFaceDim = 16;
inline constexpr int kTileElems = kTileDim * kTileDim;

inline constexpr uint32_t kMaxCbs = 32;  // CB indices 0..31, as tt-metal's CBIndex::c_0..c_31

// Spelled as tt-metal's DataFormat so kernels read the same.
enum class DataFormat : uint8_t { Float16_b, Float32 };

const char* data_format_name(DataFormat format);  // "Float16_b", "Float32"

constexpr uint32_t datum_size(DataFormat format) { return format == DataFormat::Float32 ? 4u : 2u; }
// Bytes of one tile (= one CB page, one DRAM buffer page): 2048 (bf16) or 4096 (fp32).
constexpr uint32_t tile_size(DataFormat format) { return datum_size(format) * kTileElems; }

// Position of element (row, col), 0 <= row, col < 32, inside a tile stored in faces:
// face (row/16, col/16) at offset 256 * face, row-major inside the face.
constexpr int tile_index(int row, int col) {
  return (row / kFaceDim) * 512 + (col / kFaceDim) * 256 + (row % kFaceDim) * kFaceDim +
         col % kFaceDim;
}

// Tiles covering a rows x cols matrix (each dim rounded up to 32).
constexpr int64_t tiles_along(int64_t n) { return (n + kTileDim - 1) / kTileDim; }
constexpr int64_t num_tiles(int64_t rows, int64_t cols) {
  return tiles_along(rows) * tiles_along(cols);
}

// Row-major rows x cols -> tiles in tile-row-major order (tile (tr, tc) is tile tr * Wt + tc),
// each in face order. Elements outside [rows, cols) are set to `pad`.
std::vector<float> tilize(const float* row_major, int64_t rows, int64_t cols, float pad);
// Inverse of tilize: writes the rows x cols logical elements; padding is dropped.
void untilize(const float* tiles, int64_t rows, int64_t cols, float* row_major);

// Host-side format conversion of `count` values (host rounding: bf16 round-to-nearest-even, as
// tt-metal's host helpers do). `bytes` holds count * datum_size(format) bytes.
void encode(const float* values, size_t count, DataFormat format, void* bytes);
void decode(const void* bytes, size_t count, DataFormat format, float* values);

// The packer's fp32 -> bf16 conversion on Wormhole (ISA documentation, Packers/
// FormatConversion.md): round to nearest with ties away from zero, denormals flushed to zero,
// -0 -> +0, NaN -> Inf of the same sign (the 8-bit exponent is kept, the mantissa dropped).
// Returns raw bf16 bits. Branch-free so the packer's whole-tile loop vectorizes. (fp32 -> fp32
// is the identity: denormals and -0 are kept.)
inline uint16_t packer_round_bf16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, sizeof u);
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  const bool flush = (u & 0x7f800000u) == 0;  // zero, -0 and denormals all become +0
  // Sign-magnitude: adding half an ulp to the magnitude rounds ties away from zero.
  uint32_t r = (u + 0x8000u) >> 16;
  r = nan ? ((u >> 16) & 0xff80u) : r;
  r = flush ? 0u : r;
  return static_cast<uint16_t>(r);
}

}  // namespace tilenorm::tile
